"""Prometheus side of drift monitoring: gauges filled from drift_checks (PostgreSQL) and the textfile (the alert
rules are checked in ``tests/unit/test_drift_alert_rules.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rakuten_ml.monitoring.drift_store import store_results
from rakuten_ml.monitoring.metrics import DriftMetrics, textfile_path, write_textfile
from rakuten_ml.monitoring.rules import CheckRow
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings

CHECKED_AT = datetime(2026, 7, 2, 4, 5, tzinfo=UTC)


def day_rows(data_status: str, kl: float) -> list[CheckRow]:
    return [
        CheckRow("ks", "description_length", 0.21, 1e-9, 0.05, "drift", {"n_current": 900}),
        CheckRow("data_drift", "share", 0.46, 1e-9, 0.3, data_status, {"consecutive_days": 3 if data_status == "alert" else 1}),
        CheckRow("prediction_drift", "prdtypecode", kl, None, 0.1, "alert" if kl > 0.1 else "ok", {}),
        CheckRow("confidence_drift", "confidence", 0.86, None, 0.75, "ok", {}),
        CheckRow("concept_drift", "accuracy", None, None, None, "insufficient_data", {}),
    ]


@pytest.fixture
def engine(pg_url, tmp_path):
    return Platform(Settings(home=tmp_path, database_url=pg_url)).prepare().engine


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_gauges_show_the_latest_check_date_only(engine):
    store_results(engine, date(2026, 7, 1), "3", day_rows("drift", 0.02), CHECKED_AT.replace(day=1))
    store_results(engine, date(2026, 7, 2), "3", day_rows("alert", 0.25), CHECKED_AT)
    metrics = DriftMetrics()
    assert metrics.refresh(engine) == 5
    values = samples(generate_latest(metrics.registry).decode())
    label = lambda **kw: frozenset(kw.items())  # noqa: E731
    assert values[("rakuten_drift_alert", label(metric="data_drift", model_version="3"))] == 1.0
    assert values[("rakuten_drift_alert", label(metric="prediction_drift", model_version="3"))] == 1.0
    assert values[("rakuten_drift_alert", label(metric="concept_drift", model_version="3"))] == 0.0
    assert values[("rakuten_drift_statistic", label(metric="prediction_drift", feature="prdtypecode", model_version="3"))] == 0.25
    assert values[("rakuten_drift_p_value", label(metric="ks", feature="description_length", model_version="3"))] == 1e-9
    assert values[("rakuten_drift_drifted", label(metric="ks", feature="description_length", model_version="3"))] == 1.0
    assert values[("rakuten_drift_consecutive_days", label(model_version="3"))] == 3.0
    assert values[("rakuten_drift_last_check_timestamp_seconds", label(model_version="3"))] == CHECKED_AT.timestamp()
    # no statistic, no series: an absent accuracy is not a zero accuracy
    assert ("rakuten_drift_statistic", label(metric="concept_drift", feature="accuracy", model_version="3")) not in values


def test_refresh_on_an_empty_table_and_the_textfile(engine, tmp_path):
    assert DriftMetrics().refresh(engine) == 0
    store_results(engine, date(2026, 7, 2), "3", day_rows("alert", 0.02), CHECKED_AT)
    path = write_textfile(engine, tmp_path / "textfile" / "rakuten_drift.prom")
    values = samples(path.read_text())
    assert values[("rakuten_drift_alert", frozenset({"metric": "data_drift", "model_version": "3"}.items()))] == 1.0
    assert textfile_path(Settings(home=tmp_path)) == tmp_path.resolve() / "metrics" / "rakuten_drift.prom"
