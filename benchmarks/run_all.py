"""Run every benchmark in turn; each rewrites its own section of benchmarks/RESULTS.md."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("text_training", "scoring_throughput", "cpu_runtimes", "drift_check", "label_free_estimate", "serving_load", "ab_decisions")


def main() -> int:
    failed = [name for name in BENCHMARKS if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False).returncode != 0]
    if failed:
        print(f"benchmarks failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
