"""monitor_drift and retrain_classifier for real (``dag.test()`` in a subprocess, embedded defaults):
an alert is an asset event, it retrains once, and a second alert inside the cool-down does not."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from rakuten_ml.storage.database import drift_checks, retrain_requests
from tests.support.dag_runs import dag_env, run

pytestmark = pytest.mark.slow
ROWS = "1200"


def run_dags(env: dict[str, str], *dag_ids: str, conf: dict | None = None) -> list[dict]:
    out = run([sys.executable, "-m", "rakuten_ml.demo", "run-dag", *dag_ids, "--conf", json.dumps(conf or {})], env)
    outcomes = json.loads(out.stdout.strip().splitlines()[-1])
    assert [o["state"] for o in outcomes] == ["success"] * len(dag_ids), outcomes
    return [o["tasks"] for o in outcomes]


def query(url: str, statement: str | sa.Executable) -> list[dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(statement) if isinstance(statement, str) else statement)]
    engine.dispose()
    return rows


def prepare(env: dict[str, str]) -> None:
    """One process, no Airflow: a catalogue, its snapshot and model v1, then tomorrow's drifted catalogue."""
    commands = [
        ["generate-catalogue", "--rows", ROWS, "--images", "0", "--seed", "11"],
        ["db", "init"],
        ["ingest"],
        ["train", "--reason", "initial"],
        # the class mix shifts (rare classes grow): scoring it moves the predicted distribution
        ["generate-catalogue", "--rows", ROWS, "--images", "0", "--seed", "12", "--class-prior-shift", "0.9"],
    ]
    script = f"from rakuten_ml.cli import app\nfor args in {commands!r}:\n    app(args, standalone_mode=False)"
    run([sys.executable, "-c", script], env)


def test_drift_alert_emits_an_asset_event_and_retrains_once(tmp_path: Path):
    # unpaused DAGs, as in production: an asset event then queues its consumer for the scheduler
    env = dag_env(tmp_path, image_policy="optional") | {"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"}
    prepare(env)
    calm, _ingest, _score, monitor, retrain = run_dags(
        env, "monitor_drift", "ingest_products", "score_catalogue", "monitor_drift", "retrain_classifier"
    )
    assert calm["emit_alert"]["state"] == "skipped"  # nothing scored yet: no alert, no event
    alert = monitor["emit_alert"]["return_value"]
    assert monitor["emit_alert"]["state"] == "success" and "prediction_drift" in monitor["check"]["return_value"]["alerts"]
    assert [a["metric"] for a in alert["alerts"]] == ["prediction_drift"] and alert["alerts"][0]["statistic"] > 0.1
    assert alert["alerts"][0]["details"]["reference"] == "validation_predictions"  # read from the registered run
    assert retrain["decide"]["return_value"]["alerts"][0]["alert_id"] == alert["alert_id"]
    assert retrain["register"]["return_value"]["model_version"] == "2"

    # the next day the alert fires again: inside the cool-down, the retraining run trains nothing
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    monitor2, retrain2 = run_dags(env, "monitor_drift", "retrain_classifier", conf={"check_date": tomorrow, "window_days": 2})
    second_alert = monitor2["emit_alert"]["return_value"]
    assert second_alert["alert_id"] == f"drift:{tomorrow}:v1"
    assert retrain2["decide"]["return_value"]["status"] == "skipped_cooldown"
    assert {retrain2[t]["state"] for t in ("refresh_snapshot", "train", "register")} == {"skipped"}

    # Airflow metadata: one event per alert, carrying the alert; the retraining DAG is queued by it
    airflow_db = f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    events = query(airflow_db, "SELECT e.source_dag_id, e.source_task_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                               "WHERE a.name = 'rakuten://drift-alert' ORDER BY e.id")
    assert [(e["source_dag_id"], e["source_task_id"]) for e in events] == [("monitor_drift", "emit_alert")] * 2
    assert [json.loads(e["extra"])["alert_id"] for e in events] == [alert["alert_id"], second_alert["alert_id"]]
    queued = query(airflow_db, "SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id "
                               "WHERE a.name = 'rakuten://drift-alert'")
    assert queued == [{"target_dag_id": "retrain_classifier"}]

    # platform database: each alert answered exactly once, one training in all
    platform_db = f"sqlite:///{tmp_path / 'rakuten.db'}"
    requests = query(platform_db, sa.select(retrain_requests).order_by(retrain_requests.c.requested_at))
    assert [(r["status"], r["alert_ids"] if isinstance(r["alert_ids"], list) else json.loads(r["alert_ids"])) for r in requests] == [
        ("succeeded", [alert["alert_id"]]),
        ("skipped_cooldown", [second_alert["alert_id"]]),
    ]
    assert requests[0]["model_version"] == "2" and "prediction_drift" in requests[0]["reason"]
    rules = query(platform_db, sa.select(drift_checks.c.check_date, drift_checks.c.status).where(drift_checks.c.metric == "prediction_drift"))
    assert len(rules) == 2 and {r["status"] for r in rules} == {"alert"}
    assert (tmp_path / "metrics" / "rakuten_drift.prom").read_text().count('rakuten_drift_alert{metric="prediction_drift"') == 1
