"""``make demo``: a week of production in one command, under a real Airflow deployment.

It starts Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite metadata), an
MLflow tracking server and, from day 1, the serving API, all on loopback; runs the simulated week of
:mod:`rakuten_ml.lifecycle.scenario` through Airflow's REST API; prints the timeline; writes an HTML
report; then stops every service (``--keep-running`` keeps them up until Ctrl-C).

``python -m rakuten_ml.demo run-dag DAG_ID`` is the ``dag.test()`` runner the DAG tests use.
Airflow reads its configuration at import time, so the environment is prepared before anything imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("rakuten_ml.demo")

REPO_ROOT = Path(__file__).resolve().parent.parent


def prepare_airflow_env(home: Path) -> dict[str, str]:
    """Embedded Airflow for ``dag.test()``: SQLite metadata DB under ``home``, this repo's dags/ and plugins/."""
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "RAKUTEN_HOME": str(home),
    }
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in env}


def migrate_airflow_db() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one DAG in-process with ``dag.test()``; returns its state and each task's return value."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise RuntimeError(f"no DAG {dag_id!r} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}")
    dag_run = dag.test(run_conf=conf or {})
    outputs: dict[str, Any] = {}
    for ti in dag_run.get_task_instances():
        outputs[ti.task_id] = {"state": str(ti.state), "return_value": ti.xcom_pull(task_ids=ti.task_id)}
    return {"dag_id": dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state), "tasks": outputs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="the simulated week under a real Airflow deployment (default)")
    demo.add_argument("--home", type=Path, default=None, help="where everything is written (default var/demo, emptied first)")
    demo.add_argument("--keep-running", action="store_true", help="keep Airflow, MLflow and serving up afterwards, until Ctrl-C")
    demo.add_argument("--airflow-port", type=int, default=8080)
    demo.add_argument("--mlflow-port", type=int, default=5000)
    demo.add_argument("--serving-port", type=int, default=8000)
    one = sub.add_parser("run-dag", help="run DAGs in order with dag.test() and print their outcomes as JSON")
    one.add_argument("dag_ids", nargs="+")
    one.add_argument("--conf", default="{}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run-dag":
        home = Path(os.environ.get("RAKUTEN_HOME", REPO_ROOT / "var" / "demo")).resolve()
        prepare_airflow_env(home)
        migrate_airflow_db()
        outcomes = [run_dag(dag_id, json.loads(args.conf)) for dag_id in args.dag_ids]
        sys.stdout.write(json.dumps(outcomes, default=str) + "\n")  # the command's output, for scripts
        return 0 if all(o["state"] == "success" for o in outcomes) else 1
    from rakuten_ml.lifecycle.run import run_demo
    from rakuten_ml.lifecycle.stack import Ports

    home = (getattr(args, "home", None) or REPO_ROOT / "var" / "demo").resolve()
    ports = Ports(getattr(args, "airflow_port", 8080), getattr(args, "mlflow_port", 5000), getattr(args, "serving_port", 8000))
    return run_demo(home, ports, keep_running=getattr(args, "keep_running", False))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a killed demo still stops its services
    raise SystemExit(main(sys.argv[1:] or ["demo"]))
