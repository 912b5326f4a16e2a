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
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

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
DAGS = ["ingest_products", "score_catalogue", "retrain_classifier", "evaluate_ab_test"]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"  # RAKUTEN_TEST_UPDATE_SCREENSHOTS=1 refreshes the README's pictures
# read at import: the suite's autouse fixture clears every RAKUTEN_* variable before a test runs
UPDATE_SCREENSHOTS = os.environ.get("RAKUTEN_TEST_UPDATE_SCREENSHOTS") == "1"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"]  # nothing may reach out of this machine


@contextmanager
def headless_chromium():
    """Playwright driving Debian's chromium (no browser is downloaded)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _pg(db: str) -> str:
    host, port, user = dsn_part("host", "127.0.0.1"), dsn_part("port", "5432"), dsn_part("user", "postgres")
    return f"postgresql+psycopg2://{user}@{host}:{port}/{db}"


@pytest.fixture(scope="module")
def production_airflow(tmp_path_factory):
    import redis

    tmp_path = tmp_path_factory.mktemp("celery")
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
        client.wait_for_dags(DAGS)
        for dag_id in DAGS:  # as an operator turns them on; the asset events of a paused DAG start nothing
            client.unpause(dag_id)
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


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)")
def test_the_airflow_ui_triggers_a_retraining_whose_task_links_to_its_mlflow_version(production_airflow, tmp_path):
    """In headless Chromium against the api-server: the DAG list, the retrain form submitted on its defaults, the
    run starting, then the finished training task's MLflow button, followed to the model version's page."""
    client, stack, settings = (production_airflow[k] for k in ("client", "stack", "settings"))
    shots = SCREENSHOTS if UPDATE_SCREENSHOTS else tmp_path
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{stack.airflow_url}/dags", wait_until="networkidle")  # the simple auth manager: no password
        page.get_by_text("retrain_classifier").first.wait_for(timeout=60_000)
        page.screenshot(path=shots / "airflow-dags.png")
        page.goto(f"{stack.airflow_url}/dags/retrain_classifier", wait_until="networkidle")
        page.get_by_role("button", name="Trigger").first.click()
        form = page.get_by_role("dialog")
        form.get_by_text("Run Parameters").wait_for(timeout=30_000)
        assert form.get_by_text("Same as the champion").count() == 1  # the modalities choice, on its default
        page.screenshot(path=shots / "airflow-retrain-form.png")
        form.get_by_role("button", name="Trigger").last.click()
        page.get_by_text("Dag run has been successfully triggered").first.wait_for(timeout=30_000)
        [run] = client.runs("retrain_classifier")
        assert run.conf == RETRAIN_FORM  # what the form sent: its defaults
        assert _finished(client, "retrain_classifier", run.run_id) == "success", client.task_states("retrain_classifier", run.run_id)

        trained = client.return_value("retrain_classifier", run.run_id, "train_on_gpu")
        page.goto(f"{stack.airflow_url}/dags/retrain_classifier/runs/{quote(run.run_id, safe='')}/tasks/train_on_gpu/details",
                  wait_until="networkidle")  # the task's Details tab lists its extra links
        button = page.get_by_role("link", name="MLflow model version")
        button.wait_for(timeout=60_000)
        with page.context.expect_page() as opened:  # extra links open in a new tab
            button.click()
        version_page = opened.value
        version_page.wait_for_load_state("load")  # MLflow's page keeps polling: never network-idle
        expected = f"{stack.mlflow_url}/#/models/{settings.registered_model_name}/versions/{trained['model_version']}"
        assert version_page.url == expected
        version_page.get_by_text(f"Version {trained['model_version']}").first.wait_for(timeout=60_000)
        version_page.get_by_text("Trained by the Airflow run").first.wait_for(timeout=30_000)  # the description links back
        version_page.screenshot(path=shots / "mlflow-model-version.png")
    for name in ("airflow-dags.png", "airflow-retrain-form.png", "mlflow-model-version.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (shots / name).stat().st_size > 20_000, name


def test_celery_workers_run_the_life_cycle_and_a_lost_gpu_worker_loses_no_prediction(production_airflow):
    client, stack, workers, settings = (production_airflow[k] for k in ("client", "stack", "workers", "settings"))

    # retrain on the form's defaults (the browser test above may have done it): no model yet, so the first
    # one is text+image, trained on the gpu queue
    finished = [r for r in client.runs("retrain_classifier") if r.state == "success"]
    retrain = finished[0].run_id if finished else _trigger(client, "retrain_classifier", RETRAIN_FORM)
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
