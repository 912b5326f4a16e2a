"""Debounce of drift-triggered retraining: cool-down, force, failed runs, alert bookkeeping, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from rakuten_ml.monitoring import retrain_guard as guard
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import retrain_requests

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
WEEK = 168.0


def alert(alert_id: str, metric: str = "prediction_drift") -> dict:
    return {"alert_id": alert_id, "alerts": [{"metric": metric, "statistic": 0.4, "threshold": 0.1}]}


@pytest.fixture
def engine(pg_url, tmp_path):
    return Platform(Settings(home=tmp_path, database_url=pg_url)).prepare().engine


def request(engine, run_id: str, *, at: datetime = NOW, force: bool = False, alerts=()) -> guard.RetrainDecision:
    return guard.request_retrain(engine, dag_run_id=run_id, trigger="asset", alerts=list(alerts), reason="test",
                                 force=force, cooldown_hours=WEEK, now=at)


def status_of(engine, run_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(retrain_requests.c.status).where(retrain_requests.c.dag_run_id == run_id)).scalar_one()


def test_decide_is_a_pure_cooldown_rule():
    cooldown = timedelta(hours=WEEK)
    assert guard.decide(NOW, None, None, cooldown, force=False).proceed
    inside = guard.decide(NOW, "r1", NOW - timedelta(hours=10), cooldown, force=False)
    assert not inside.proceed and inside.status == "skipped_cooldown" and inside.blocking_run_id == "r1"
    assert guard.decide(NOW, "r1", NOW - timedelta(hours=10), cooldown, force=True).proceed
    assert guard.decide(NOW, "r1", NOW - timedelta(hours=WEEK + 1), cooldown, force=False).proceed


def test_second_alert_inside_the_cooldown_is_skipped_and_recorded(engine):
    first = request(engine, "asset__1", alerts=[alert("drift:2026-06-01:v1")])
    second = request(engine, "asset__2", at=NOW + timedelta(hours=24), alerts=[alert("drift:2026-06-02:v1")])
    assert first.proceed and not second.proceed and second.blocking_run_id == "asset__1"
    assert status_of(engine, "asset__2") == "skipped_cooldown"
    # the skipped alert counts as answered: a later monthly run does not claim it again
    assert guard.handled_alert_ids(engine) == {"drift:2026-06-01:v1", "drift:2026-06-02:v1"}
    # force overrides; after the cool-down a new alert trains again
    assert request(engine, "manual__3", at=NOW + timedelta(hours=25), force=True).proceed
    assert request(engine, "asset__4", at=NOW + timedelta(hours=25 + WEEK + 1)).proceed


def test_a_failed_training_does_not_hold_the_cooldown(engine):
    assert request(engine, "asset__1").proceed
    guard.finish_request(engine, "asset__1", status=guard.STATUS_FAILED, details={"error": "boom"})
    assert request(engine, "asset__2", at=NOW + timedelta(hours=1)).proceed
    guard.finish_request(engine, "asset__2", status=guard.STATUS_SUCCEEDED, snapshot_id="snap-x", model_version="7")
    row = guard.list_requests(engine)[0]
    assert row["status"] == "succeeded" and row["model_version"] == "7" and row["details"]["decision"]
    assert not request(engine, "asset__3", at=NOW + timedelta(hours=2)).proceed


def test_a_retried_decide_task_does_not_block_itself(engine):
    assert request(engine, "asset__1").proceed
    assert request(engine, "asset__1", at=NOW + timedelta(minutes=5)).proceed


def test_concurrent_requests_start_exactly_one_training(engine):
    """Two deployments (or a CLI and the DAG) racing: the advisory lock lets one through."""
    barrier = threading.Barrier(4)
    outcomes: list[bool] = []

    def race(i: int) -> None:
        barrier.wait()
        outcomes.append(request(engine, f"asset__{i}").proceed)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]


def test_alerts_from_airflow_events_and_pending_alerts():
    event = SimpleNamespace(extra=alert("drift:d1:v1"), timestamp=NOW, source_run_id="scheduled__x")
    bare = SimpleNamespace(extra={}, timestamp=NOW, source_run_id="manual__y")
    alerts = guard.alerts_from_events([event, event, bare])
    assert [a["alert_id"] for a in guard.unique_alerts(alerts)] == ["drift:d1:v1", f"manual__y@{NOW.isoformat()}"]
    assert alerts[0]["emitted_at"] == NOW.isoformat()
    assert guard.pending_alerts(alerts, {"drift:d1:v1"}) == [alerts[2]]


def test_trigger_and_default_reason():
    assert guard.trigger_of("asset_triggered", []) == "asset"
    assert guard.trigger_of("manual", [alert("a")]) == "asset"
    assert guard.trigger_of("scheduled", []) == "schedule"
    assert guard.trigger_of("manual", []) == "manual"
    assert guard.default_reason("asset", [alert("a", "data_drift"), alert("b", "concept_drift")]) == "drift alert (concept_drift, data_drift)"
    assert guard.default_reason("schedule", []) == "monthly schedule"


def test_begin_retrain_claims_unanswered_alerts_on_a_monthly_run(engine):
    old, new = alert("drift:d1:v1"), alert("drift:d2:v1", "data_drift")
    guard.request_retrain(engine, dag_run_id="asset__old", trigger="asset", alerts=[old], reason="x", force=False,
                          cooldown_hours=0.0, now=NOW - timedelta(days=40))
    summary = guard.begin_retrain(engine, dag_run_id="scheduled__m", run_type="scheduled", triggering=[], recent=[new, old],
                                  reason=None, force=False, cooldown_hours=WEEK)
    assert summary["proceed"] and summary["trigger"] == "schedule"
    assert [a["alert_id"] for a in summary["alerts"]] == ["drift:d2:v1"]
    assert summary["reason"] == "drift alert (data_drift), schedule run"
    triggered = guard.begin_retrain(engine, dag_run_id="asset__t", run_type="asset_triggered", triggering=[new], recent=[],
                                    reason="operator note", force=False, cooldown_hours=WEEK)
    assert not triggered["proceed"] and triggered["reason"] == "operator note"
    assert triggered["blocking_run_id"] == "scheduled__m"


def test_cooldown_counts_the_days_the_requests_stand_for_not_the_wall_clock(engine):
    """Replayed or backfilled days: day 0's training and day 4's alert are 4 days apart, whenever they ran."""
    day = datetime(2026, 11, 25, 3, tzinfo=UTC)
    first = guard.begin_retrain(engine, dag_run_id="manual__d0", run_type="manual", triggering=[], recent=[],
                                reason="first model", force=False, cooldown_hours=48.0, as_of=day)
    assert first["proceed"]
    day4 = alert("drift:d4:v1", "data_drift") | {"as_of": (day + timedelta(days=4)).isoformat()}
    assert guard.alerts_as_of([day4, alert("no-time")]) == day + timedelta(days=4)
    fourth = guard.begin_retrain(engine, dag_run_id="asset__d4", run_type="asset_triggered", triggering=[day4], recent=[],
                                 reason=None, force=False, cooldown_hours=48.0)
    assert fourth["proceed"], fourth  # 4 days later, although a few seconds of wall clock apart
    day5 = alert("drift:d5:v1", "data_drift") | {"as_of": (day + timedelta(days=5)).isoformat()}
    fifth = guard.begin_retrain(engine, dag_run_id="asset__d5", run_type="asset_triggered", triggering=[day5], recent=[],
                                reason=None, force=False, cooldown_hours=48.0)
    assert not fifth["proceed"] and fifth["blocking_run_id"] == "asset__d4"
    assert "asset__d4" in fifth["decision"] and fifth["reason"] == "drift alert (data_drift)"  # why refused, why asked


def test_a_failed_training_is_recorded_and_a_lost_database_does_not_hide_its_error(engine, caplog):
    assert request(engine, "asset__1").proceed
    guard.record_failure(engine, "asset__1", ValueError("bad snapshot"), snapshot_id="snap-1")
    assert status_of(engine, "asset__1") == "failed"
    assert guard.list_requests(engine)[0]["details"]["error"] == "ValueError: bad snapshot"
    dead = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing", connect_args={"connect_timeout": 1})
    guard.record_failure(dead, "asset__1", ValueError("bad snapshot"))  # logged, not raised: the training error follows
    assert "could not be marked failed" in caplog.text
