"""The human-readable side of the data-drift check: an evidently 0.7 report over the drift features.

The alert decision comes from :mod:`rakuten_ml.monitoring.statistics` (scipy, fast, testable); the
evidently report runs the same KS tests (``DataDriftPreset(method="ks")``) and renders their
distributions, so whoever gets paged opens one HTML page per day from the object store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from rakuten_ml.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

log = logging.getLogger(__name__)

REPORT_PREFIX = "monitoring/reports"
# evidently's metric type whose value is a column's p-value (method="ks") or divergence (kl_div).
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COLUMNS = "evidently:metric_v2:DriftedColumnsCount"


def report_key(check_date: date) -> str:
    """Object-store key of a day's data-drift report (a rerun of the day overwrites it)."""
    return f"{REPORT_PREFIX}/{check_date.isoformat()}/data_drift.html"


def data_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    *,
    threshold: float,
    drift_share: float,
    method: str = "ks",
) -> Snapshot:
    """Run ``DataDriftPreset`` on the numeric drift features (``method="ks"``: p-values; ``"kl_div"``: divergences)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in columns if reference[c].notna().any() and current[c].notna().any()]
    definition = DataDefinition(numerical_columns=list(columns))
    report = Report([DataDriftPreset(columns=list(columns), method=method, threshold=threshold, drift_share=drift_share)])
    return report.run(
        Dataset.from_pandas(current[list(columns)], data_definition=definition),
        Dataset.from_pandas(reference[list(columns)], data_definition=definition),
    )


def column_scores(snapshot: Snapshot) -> dict[str, float]:
    """Per-column value of the report: the KS p-value with method="ks"."""
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config: dict[str, Any] = metric.get("config", {})
        if config.get("type") == _VALUE_DRIFT:
            scores[str(config["column"])] = float(metric["value"])
    return scores


def drifted_columns(snapshot: Snapshot) -> tuple[int, float]:
    """(count, share) of drifted columns as evidently counts them."""
    for metric in snapshot.dict()["metrics"]:
        if metric.get("config", {}).get("type") == _DRIFTED_COLUMNS:
            return int(metric["value"]["count"]), float(metric["value"]["share"])
    return 0, 0.0


def save_report(store: ObjectStore, key: str, snapshot: Snapshot) -> str:
    """Write the standalone HTML page to the store; returns its key."""
    store.put_bytes(key, snapshot.get_html_str(as_iframe=False).encode("utf-8"))
    log.info("evidently data-drift report written to %s", store.uri(key))
    return key
