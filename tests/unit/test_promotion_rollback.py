"""Automatic rollback: the pure health rules and the alert hooks (a degrading champion against PostgreSQL
and the MLflow server is in ``tests/integration/test_promotion_rollback_guard.py``)."""

from __future__ import annotations

import json
import logging
import math

from rakuten_ml.promotion.rollback import Alert, alert, assess, recent_alerts, register_alert_hook, unregister_alert_hook
from rakuten_ml.settings import RollbackSettings


def test_accuracy_rule_needs_enough_labels_and_uses_the_tolerance():
    degraded = assess("2", n=300, correct=240, baseline_accuracy=0.85, policy=RollbackSettings())  # 0.80 < 0.85 - 0.02
    assert degraded.degraded and "rolling accuracy 0.8000 on 300 labels < baseline 0.8500 - 0.02" in degraded.reasons[0]
    assert not assess("2", n=300, correct=250, baseline_accuracy=0.85, policy=RollbackSettings()).degraded  # 0.833 >= 0.83
    assert not assess("2", n=50, correct=0, baseline_accuracy=0.85, policy=RollbackSettings(min_samples=100)).degraded  # too few labels
    assert not assess("2", n=300, correct=0, baseline_accuracy=None, policy=RollbackSettings()).degraded  # no baseline: accuracy not judged


def test_serving_limits_are_inputs():
    check = assess("2", n=0, correct=0, baseline_accuracy=0.85, error_rate=0.2, p95_latency_ms=2500, policy=RollbackSettings())
    assert check.reasons == ("error rate 0.2000 > 0.05", "P95 latency 2500 ms > 1000 ms")
    assert not assess("2", n=0, correct=0, baseline_accuracy=0.85, error_rate=0.01, p95_latency_ms=400, policy=RollbackSettings()).degraded


def test_non_finite_numbers_are_unknown_not_healthy_numbers():
    """Prometheus gives NaN for 0/0 (no traffic): not judged, and None in the summary (NaN breaks strict JSON)."""
    check = assess("2", n=300, correct=240, baseline_accuracy=math.nan, error_rate=math.nan, p95_latency_ms=math.inf, policy=RollbackSettings())
    assert not check.degraded and (check.baseline_accuracy, check.error_rate, check.p95_latency_ms) == (None, None, None)
    json.dumps(check.as_dict(), allow_nan=False)
    assert assess("2", n=0, correct=0, baseline_accuracy=0.85, error_rate=math.nan, p95_latency_ms=2500, policy=RollbackSettings()).reasons == ("P95 latency 2500 ms > 1000 ms",)


def test_alert_reaches_hooks_and_a_broken_hook_does_not_hide_it(caplog):
    received: list[Alert] = []

    def broken(_: Alert) -> None:
        raise RuntimeError("exporter down")

    register_alert_hook(broken)
    register_alert_hook(received.append)
    try:
        with caplog.at_level(logging.ERROR):
            alert(Alert("champion_rolled_back", "clf", "2", "test alert"))
    finally:
        unregister_alert_hook(broken)
        unregister_alert_hook(received.append)
    assert [a.message for a in received] == ["test alert"]
    assert recent_alerts()[-1].message == "test alert"
    assert any(r.levelno == logging.ERROR and "ALERT champion_rolled_back" in r.getMessage() for r in caplog.records)
