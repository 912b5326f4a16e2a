"""The end-to-end demo: generate a catalogue, then run the platform's DAGs with ``dag.test()``
on the embedded defaults (SQLite for Airflow and MLflow, a local folder as object store).

Also the DAG runner the end-to-end tests use: ``python -m rakuten_ml.demo run-dag DAG_ID``.
Airflow reads its configuration at import time, so the environment is prepared before
anything imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("rakuten_ml.demo")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DAGS = ("ingest_products", "train_text_model", "score_catalogue")


def prepare_airflow_env(home: Path) -> dict[str, str]:
    """Embedded Airflow: SQLite metadata DB under ``home``, this repo's dags/ and plugins/."""
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
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="generate a catalogue and run every demo DAG")
    demo.add_argument("--rows", type=int, default=4000)
    demo.add_argument("--seed", type=int, default=42)
    one = sub.add_parser("run-dag", help="run DAGs in order with dag.test() and print their outcomes as JSON")
    one.add_argument("dag_ids", nargs="+")
    one.add_argument("--conf", default="{}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    home = Path(os.environ.get("RAKUTEN_HOME", REPO_ROOT / "var" / "demo")).resolve()
    prepare_airflow_env(home)
    migrate_airflow_db()
    if args.command == "run-dag":
        outcomes = [run_dag(dag_id, json.loads(args.conf)) for dag_id in args.dag_ids]
        print(json.dumps(outcomes, default=str))
        return 0 if all(o["state"] == "success" for o in outcomes) else 1
    return run_demo(home, rows=getattr(args, "rows", 4000), seed=getattr(args, "seed", 42))


def run_demo(home: Path, *, rows: int, seed: int) -> int:
    from rakuten_ml.catalogue.generator import CatalogueSpec, generate_catalogue
    from rakuten_ml.platform import Platform
    from rakuten_ml.storage.object_store import open_store

    platform = Platform.from_env()
    catalogue = open_store(platform.settings.catalogue_url, platform.settings)
    if not catalogue.exists(platform.settings.x_file):
        log.info("generating a %d-row catalogue in %s", rows, catalogue.url)
        generate_catalogue(catalogue, "", CatalogueSpec(rows=rows, seed=seed))
    outcomes = {dag_id: run_dag(dag_id) for dag_id in DEMO_DAGS}
    failed = [d for d, o in outcomes.items() if o["state"] != "success"]
    ingest = outcomes["ingest_products"]["tasks"]["ingest"]["return_value"] or {}
    train = outcomes["train_text_model"]["tasks"]["train"]["return_value"] or {}
    score = outcomes["score_catalogue"]["tasks"]["summarise"]["return_value"] or {}
    metrics = train.get("metrics", {})
    lines = [
        "",
        "=== Rakuten MLOps demo ===",
        "DAG runs            : " + ", ".join(f"{d}={o['state']}" for d, o in outcomes.items()),
        f"catalogue           : {catalogue.url}",
        f"snapshot            : {ingest.get('snapshot_id')} ({ingest.get('n_accepted')} accepted, {ingest.get('n_quarantined')} quarantined)",
        f"MLflow              : {platform.settings.mlflow_tracking_uri}  (UI: .venv/bin/mlflow ui --backend-store-uri {platform.settings.mlflow_tracking_uri})",
        f"MLflow run          : {train.get('run_id')}",
        f"model version       : {train.get('model_name')} v{train.get('model_version')}",
        f"hold-out weighted F1: {metrics.get('f1_weighted', float('nan')):.4f} (accuracy {metrics.get('accuracy', float('nan')):.4f})",
        f"predictions         : {score.get('n_scored')} rows in {platform.settings.database_url} (table predictions, run {score.get('run_id')})",
        f"prediction counts   : {score.get('counts')}",
        f"predictions parquet : {platform.store.uri(score['parquet_prefix']) if score.get('parquet_prefix') else None}/",
    ]
    print("\n".join(lines))
    if failed:
        print(f"FAILED DAG runs: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["demo"]))
