"""The daily drift check: load a window of predictions, run the production plan's rules
(:mod:`rakuten_ml.monitoring.rules`), store the rows and decide the alerts.

The rules are side-effect free; this module is the edge that reads the database
(:mod:`~rakuten_ml.monitoring.drift_store`), the object store (snapshots, sampled images) and the
registry (:mod:`~rakuten_ml.monitoring.reference`), and writes the results and the evidently report.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.monitoring import METRIC_DATA, METRIC_ESTIMATED, RULE_METRICS
from rakuten_ml.monitoring.drift_store import (
    drift_history,
    first_run_sums,
    latest_per_product,
    latest_run_sums,
    load_labels,
    load_predictions,
    primary_model_version,
    store_results,
    window_bounds,
)
from rakuten_ml.monitoring.features import DriftFeaturizer
from rakuten_ml.monitoring.reference import ModelReference, reference_for
from rakuten_ml.monitoring.rules import CheckRow, DayEvaluation, DayInputs, evaluate_day
from rakuten_ml.monitoring.sampling import DEFAULT_IMAGE_SAMPLE, DEFAULT_MAX_ROWS, load_image_statistics, sample_rows
from rakuten_ml.resources import Platform
from rakuten_ml.settings import DriftSettings
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftCheckResult:
    check_date: date
    model_version: str | None
    window_start: datetime
    window_end: datetime
    rows: list[CheckRow]
    report_key: str | None = None
    reference_snapshot_id: str | None = None

    @property
    def alerts(self) -> list[CheckRow]:
        return [r for r in self.rows if r.metric in RULE_METRICS and r.is_alert]

    @property
    def alert_id(self) -> str:
        """Stable per day and version: a rerun of the day's check raises the same alert, not a new one."""
        return f"drift:{self.check_date.isoformat()}:v{self.model_version}"

    def alert_payload(self) -> dict[str, Any]:
        """What the drift-alert asset event carries (JSON values only): which alerts, their statistics."""
        return {
            "alert_id": self.alert_id,
            "check_date": self.check_date.isoformat(),
            "as_of": self.window_end.isoformat(),  # the time the alert stands for: a retrain it causes is dated so
            "model_version": self.model_version,
            "report_key": self.report_key,
            "alerts": [
                {"metric": r.metric, "feature": r.feature, "statistic": r.statistic, "threshold": r.threshold,
                 "p_value": r.p_value, "details": r.details}
                for r in self.alerts
            ],
        }

    def summary(self) -> dict[str, Any]:
        return {
            "check_date": self.check_date.isoformat(),
            "model_version": self.model_version,
            "window": [self.window_start.isoformat(), self.window_end.isoformat()],
            "reference_snapshot_id": self.reference_snapshot_id,
            "report_key": self.report_key,
            "rules": {r.metric: {"status": r.status, "statistic": r.statistic, "threshold": r.threshold}
                      for r in self.rows if r.metric in RULE_METRICS},
            "alerts": [r.metric for r in self.alerts],
            "alert": self.alert_payload() if self.alerts else None,
        }


def _as_of(check_date: date | None, as_of: datetime | None) -> tuple[date, datetime]:
    """A day's check covers the window ending at ``as_of`` (default: the end of ``check_date``, or now)."""
    if as_of is None:
        as_of = datetime.combine(check_date + timedelta(days=1), time(), tzinfo=UTC) if check_date else datetime.now(UTC)
    elif as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return check_date or (as_of - timedelta(microseconds=1)).date(), as_of


def run_drift_checks(
    platform: Platform,
    *,
    check_date: date | None = None,
    as_of: datetime | None = None,
    window_days: int | None = None,
    model_version: str | None = None,
    reference_snapshot_id: str | None = None,
    current_snapshot_id: str | None = None,
    baseline_accuracy: float | None = None,
    write_report: bool = True,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    image_sample: int = DEFAULT_IMAGE_SAMPLE,
) -> DriftCheckResult:
    """Run the day's drift checks for one model version, store them in ``drift_checks`` and return the verdicts.

    The data and prediction checks see the ``window_days`` before ``as_of``; the confidence and concept
    checks their own (7- and 30-day) windows. The version defaults to the one that made most of the
    window's predictions; its reference (training snapshot, validation accuracy and class distribution)
    comes from the registry unless given.
    """
    settings = platform.settings
    rules = settings.drift
    check_date, as_of = _as_of(check_date, as_of)
    window_days = window_days or settings.drift.window_days
    start, end = window_bounds(as_of, window_days)
    widest = max(window_days, rules.confidence_window_days, rules.concept_window_days)
    loaded = load_predictions(platform.engine, as_of - timedelta(days=widest), end, model_version)
    model_version = model_version or primary_model_version(latest_per_product(loaded, start))
    if model_version is None:
        log.warning("no predictions between %s and %s: nothing to check", start, end)
        return DriftCheckResult(check_date, None, start, end, [])
    loaded = loaded[loaded["model_version"].astype(str) == model_version]
    reference = reference_for(settings, model_version, reference_snapshot_id, baseline_accuracy)
    inputs = load_day_inputs(
        platform, loaded, reference, start=start, as_of=as_of, rules=rules,
        current_snapshot_id=current_snapshot_id, max_rows=max_rows, image_sample=image_sample,
    )
    history = drift_history(platform.engine, model_version, check_date, rules.consecutive_days)
    estimate_history = drift_history(platform.engine, model_version, check_date, rules.consecutive_days,
                                     metric=METRIC_ESTIMATED, feature="accuracy")
    evaluation = evaluate_day(inputs, rules, history=history, check_date=check_date, estimate_history=estimate_history,
                              featurizer=DriftFeaturizer(random_state=settings.random_seed))
    rows = evaluation.rows
    report_key = None
    if write_report and len(evaluation.current_features) and len(evaluation.reference_features):
        report_key = _write_report(platform.store, check_date, evaluation, rules)
        rows = [CheckRow(**{**asdict(r), "details": r.details | {"report_key": report_key}}) if r.metric == METRIC_DATA else r
                for r in rows]
    store_results(platform.engine, check_date, model_version, rows, datetime.now(UTC))
    for row in rows:
        if row.metric in RULE_METRICS:
            log.info("drift %s v%s %s: %s (statistic %s, threshold %s)", check_date, model_version, row.metric,
                     row.status, row.statistic, row.threshold)
    return DriftCheckResult(check_date, model_version, start, end, rows, report_key, reference.snapshot_id)


def load_day_inputs(
    platform: Platform,
    loaded: pd.DataFrame,
    reference: ModelReference,
    *,
    start: datetime,
    as_of: datetime,
    rules: DriftSettings,
    current_snapshot_id: str | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    image_sample: int = DEFAULT_IMAGE_SAMPLE,
) -> DayInputs:
    """Read what one version's day needs: its products (reference and scored), predictions, feedback, images.

    ``loaded`` holds that version's predictions over the widest window; each rule takes its own slice.
    """
    engine, store, seed = platform.engine, platform.store, platform.settings.random_seed
    window = latest_per_product(loaded, start)
    reference_products = load_products(store, reference.snapshot_id)
    # the scored products' text comes from the latest snapshot: predictions only hold ids
    current_products = load_products(store, current_snapshot_id or latest_snapshot_id(engine))
    current_products = current_products[current_products["productid"].isin(window["productid"].dropna().astype("int64"))]
    if reference.predicted_class_counts is not None:
        reference_counts, source = reference.predicted_class_counts, "validation_predictions"
    else:
        labels = reference_products["prdtypecode"].astype(int).value_counts()
        reference_counts, source = np.array([float(labels.get(c, 0)) for c in CLASS_CODES]), "training_labels"
    concept = latest_per_product(loaded, as_of - timedelta(days=rules.concept_window_days)).dropna(subset=["productid"])
    labelled = concept.merge(load_labels(engine, concept["productid"].tolist()), on="productid")
    confidence = latest_per_product(loaded, as_of - timedelta(days=rules.confidence_window_days))
    reference_images = load_image_statistics(store, reference_products, image_sample, seed)
    current_images = load_image_statistics(store, current_products, image_sample, seed)
    if reference_images is None or current_images is None:  # images on one side only: nothing to compare
        reference_images = current_images = None
    version = str(loaded["model_version"].iloc[0]) if len(loaded) else None
    night = latest_run_sums(engine, version, start, as_of) if version else None
    first = first_run_sums(engine, version, as_of) if version else None
    return DayInputs(
        reference_products=sample_rows(reference_products, max_rows, seed),
        current_products=sample_rows(current_products, max_rows, seed),
        reference_class_counts=reference_counts,
        window_codes=window["prdtypecode"].to_numpy(),
        confidences=confidence["confidence"].to_numpy(),
        labelled_predicted=labelled["prdtypecode"].to_numpy(),
        labelled_true=labelled["true_code"].to_numpy(),
        baseline_accuracy=reference.baseline_accuracy,
        reference_images=reference_images,
        current_images=current_images,
        reference_source=source,
        labelled_confidence=labelled["confidence"].to_numpy(dtype=float),
        estimate_sums=night.sums if night else None,
        reference_sums=first.sums if first else None,
        estimate_run=night.run_id if night else None,
        reference_run=first.run_id if first else None,
    )


def _write_report(store: ObjectStore, check_date: date, evaluation: DayEvaluation, rules: DriftSettings) -> str:
    from rakuten_ml.monitoring.evidently_report import data_drift_report, report_key, save_report

    snapshot = data_drift_report(
        evaluation.reference_features, evaluation.current_features, evaluation.tested_features,
        method="ks", threshold=rules.ks_p_value, drift_share=rules.feature_share,
    )
    return save_report(store, report_key(check_date), snapshot)
