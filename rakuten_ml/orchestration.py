"""Constants shared by the DAG files (owner, retries, asset URIs): stdlib only, since the
scheduler imports this module every time it parses a DAG file."""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}
START_DATE = datetime(2026, 1, 1)
SNAPSHOT_ASSET_URI = "rakuten://dataset-snapshot"
MODEL_ASSET_URI = "rakuten://registered-model"
