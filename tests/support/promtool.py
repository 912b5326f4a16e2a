"""promtool for the Prometheus rule tests: the rules parse, and fire as intended on synthetic series.
The tests skip where promtool is not installed (``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def promtool(*args: str) -> None:
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules(rules_file: Path) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"] if "alert" in r}


def check_and_unit_test_rules(rules_file: Path, unit_tests: dict[str, Any] | str, tmp_path: Path) -> None:
    """``promtool check rules``, then ``promtool test rules`` on ``unit_tests`` (a spec or its YAML text)."""
    promtool("check", "rules", str(rules_file))
    spec = tmp_path / f"{rules_file.stem}_rules_test.yml"
    spec.write_text(unit_tests if isinstance(unit_tests, str) else yaml.safe_dump(unit_tests))
    promtool("test", "rules", str(spec))
