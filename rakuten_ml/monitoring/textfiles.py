"""Prometheus textfiles of the batch jobs (drift checks, catalogue scoring): where they go and how
they are written. The serving app's /metrics serves every ``*.prom`` file of ``$RAKUTEN_HOME/metrics``,
node-exporter's textfile collector reads the same format."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, write_to_textfile
from sqlalchemy.engine import Engine

from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)

METRICS_DIR = "metrics"


class DatabaseMetrics(Protocol):
    """A registry of series filled from the database (DriftMetrics, ScoringMetrics)."""

    registry: CollectorRegistry

    def refresh(self, engine: Engine) -> int: ...


def textfile_path(settings: Settings, configured: str, name: str) -> Path:
    """``configured`` when set, else ``$RAKUTEN_HOME/metrics/<name>`` (where serving looks)."""
    return Path(configured) if configured else settings.home / METRICS_DIR / name


def write_refreshed(metrics: DatabaseMetrics, engine: Engine, path: Path) -> Path:
    """Fill ``metrics`` from the database and write them atomically (a scrape never sees half a
    file), creating the folder."""
    metrics.refresh(engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), metrics.registry)
    log.info("%s written to %s", type(metrics).__name__, path)
    return path
