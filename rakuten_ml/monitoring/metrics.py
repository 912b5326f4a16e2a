"""Prometheus view of ``drift_checks``: gauges of the latest day's statistics and one alert gauge per rule.

:class:`DriftMetrics` owns its own :class:`CollectorRegistry`, so the serving app can expose it on
``/metrics`` beside its request metrics (``refresh`` then ``generate_latest(metrics.registry)``),
and the drift DAG writes the same registry as a node-exporter textfile. The alert rules in
``monitoring/prometheus/rules/drift.yml`` read these names.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.engine import Engine

from rakuten_ml.monitoring import DRIFTED_STATUSES, METRIC_DATA, RULE_METRICS, STATUS_ALERT, textfiles
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import drift_checks

TEXTFILE_NAME = "rakuten_drift.prom"


class DriftMetrics:
    """Gauges filled from the most recent check date in ``drift_checks`` (every version checked that day)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ("metric", "feature", "model_version")
        self.statistic = Gauge("rakuten_drift_statistic", "Drift statistic of the latest daily check (KS D, share, KL, mean confidence, accuracy)", labels, registry=self.registry)
        self.p_value = Gauge("rakuten_drift_p_value", "p-value of the latest daily test, where the statistic has one", labels, registry=self.registry)
        self.threshold = Gauge("rakuten_drift_threshold", "Threshold the statistic is compared with", labels, registry=self.registry)
        self.drifted = Gauge("rakuten_drift_drifted", "1 when the statistic breached its threshold today", labels, registry=self.registry)
        self.alert = Gauge("rakuten_drift_alert", "1 when the rule raised an alert (data drift: 3 consecutive days)", ("metric", "model_version"), registry=self.registry)
        self.consecutive_days = Gauge("rakuten_drift_consecutive_days", "Consecutive days the inputs drifted", ("model_version",), registry=self.registry)
        self.last_check = Gauge("rakuten_drift_last_check_timestamp_seconds", "When the latest drift check ran (Unix time)", ("model_version",), registry=self.registry)

    def refresh(self, engine: Engine) -> int:
        """Replace every gauge's series by the latest check date's rows; returns how many rows were read."""
        with engine.connect() as conn:
            latest = conn.execute(sa.select(sa.func.max(drift_checks.c.check_date))).scalar_one_or_none()
            rows = [] if latest is None else conn.execute(
                sa.select(drift_checks).where(drift_checks.c.check_date == sa.bindparam("day")), {"day": latest}
            ).all()
        for gauge in (self.statistic, self.p_value, self.threshold, self.drifted, self.alert, self.consecutive_days, self.last_check):
            gauge.clear()
        last_check: dict[str, float] = {}
        for row in rows:
            labels = (row.metric, row.feature, row.model_version)
            if row.statistic is not None:
                self.statistic.labels(*labels).set(row.statistic)
            if row.p_value is not None:
                self.p_value.labels(*labels).set(row.p_value)
            if row.threshold is not None:
                self.threshold.labels(*labels).set(row.threshold)
            self.drifted.labels(*labels).set(1.0 if row.status in DRIFTED_STATUSES else 0.0)
            if row.metric in RULE_METRICS:
                self.alert.labels(row.metric, row.model_version).set(1.0 if row.status == STATUS_ALERT else 0.0)
                if row.metric == METRIC_DATA and "consecutive_days" in (row.details or {}):
                    self.consecutive_days.labels(row.model_version).set(float(row.details["consecutive_days"]))
            checked_at = row.checked_at if row.checked_at.tzinfo else row.checked_at.replace(tzinfo=UTC)  # SQLite drops tz
            last_check[row.model_version] = max(last_check.get(row.model_version, 0.0), checked_at.timestamp())
        for version, timestamp in last_check.items():
            self.last_check.labels(version).set(timestamp)
        return len(rows)


def textfile_path(settings: Settings) -> Path:
    return textfiles.textfile_path(settings, settings.drift.metrics_textfile, TEXTFILE_NAME)


def write_textfile(engine: Engine, path: Path) -> Path:
    """Write the drift gauges in Prometheus text format for node-exporter's textfile collector (atomic)."""
    return textfiles.write_refreshed(DriftMetrics(), engine, path)
