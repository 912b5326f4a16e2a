"""Prometheus view of batch scoring (``scoring_runs``): totals over every finished run and the latest
run's counts, outcome, duration and time, so dashboards show what last night scored and alerts fire
when the nightly run failed or did not happen.

Like the drift gauges, they are written as a node-exporter textfile when a run finishes
(:func:`write_textfile`), and the serving app's ``/metrics`` serves every ``*.prom`` file of
``$RAKUTEN_HOME/metrics``. The alert rules are in ``monitoring/prometheus/rules/scoring.yml``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.engine import Engine

from rakuten_ml.monitoring import textfiles
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import paired_predictions, scoring_runs

TEXTFILE_NAME = "rakuten_scoring.prom"
FINISHED = ("done", "failed")


def _timestamp(value: datetime | None) -> float:
    if value is None:
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()  # SQLite drops the time zone


class ScoringMetrics:
    """Series filled from ``scoring_runs`` by :meth:`refresh`; a registry of its own, like DriftMetrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.products = Counter(
            "rakuten_batch_scoring_products", "Products of every finished batch scoring run, by kind (scored, fused, "
            "text_only, image_only, failed, auto, challenger, image_reused).", ["kind"], registry=r,
        )
        self.runs = Counter("rakuten_batch_scoring_runs", "Finished batch scoring runs by outcome (done, failed).", ["outcome"], registry=r)
        self.last_products = Gauge("rakuten_batch_scoring_last_run_products", "The latest finished run's products, by kind.", ["kind"], registry=r)
        self.last_success = Gauge("rakuten_batch_scoring_last_run_success", "1 when the latest finished run scored every partition.", registry=r)
        self.last_finished = Gauge("rakuten_batch_scoring_last_run_finished_timestamp_seconds", "When the latest run finished (Unix time).", registry=r)
        self.last_duration = Gauge("rakuten_batch_scoring_last_run_duration_seconds", "Wall time of the latest finished run.", registry=r)
        self.last_good = Gauge(
            "rakuten_batch_scoring_last_success_timestamp_seconds", "When the latest complete run finished (Unix time).", registry=r,
        )
        self.disagreement = Gauge(
            "rakuten_batch_scoring_last_run_disagreement_rate",
            "Share of the latest run's shadow-scored products where champion and challenger predicted different classes.",
            registry=r,
        )
        self.class_disagreement = Gauge(
            "rakuten_batch_scoring_last_run_class_disagreement_rate",
            "The same share among the products the champion put in each class.", ["prdtypecode"], registry=r,
        )
        self.model_info = Gauge(
            "rakuten_batch_scoring_last_run_model_info", "1 for the champion version the latest finished run used.",
            ["model_version"], registry=r,
        )

    def refresh(self, engine: Engine) -> int:
        """Fill the series from every finished run; returns how many runs were read. Call once, on a
        fresh instance: counters only go up, and series without data are removed from the registry."""
        stmt = sa.select(scoring_runs).where(scoring_runs.c.status.in_(sa.bindparam("finished", expanding=True)))
        with engine.connect() as conn:
            runs = [row._mapping for row in conn.execute(stmt, {"finished": list(FINISHED)})]
        for run in runs:
            self.runs.labels(run["status"]).inc()
            for kind, value in (run["counts"] or {}).items():
                self.products.labels(kind).inc(max(int(value), 0))
        if not runs:  # no series rather than zeros: a zero success flag would page before the first night
            for gauge in (self.last_success, self.last_finished, self.last_duration, self.last_good):
                self.registry.unregister(gauge)
            return 0
        latest = max(runs, key=lambda run: _timestamp(run["finished_at"]))
        for kind, value in (latest["counts"] or {}).items():
            self.last_products.labels(kind).set(int(value))
        self.last_success.set(1.0 if latest["status"] == "done" else 0.0)
        self.last_finished.set(_timestamp(latest["finished_at"]))
        self.last_duration.set(max(_timestamp(latest["finished_at"]) - _timestamp(latest["started_at"]), 0.0))
        self.model_info.labels(str((latest["models"] or {}).get("champion", {}).get("version", ""))).set(1.0)
        self._refresh_disagreement(engine, latest)
        good = [_timestamp(run["finished_at"]) for run in runs if run["status"] == "done"]
        if good:
            self.last_good.set(max(good))
        else:
            self.registry.unregister(self.last_good)
        return len(runs)


    def _refresh_disagreement(self, engine: Engine, latest: Any) -> None:
        """Champion vs challenger disagreement of the latest run, overall and per champion class; no series without pairs."""
        counts = latest["counts"] or {}
        if not int(counts.get("paired", 0)):
            self.registry.unregister(self.disagreement)
            return
        self.disagreement.set(int(counts.get("disagreed", 0)) / int(counts["paired"]))
        pairs = paired_predictions
        stmt = (
            sa.select(pairs.c.champion_code, sa.func.count().label("n"),
                      sa.func.sum(sa.case((pairs.c.champion_code != pairs.c.challenger_code, 1), else_=0)).label("disagreed"))
            .where(pairs.c.source_id == sa.bindparam("run"))
            .group_by(pairs.c.champion_code)
        )
        with engine.connect() as conn:
            for row in conn.execute(stmt, {"run": latest["run_id"]}):
                self.class_disagreement.labels(str(row.champion_code)).set(int(row.disagreed) / int(row.n))


def textfile_path(settings: Settings) -> Path:
    return textfiles.textfile_path(settings, settings.scoring.metrics_textfile, TEXTFILE_NAME)


def write_textfile(engine: Engine, path: Path) -> Path:
    """Write the scoring series in Prometheus text format (atomic: a scrape never sees half a file)."""
    return textfiles.write_refreshed(ScoringMetrics(), engine, path)
