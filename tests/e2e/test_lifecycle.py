"""``make demo``'s life cycle, run for real: Airflow's four components, an MLflow server and the serving API,
every DAG started by the REST API, a schedule's asset events or the scheduler, never by a library call.
The test runs the demo's own code on a smaller month and checks what the platform wrote."""

from __future__ import annotations

import io
import json
import socket

import pytest
import sqlalchemy as sa

from rakuten_ml.data.snapshot import load_products
from rakuten_ml.lifecycle.run import run_demo
from rakuten_ml.lifecycle.scenario import Story
from rakuten_ml.lifecycle.stack import Ports
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import (
    drift_checks,
    feedback,
    paired_predictions,
    predictions,
    promotion_events,
    retrain_requests,
    review_labels,
    scoring_runs,
)
from rakuten_ml.storage.object_store import open_store
from tests.support.paths import DAGS_FOLDER
from tests.support.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
SMALL_MONTH = Story(base_rows=900, quiet_rows=150, drifted_rows=700, live_rows=160, ab_live_rows=480, image_size=64)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("lifecycle")
    ports = Ports(free_port(), free_port(), free_port())
    out = io.StringIO()
    code = run_demo(home, ports, story=SMALL_MONTH, out=out)
    engine = sa.create_engine(f"sqlite:///{home / 'rakuten.db'}")
    yield {"code": code, "out": out.getvalue(), "home": home, "ports": ports, "engine": engine,
           "timeline": json.loads((home / "timeline.json").read_text())}
    engine.dispose()


def _rows(engine: sa.Engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def _steps(month: dict, dag_id: str) -> list[dict]:
    return [s for s in month["timeline"]["steps"] if s["dag_id"] == dag_id]


def test_no_dag_run_fails_and_every_dag_ran_under_the_scheduler(month):
    steps = month["timeline"]["steps"]
    assert month["code"] == 0, month["out"][-5000:]
    assert [s for s in steps if s["state"] != "success"] == []
    dag_files = {p.stem for p in DAGS_FOLDER.glob("[!_]*.py")}
    assert dag_files <= {s["dag_id"] for s in steps}
    assert all(s["run_id"] and not s["run_id"].startswith("manual__test") for s in steps)  # real runs, not dag.test()


def test_asset_events_start_the_downstream_dags(month):
    triggers = {(s["dag_id"], s["trigger"]) for s in month["timeline"]["steps"]}
    assert ("score_catalogue", "asset event rakuten://dataset-snapshot") in triggers
    assert ("retrain_classifier", "asset event rakuten://drift-alert") in triggers
    assert ("evaluate_ab_test", "asset event rakuten://registered-model") in triggers
    first_scoring = _steps(month, "score_catalogue")[0]  # day 0: nothing registered yet, a clean skip
    assert first_scoring["tasks"]["plan"] == "skipped" and first_scoring["state"] == "success"


def test_drift_alert_retrains_and_a_second_alert_is_a_visible_cooldown_skip(month):
    engine = month["engine"]
    data_drift = [r for r in _rows(engine, drift_checks) if r["metric"] == "data_drift"]
    assert any(r["status"] == "alert" for r in data_drift)
    alert_days = sorted(r["check_date"] for r in data_drift if r["status"] == "alert")
    drifted_before = sorted(r["check_date"] for r in data_drift if r["status"] in ("drift", "alert") and r["check_date"] < alert_days[0])
    assert len(drifted_before) >= 2  # the 3-consecutive-days rule, not a single bad day
    requests = _rows(engine, retrain_requests)
    assert any(r["trigger"] == "asset" and r["status"] == "succeeded" and r["model_version"] for r in requests)
    assert any(r["trigger"] == "asset" and r["status"] == "skipped_cooldown" for r in requests)
    skipped = [s for s in _steps(month, "retrain_classifier") if s["tasks"].get("cooldown_gate") == "skipped"]
    assert skipped and all(s["tasks"]["train"] == "skipped" for s in skipped)


def test_better_challenger_is_promoted_and_worse_versions_are_rejected(month):
    events = _rows(month["engine"], promotion_events)
    actions = [e["action"] for e in events]
    promoted = [e for e in events if e["action"] == "promote" and e["actor"] == "airflow:evaluate_ab_test"]
    assert any("A/B test" in e["reason"] for e in promoted), actions
    assert actions.count("gate_fail") >= 2, actions  # the bad export's retrain and the text-only baseline
    final = month["timeline"]["steps"][-1]["aliases"]
    drift_retrain = [r for r in _rows(month["engine"], retrain_requests) if r["trigger"] == "asset" and r["status"] == "succeeded"]
    assert final["champion"] == drift_retrain[0]["model_version"]
    assert final["challenger"] is None


def test_the_ab_test_is_decided_on_shadow_pairs_and_says_by_which_test(month):
    engine = month["engine"]
    with engine.connect() as conn:
        origins = dict(conn.execute(sa.select(paired_predictions.c.origin, sa.func.count()).group_by(paired_predictions.c.origin)).all())
    assert origins.get("batch", 0) > 0 and origins.get("online", 0) > 0, origins  # nightly and live shadow scoring
    promoted = [e for e in _rows(engine, promotion_events) if e["action"] == "promote" and e["reason"].startswith("A/B test")]
    decision = promoted[0]["metrics"]
    assert decision["test"] in ("paired_msprt", "split_msprt") and decision["n_labels"] > 0 and decision["sequential"]
    assert decision["paired"]["n"] > 0  # the labelled live products both versions scored
    runs = [s for s in _steps(month, "score_catalogue") if (s["results"].get("summarise") or {}).get("counts", {}).get("paired")]
    assert runs and "shadow-scored by both" in runs[0]["outcome"]


def test_the_label_free_estimate_is_checked_every_night(month):
    rows = [r for r in _rows(month["engine"], drift_checks) if r["metric"] == "estimated_performance"]
    judged = [r for r in rows if r["statistic"] is not None]
    assert len(judged) >= 5, [(r["check_date"], r["status"]) for r in rows]
    assert all(r["status"] in ("ok", "drift", "alert", "untrusted") for r in judged)
    first = min(judged, key=lambda r: r["check_date"])
    assert first["details"]["reference_run_id"] == first["details"]["run_id"]  # a version's first night is its reference
    checks = [s for s in _steps(month, "monitor_drift") if "estimated accuracy" in s["outcome"]]
    assert checks


def test_reviewers_work_the_queue_and_their_labels_reach_the_next_snapshot(month):
    engine = month["engine"]
    reviews = month["timeline"]["reviews"]
    assert {r["reviewer"] for r in reviews} == {"ana", "ben"} and all(r["labelled"] > 0 for r in reviews)
    labels = _rows(engine, review_labels)
    assert len(labels) == sum(r["labelled"] for r in reviews)
    with engine.connect() as conn:
        sources = {row.source for row in conn.execute(sa.select(feedback.c.source).where(feedback.c.productid.in_([r["productid"] for r in labels])))}
    assert sources <= {"review:ana", "review:ben"} and sources
    # day 6's ingestion (the partner's export, half its labels wrong) keeps the reviewers' labels: the human label wins
    day6 = [s for s in _steps(month, "ingest_products") if s["day"] == 6][0]
    snapshot = (day6["results"].get("ingest") or {})["snapshot_id"]
    settings = Settings(home=month["home"])
    products = load_products(open_store(settings.object_store_url, settings), snapshot).set_index("productid")
    latest = {r["productid"]: r["prdtypecode"] for r in sorted(labels, key=lambda r: r["labelled_at"])}
    assert all(int(products.loc[pid, "prdtypecode"]) == code for pid, code in latest.items() if pid in products.index)
    assert sum(pid in products.index for pid in latest) >= len(latest) // 2


def test_every_night_is_scored_with_fused_predictions(month):
    engine = month["engine"]
    runs = _rows(engine, scoring_runs)
    assert len(runs) >= 6 and all(r["status"] == "done" for r in runs)
    with engine.connect() as conn:
        shares = conn.execute(
            sa.select(predictions.c.run_id, sa.func.avg(sa.case((predictions.c.modality == "fused", 1.0), else_=0.0)))
            .group_by(predictions.c.run_id)
        ).all()
        challenger_rows = conn.execute(sa.select(sa.func.count()).where(predictions.c.variant == "challenger")).scalar_one()
    assert len(shares) == len(runs) and min(share for _, share in shares) > 0.9
    assert challenger_rows > 0  # the nights of the A/B test scored both arms


def test_report_and_timeline_are_written_and_services_are_stopped(month):
    home, ports = month["home"], month["ports"]
    report = (home / "report.html").read_text()
    assert "data:image/png;base64," in report and "evaluate_ab_test" in report
    assert "DAG runs in" in month["out"] and "Airflow UI" in month["out"]
    for port in (ports.airflow, ports.mlflow, ports.serving):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is still served after the demo"
