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


_LINKS_PROBE = """
import json, os, sys
from pathlib import Path

from rakuten_ml.demo import prepare_airflow_env

prepare_airflow_env(Path(os.environ["RAKUTEN_HOME"]))  # the Airflow home the DAG runs wrote to
from airflow.models.taskinstancekey import TaskInstanceKey
from airflow.plugins_manager import get_global_operator_extra_links

dag_id, run_id, task_id = sys.argv[1:4]
key = TaskInstanceKey(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=1, map_index=int(sys.argv[4]))
print(json.dumps({link.name: link.get_link(None, ti_key=key) for link in get_global_operator_extra_links()}))
"""


def extra_links(env: dict[str, str], dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str]:
    """The task's extra links as the api-server computes them: the plugins Airflow loads, over its XCom table."""
    import json
    import sys

    out = run([sys.executable, "-c", _LINKS_PROBE, dag_id, run_id, task_id, str(map_index)], env)
    return json.loads(out.stdout.strip().splitlines()[-1])
