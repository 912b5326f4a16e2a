"""Automatic rollback of a degrading champion against PostgreSQL and the MLflow server."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta

import pytest

from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.promotion.rollback import Alert, guard_champion, register_alert_hook, unregister_alert_hook
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.resources import Platform
from tests.support.promotion import events, insert_labelled, register_versions

GUARD = Actor("airflow:guard_champion", "scheduled__2026-03-01T10:15")


@pytest.fixture
def alerts():
    received: list[Alert] = []
    register_alert_hook(received.append)
    yield received
    unregister_alert_hook(received.append)


def promote_twice(platform: Platform) -> tuple[str, str]:
    """v1 champion, then v2 promoted over it (v1 becomes previous-champion), through the audited path."""
    v1, v2 = register_versions(platform.settings, [0.85, 0.86])
    aliases.promote(platform, v1, actor=GUARD, reason="first", expected_champion=None)
    aliases.promote(platform, v2, actor=GUARD, reason="A/B win", expected_champion=v1)
    return v1, v2


def test_degraded_champion_rolls_back_once_then_guard_is_a_no_op(psettings, alerts, caplog):
    platform = Platform(psettings).prepare()
    v1, v2 = promote_twice(platform)
    insert_labelled(platform, v2, range(300), [i % 10 < 7 for i in range(300)])  # 70% on 300 labels vs baseline 86%

    with caplog.at_level(logging.ERROR):
        first = guard_champion(platform, actor=GUARD)
    assert first.rolled_back and first.check.accuracy == pytest.approx(0.70)
    state = ModelRegistry(psettings).state()
    assert state == RegistryState(psettings.registered_model_name, champion=v1, challenger=None, previous_champion=None)
    event = events(platform)[0]
    assert (event["action"], event["from_version"], event["to_version"]) == ("rollback", v2, v1)
    assert event["actor"] == GUARD.user and event["dag_run_id"] == GUARD.dag_run_id
    assert "rolling accuracy 0.7000 on 300 labels < baseline 0.8600 - 0.02" in event["reason"]
    assert event["metrics"]["n"] == 300 and event["metrics"]["degraded"] is True
    assert [a.name for a in alerts] == ["champion_rolled_back"] and alerts[0].version == v2
    assert any(r.levelno == logging.ERROR and "ALERT champion_rolled_back" in r.getMessage() for r in caplog.records)
    tags = ModelRegistry(psettings).version(v2).tags
    assert tags["promotion.last_action"] == "rollback" and "rolling accuracy" in tags["promotion.reason"]

    n_events = len(events(platform))
    second = guard_champion(platform, actor=GUARD, error_rate=math.nan)  # v1 is healthy (no labels yet, no traffic): nothing to do
    assert not second.rolled_back and second.move is None
    assert json.loads(json.dumps(second.summary(), allow_nan=False))["check"]["accuracy"] is None
    assert len(events(platform)) == n_events and len(alerts) == 1

    insert_labelled(platform, v1, range(1000, 1200), [i % 2 == 0 for i in range(200)], seed=1)  # v1 degrades too
    third = guard_champion(platform, actor=GUARD)
    assert not third.rolled_back and "no previous-champion to roll back to" in third.message
    assert ModelRegistry(psettings).state().champion == v1  # never left without a champion
    assert len(events(platform)) == n_events
    assert [a.name for a in alerts] == ["champion_rolled_back", "champion_degraded"]


def test_rolling_window_and_serving_limits(psettings, alerts):
    platform = Platform(psettings).prepare()
    v1, v2 = promote_twice(platform)
    # 300 good old predictions, then 150 recent ones at 60%: only a short window sees the drop
    insert_labelled(platform, v2, range(300), [True] * 300, at=datetime.now(UTC) - timedelta(days=3))
    insert_labelled(platform, v2, range(300, 450), [i % 5 < 3 for i in range(150)], seed=2)
    wide = guard_champion(platform, actor=GUARD)
    assert not wide.rolled_back and wide.check.n == 450 and wide.check.accuracy == pytest.approx(390 / 450)

    slow = guard_champion(platform, actor=GUARD, p95_latency_ms=2500.0)  # healthy accuracy, too slow
    assert slow.rolled_back and "P95 latency 2500 ms > 1000 ms" in events(platform)[0]["reason"]
    assert ModelRegistry(psettings).state().champion == v1

    aliases.promote(platform, v2, actor=GUARD, reason="retry after latency fix", expected_champion=v1)
    narrow = guard_champion(Platform(psettings.replace(rollback_window=150)).prepare(), actor=GUARD)
    assert narrow.rolled_back and narrow.check.n == 150 and narrow.check.accuracy == pytest.approx(0.6)
    assert [a.name for a in alerts] == ["champion_rolled_back", "champion_rolled_back"]
