"""The project's environment runs Airflow as production does: PostgreSQL metadata (asyncpg for Airflow's
async engine) and the CeleryExecutor, both from the install itself and from the Docker image's extras."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.paths import REPO_ROOT

PRODUCTION_EXTRAS = {"celery", "postgres"}


def _extras(requirement: str) -> set[str]:
    match = re.search(r"\[([^\]]*)\]", requirement)
    return {e.strip() for e in match.group(1).split(",")} if match else set()


def test_the_install_pins_airflow_with_the_celery_and_postgres_extras() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [airflow] = [r for r in project["dependencies"] if r.startswith("apache-airflow[") or r.startswith("apache-airflow==")]
    assert _extras(airflow) >= PRODUCTION_EXTRAS, airflow
    pins = (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8").split()
    for package in ("asyncpg", "celery", "apache-airflow-providers-celery", "apache-airflow-providers-postgres"):
        assert any(p.startswith(f"{package}==") for p in pins), f"{package} is not pinned in constraints.txt"


def test_the_image_installs_the_same_extras() -> None:
    dockerfile = (REPO_ROOT / "infra" / "docker" / "Dockerfile").read_text(encoding="utf-8")
    [extras] = re.findall(r"^ARG AIRFLOW_EXTRAS=(\S+)$", dockerfile, flags=re.MULTILINE)
    assert set(extras.split(",")) >= PRODUCTION_EXTRAS, extras


def test_airflow_starts_with_postgres_metadata_and_the_celery_executor(tmp_path: Path) -> None:
    """Airflow reads its configuration and loads the executor with production's settings: the import of
    asyncpg (for the async metadata engine) and of the Celery provider must not fail. Nothing connects."""
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_env_check",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/15",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = Path(sys.executable).with_name("airflow")
    executor = subprocess.run([str(airflow), "config", "get-value", "core", "executor"], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
    assert executor.returncode == 0 and executor.stdout.strip() == "CeleryExecutor", executor.stderr[-2000:]
    probe = (
        "import asyncpg\n"
        "from airflow.executors.executor_loader import ExecutorLoader\n"
        "from airflow.settings import SQL_ALCHEMY_CONN_ASYNC\n"
        "print(ExecutorLoader.import_default_executor_cls()[0].__name__, SQL_ALCHEMY_CONN_ASYNC.split(':', 1)[0])\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split()[-2:] == ["CeleryExecutor", "postgresql+asyncpg"], loaded.stdout
