"""Constants and small helpers shared by the DAG files (owner, retries, asset URIs, asset event payloads):
stdlib only, since the scheduler imports this module every time it parses a DAG file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}
START_DATE = datetime(2026, 1, 1)
SNAPSHOT_ASSET_URI = "rakuten://dataset-snapshot"
MODEL_ASSET_URI = "rakuten://registered-model"
# The retrain form's modalities choice -> its label; rakuten_ml.training.modalities says what each trains.
MODALITY_CHOICES = {
    "champion": "Same as the champion (else the newest version; text+image for a first model)",
    "text+image": "Text and image",
    "text": "Text only",
}


def run_as_of(logical_date: datetime | None, run_after: datetime | None = None) -> datetime:
    """The time a run stands for: its logical date (a rerun or backfill of a day stays that day), else when it ran."""
    moment = logical_date or run_after or datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def snapshot_event_extra(summary: Mapping[str, Any], as_of: datetime) -> dict[str, Any]:
    """What an event on the snapshot asset carries: which snapshot, whether its content is new, and its day."""
    return {
        "snapshot_id": summary["snapshot_id"],
        "new": bool(summary.get("created")),
        "n_accepted": summary.get("n_accepted"),
        "n_quarantined": summary.get("n_quarantined"),
        "as_of": as_of.isoformat(),
    }


def latest_event_extra(events: Iterable[Any]) -> dict[str, Any]:
    """The extra of the newest of a run's triggering asset events (duck-typed: ``.extra`` and ``.timestamp``)."""
    newest = max(events, key=lambda event: str(getattr(event, "timestamp", "")), default=None)
    return dict(getattr(newest, "extra", None) or {})
