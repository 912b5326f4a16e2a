"""Running DAGs for real: a child process with its own Airflow home and RAKUTEN_* settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.paths import REPO_ROOT


def run(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``args`` from the repository root; fail with the tail of its output unless it exits 0."""
    result = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def dag_env(home: Path, **rakuten: str) -> dict[str, str]:
    """This process's environment without RAKUTEN_*/AIRFLOW* variables, with a platform and Airflow home
    under ``home`` and ``RAKUTEN_<KEY>`` for each keyword."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "AIRFLOW"))}
    env |= {"RAKUTEN_HOME": str(home), "AIRFLOW_HOME": str(home / "airflow")}
    env |= {f"RAKUTEN_{k.upper()}": v for k, v in rakuten.items()}
    return env
