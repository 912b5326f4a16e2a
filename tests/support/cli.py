"""The command line in a child process, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO_ROOT


def cli(home: Path, *args: str, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m rakuten_ml.cli ARGS`` with ``RAKUTEN_HOME=home`` and no other RAKUTEN_* setting than ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAKUTEN_")} | {"RAKUTEN_HOME": str(home)} | (settings or {})
    return subprocess.run([sys.executable, "-m", "rakuten_ml.cli", *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
