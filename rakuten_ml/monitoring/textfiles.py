"""Prometheus textfiles of the batch jobs (drift checks, catalogue scoring): where they go and how
they are written. The serving app's /metrics serves every ``*.prom`` file of ``$RAKUTEN_HOME/metrics``,
node-exporter's textfile collector reads the same format."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile

from rakuten_ml.settings import Settings

METRICS_DIR = "metrics"


def textfile_path(settings: Settings, configured: str, name: str) -> Path:
    """``configured`` when set, else ``$RAKUTEN_HOME/metrics/<name>`` (where serving looks)."""
    return Path(configured) if configured else settings.home / METRICS_DIR / name


def write_registry(registry: CollectorRegistry, path: Path) -> Path:
    """Write ``registry`` atomically (a scrape never sees half a file), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path
