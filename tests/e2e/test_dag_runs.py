"""The DAGs run for real with Airflow's ``dag.test()`` (in a subprocess with its own Airflow home),
and the test checks what they wrote: snapshots, registered versions, predictions."""

from __future__ import annotations

import json
import sys

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import dataset_snapshots, predictions
from rakuten_ml.storage.object_store import open_store
from tests.support.dag_runs import dag_env, extra_links, run

pytestmark = pytest.mark.slow


def run_dags(env: dict[str, str], *dag_ids: str) -> list[dict]:
    out = run([sys.executable, "-m", "rakuten_ml.demo", "run-dag", *dag_ids], env)
    outcomes = json.loads(out.stdout.strip().splitlines()[-1])
    assert [o["state"] for o in outcomes] == ["success"] * len(dag_ids), outcomes
    return outcomes


def check_platform_outputs(settings: Settings, outcomes: list[dict]) -> None:
    ingest, train, score = (o["tasks"] for o in outcomes)
    snapshot = ingest["ingest"]["return_value"]
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(dataset_snapshots.c.snapshot_id, dataset_snapshots.c.n_accepted)).all()
        n_predictions = conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one()
        versions = {r[0] for r in conn.execute(sa.select(predictions.c.model_version).distinct())}
    engine.dispose()
    assert stored == [(snapshot["snapshot_id"], snapshot["n_accepted"])]
    assert snapshot["n_accepted"] + snapshot["n_quarantined"] == snapshot["n_input"]
    summary = score["summarise"]["return_value"]
    assert n_predictions == snapshot["n_accepted"] == summary["n_scored"]
    assert sum(summary["counts"][k] for k in ("fused", "text_only", "image_only")) == summary["n_scored"]
    trained = train["train"]["return_value"]
    assert versions == {trained["model_version"]}
    assert trained["snapshot_id"] == snapshot["snapshot_id"]
    assert trained["metrics"]["f1_weighted"] > 0.5
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    version = client.get_model_version(settings.registered_model_name, trained["model_version"])
    assert version.tags["snapshot_id"] == snapshot["snapshot_id"]
    assert version.tags["dag_run_id"].startswith("manual__")
    assert open_store(settings.object_store_url, settings).exists(f"{summary['parquet_prefix']}/part-00000.parquet")


def test_demo_dags_on_embedded_defaults(tmp_path):
    env = dag_env(tmp_path)
    run([sys.executable, "-m", "rakuten_ml.cli", "generate-catalogue", "--rows", "1500", "--images", "1500", "--seed", "5"], env)
    outcomes = run_dags(env, "ingest_products", "train_text_model", "score_catalogue")
    check_platform_outputs(Settings(home=tmp_path), outcomes)
    # rerunning ingestion on unchanged inputs finds the same snapshot and writes nothing new
    again = run_dags(env, "ingest_products")[0]["tasks"]["ingest"]["return_value"]
    assert again["snapshot_id"] == outcomes[0]["tasks"]["ingest"]["return_value"]["snapshot_id"]
    assert again["created"] is False


def test_demo_dags_on_postgres_s3_and_mlflow_server(tmp_path, pg_url, s3_endpoint, s3_bucket, mlflow_server):
    rakuten = {
        "database_url": pg_url,
        "object_store_url": f"s3://{s3_bucket}/platform",
        "s3_endpoint_url": s3_endpoint,
        "mlflow_tracking_uri": mlflow_server,
        "registered_model_name": f"clf-dags-{tmp_path.name[-8:]}",
        "image_policy": "optional",
    }
    env = dag_env(tmp_path, **rakuten)
    run([sys.executable, "-m", "rakuten_ml.cli", "generate-catalogue", "--rows", "1500", "--images", "300", "--seed", "6"], env)
    outcomes = run_dags(env, "ingest_products", "train_text_model", "score_catalogue")
    settings = Settings(home=tmp_path, **rakuten)
    check_platform_outputs(settings, outcomes)
    assert outcomes[0]["tasks"]["ingest"]["return_value"]["n_quarantined"] == 0

    # the Airflow UI's buttons to MLflow (plugins/rakuten_links.py), and the version's link back to its DAG run
    _ingest, train, score = outcomes
    trained = train["tasks"]["train"]["return_value"]
    name, version = rakuten["registered_model_name"], trained["model_version"]
    links = extra_links(env, "train_text_model", train["run_id"], "train")
    assert links["MLflow model version"] == f"{mlflow_server}/#/models/{name}/versions/{version}"
    assert links["MLflow run"] == f"{mlflow_server}/#/experiments/{trained['experiment_id']}/runs/{trained['run_id']}"
    assert links["MLflow champion version"] == ""  # not a scoring task
    scoring = extra_links(env, "score_catalogue", score["run_id"], "summarise")
    assert scoring["MLflow champion version"] == f"{mlflow_server}/#/models/{name}/versions/{version}"
    assert scoring["MLflow challenger version"] == "" and scoring["MLflow run"] == ""
    registered = MlflowClient(tracking_uri=mlflow_server).get_model_version(name, version)
    assert registered.tags["airflow.dag_run_url"] == f"http://localhost:8080/dags/train_text_model/runs/{train['run_id'].replace(':', '%3A').replace('+', '%2B')}"
    assert f"[train_text_model / {train['run_id']}]" in registered.description
