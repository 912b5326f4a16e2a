"""Airflow as production runs it, on one machine: its four components with the CeleryExecutor, PostgreSQL
metadata (a database of its own), the local Redis as broker (a DB number of its own) and two Celery
workers, one per queue (``default`` and ``gpu``). Every DAG run starts from the REST API with the params
the UI's form sends, or from an asset event; the test checks where each task ran and what was written.

A ``gpu`` worker killed (SIGKILL, a machine lost) while it scores a partition: the scheduler finds the
task instance without heartbeat, retries it on a fresh gpu worker, and the run still ends with exactly one
prediction per product.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import sqlalchemy as sa

from rakuten_ml.catalogue.generator import CatalogueSpec, generate_catalogue
from rakuten_ml.lifecycle.airflow_api import AirflowClient
from rakuten_ml.lifecycle.scenario import story_environment
from rakuten_ml.lifecycle.stack import Ports, Stack, celery_env
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import predictions
from rakuten_ml.storage.object_store import open_store
from tests.support.paths import REPO_ROOT
from tests.support.services import admin_sql, dsn_part, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

REDIS_DB = 11  # the broker's DB number: nothing else of the suite uses it
PRODUCTS = 600
PARTITION_SIZE = 100  # the form's minimum: 6 mapped score_partition tasks
RETRAIN_FORM = {"snapshot_id": None, "modalities": "champion", "reason": None, "force": False}  # the form on its defaults
INGEST_FORM = {"source": None, "labelled_table": True}
RUN_TIMEOUT_S = 900


def _pg(db: str) -> str:
    host, port, user = dsn_part("host", "127.0.0.1"), dsn_part("port", "5432"), dsn_part("user", "postgres")
    return f"postgresql+psycopg2://{user}@{host}:{port}/{db}"


@pytest.fixture
def production_airflow(tmp_path):
    import redis

    metadata_db, platform_db = f"airflow_celery_{uuid.uuid4().hex[:8]}", f"rakuten_celery_{uuid.uuid4().hex[:8]}"
    for db in (metadata_db, platform_db):
        admin_sql(f'CREATE DATABASE "{db}"')
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    home = tmp_path / "platform"
    ports = Ports(free_port(), free_port(), free_port())
    platform = story_environment(home, f"http://127.0.0.1:{ports.mlflow}") | {"RAKUTEN_DATABASE_URL": _pg(platform_db)}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "AIRFLOW"))} | platform
    base["PYTHONPATH"] = str(REPO_ROOT)  # the workers' hostname_callable lives in tests/support
    overrides = celery_env(_pg(metadata_db), broker) | {
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.support.worker_hostname.worker_hostname",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # a worker lost mid-task: its task instance stops heartbeating; declare it failed after 30 s (default 5 min)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }
    stack = Stack(home, ports, base, overrides=overrides)
    try:
        stack.start_mlflow()
        stack.start_airflow()
        workers = {queue: _worker(stack, queue, f"{queue}-worker-1") for queue in ("default", "gpu")}
        client = AirflowClient(stack.airflow_url)
        settings = Settings(home=home, database_url=_pg(platform_db), mlflow_tracking_uri=stack.mlflow_url)
        Platform(settings).prepare().init_labelled_products()  # what `rakuten-ml db init` (airflow-init) does
        generate_catalogue(open_store(settings.catalogue_url, settings), "", CatalogueSpec(rows=PRODUCTS, seed=11, image_size=64))
        yield {"stack": stack, "client": client, "workers": workers, "settings": settings}
        client.close()
    finally:
        stack.stop()
        redis.Redis.from_url(broker).flushdb()
        for db in (metadata_db, platform_db):
            admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _worker(stack: Stack, queue: str, name: str):
    return stack.start_celery_worker(name, queue, log_server_port=free_port(), env={"RAKUTEN_TEST_WORKER_NAME": name})


def _finished(client: AirflowClient, dag_id: str, run_id: str) -> str:
    return client.wait(dag_id, run_id, timeout_s=RUN_TIMEOUT_S).state


def _trigger(client: AirflowClient, dag_id: str, conf: dict) -> str:
    return client.trigger(dag_id, logical_date=None, conf=conf).run_id


def test_celery_workers_run_the_life_cycle_and_a_lost_gpu_worker_loses_no_prediction(production_airflow):
    client, stack, workers, settings = (production_airflow[k] for k in ("client", "stack", "workers", "settings"))
    dags = ["ingest_products", "score_catalogue", "retrain_classifier", "evaluate_ab_test"]
    client.wait_for_dags(dags)
    for dag_id in dags:
        client.unpause(dag_id)

    # retrain on the form's defaults: no model yet, so the first one is text+image, trained on the gpu queue
    retrain = _trigger(client, "retrain_classifier", RETRAIN_FORM)
    assert _finished(client, "retrain_classifier", retrain) == "success", client.task_states("retrain_classifier", retrain)
    lanes = {ti["task_id"]: ti for ti in client.task_instances("retrain_classifier", retrain)}
    assert lanes["train_on_gpu"]["state"] == "success" and lanes["train"]["state"] == "skipped"
    assert (lanes["train_on_gpu"]["queue"], lanes["train_on_gpu"]["hostname"]) == ("gpu", "gpu-worker-1")
    assert (lanes["decide"]["queue"], lanes["decide"]["hostname"]) == ("default", "default-worker-1")
    links = client.extra_links("retrain_classifier", retrain, "train_on_gpu")  # the UI's buttons to MLflow
    trained = client.return_value("retrain_classifier", retrain, "train_on_gpu")
    assert links["MLflow model version"] == f"{stack.mlflow_url}/#/models/{settings.registered_model_name}/versions/{trained['model_version']}"

    # its registered-model event starts the A/B DAG, whose gate makes the first version champion
    gate = client.wait_for_new_run("evaluate_ab_test", set(), timeout_s=300)
    assert _finished(client, "evaluate_ab_test", gate.run_id) == "success"

    # an ingestion's snapshot event starts the nightly scoring (one partition at this size) ...
    known = {r.run_id for r in client.runs("score_catalogue")}
    ingest = _trigger(client, "ingest_products", INGEST_FORM)
    assert _finished(client, "ingest_products", ingest) == "success"
    nightly = client.wait_for_new_run("score_catalogue", known, timeout_s=300)
    assert _finished(client, "score_catalogue", nightly.run_id) == "success"

    # ... and a run in small partitions loses its gpu worker in the middle of one
    scoring = _trigger(client, "score_catalogue", {"snapshot_id": None, "model_version": None, "partition_size": PARTITION_SIZE})
    _wait_for_a_running_partition(client, scoring)
    workers["gpu"].kill()
    replacement = _worker(stack, "gpu", "gpu-worker-2")
    assert _finished(client, "score_catalogue", scoring) == "success", client.task_states("score_catalogue", scoring)
    assert replacement.running()

    partitions = [ti for ti in client.task_instances("score_catalogue", scoring) if ti["task_id"] == "score_partition"]
    assert len(partitions) == PRODUCTS // PARTITION_SIZE
    assert {ti["queue"] for ti in partitions} == {"gpu"} and {ti["state"] for ti in partitions} == {"success"}
    assert {ti["hostname"] for ti in partitions} <= {"gpu-worker-1", "gpu-worker-2"}
    retried = [ti for ti in partitions if ti["try_number"] > 1]
    assert retried and {ti["hostname"] for ti in retried} == {"gpu-worker-2"}  # the lost partition, redone elsewhere
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(predictions.c.productid).where(predictions.c.run_id == scoring)).scalars().all()
    engine.dispose()
    assert len(rows) == len(set(rows)) == PRODUCTS  # exactly one prediction per product
    for service in stack.services:  # nothing else died along the way
        assert service.running() or service is workers["gpu"], service.log_tail()


def _wait_for_a_running_partition(client: AirflowClient, run_id: str, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [ti["state"] for ti in client.task_instances("score_catalogue", run_id) if ti["task_id"] == "score_partition"]
        if "running" in states:
            return
        time.sleep(0.3)
    raise AssertionError(f"no score_partition of {run_id} started running in {timeout_s:.0f} s")
