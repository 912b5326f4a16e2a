"""The drift rules of the production plan (docs/production-plan.md), free of I/O: one day's loaded
inputs in, one ``drift_checks`` row per rule (plus one per KS feature) out.

- ``data_drift``: share of drift features with KS p < 0.05; alert when above the threshold 3 days in a row;
- ``prediction_drift``: KL(predicted classes || reference), Laplace-smoothed; alert when > 0.1;
- ``confidence_drift``: mean confidence over the last 7 days; alert when < 0.75;
- ``concept_drift``: accuracy on labelled feedback (30-day window); alert when > 3 points below validation.

:mod:`rakuten_ml.monitoring.checks` is the job that loads the inputs and stores the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from rakuten_ml.jsonsafe import finite_or_none
from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.monitoring import (
    DRIFTED_STATUSES,
    METRIC_CONCEPT,
    METRIC_CONFIDENCE,
    METRIC_DATA,
    METRIC_KS,
    METRIC_PREDICTION,
    STATUS_ALERT,
    STATUS_DRIFT,
    STATUS_NO_DATA,
    STATUS_OK,
)
from rakuten_ml.monitoring import statistics as st
from rakuten_ml.monitoring.features import IMAGE_FEATURES, DriftFeaturizer
from rakuten_ml.settings import DriftSettings

FEATURE_SHARE = "share"  # the feature name of the data-drift row


@dataclass(frozen=True)
class CheckRow:
    """One ``drift_checks`` row (without its day and version keys)."""

    metric: str
    feature: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    status: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_alert(self) -> bool:
        return self.status == STATUS_ALERT


@dataclass(frozen=True)
class DayInputs:
    """Everything one day's check reads, already loaded (so the evaluation itself has no I/O)."""

    reference_products: pd.DataFrame  # designation, description of the model's training snapshot
    current_products: pd.DataFrame  # the same columns for the products scored in the window
    reference_class_counts: np.ndarray  # predicted (or labelled) class counts on reference data, CLASS_CODES order
    window_codes: np.ndarray  # predicted classes in the data window, one per product
    confidences: np.ndarray  # predicted confidences over the confidence window, one per product
    labelled_predicted: np.ndarray  # predictions that have feedback, over the concept window
    labelled_true: np.ndarray  # their true labels
    baseline_accuracy: float | None  # the model version's validation accuracy
    reference_images: pd.DataFrame | None = None  # image statistics (IMAGE_FEATURES) of sampled products
    current_images: pd.DataFrame | None = None
    reference_source: str = "training_labels"


@dataclass(frozen=True)
class DayEvaluation:
    rows: list[CheckRow]
    reference_features: pd.DataFrame
    current_features: pd.DataFrame
    tested_features: tuple[str, ...]


_num = finite_or_none  # JSON- and SQL-safe float: NaN/inf become None


def data_drift_rows(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], rules: DriftSettings
) -> list[CheckRow]:
    """One KS row per feature and the day's data-drift row (status drift/ok, before the consecutive rule)."""
    tests = st.ks_tests(reference, current, features)
    rows = [
        CheckRow(
            METRIC_KS,
            t.feature,
            _num(t.statistic),
            _num(t.p_value),
            rules.ks_p_value,
            STATUS_NO_DATA if not t.tested else (STATUS_DRIFT if t.drifted(rules.ks_p_value) else STATUS_OK),
            {"n_reference": t.n_reference, "n_current": t.n_current},
        )
        for t in tests
    ]
    decision = st.data_drift_decision(
        tests, alpha=rules.ks_p_value, share_threshold=rules.feature_share, method=rules.multiple_testing
    )
    enough = len(current) >= rules.min_rows and decision.n_tested > 0
    status = STATUS_NO_DATA if not enough else (STATUS_DRIFT if decision.drifted else STATUS_OK)
    rows.append(
        CheckRow(
            METRIC_DATA,
            FEATURE_SHARE,
            decision.share,
            _num(decision.min_p_value),
            decision.threshold,
            status,
            {
                "method": decision.method,
                "alpha": rules.ks_p_value,
                "n_tested": decision.n_tested,
                "drifted_features": list(decision.drifted_features),
                "n_reference": len(reference),
                "n_current": len(current),
            },
        )
    )
    return rows


def apply_consecutive_rule(row: CheckRow, history: Mapping[date, bool], check_date: date, required: int) -> CheckRow:
    """Turn today's data-drift row into an alert when the previous days were drifted too."""
    drifted_today = row.status in DRIFTED_STATUSES
    days = st.consecutive_days({**history, check_date: drifted_today}, check_date)
    status = STATUS_ALERT if drifted_today and days >= required else row.status
    return CheckRow(row.metric, row.feature, row.statistic, row.p_value, row.threshold, status,
                    row.details | {"consecutive_days": days, "required_days": required})


def prediction_row(codes: np.ndarray, reference_counts: np.ndarray, rules: DriftSettings, source: str) -> CheckRow:
    reference = st.smooth_counts(reference_counts)
    check = st.prediction_drift(codes, reference, CLASS_CODES, threshold=rules.prediction_kl_threshold, min_rows=rules.min_rows)
    current = st.class_distribution(codes, CLASS_CODES)
    largest = np.argsort(-np.abs(current - reference))[:5]
    return CheckRow(
        METRIC_PREDICTION, "prdtypecode", _num(check.statistic), None, rules.prediction_kl_threshold, _status(check),
        {
            "n": check.n,
            "reference": source,
            "smoothing": st.DEFAULT_SMOOTHING,
            # the classes that moved most: where to look first
            "largest_shifts": {str(CLASS_CODES[i]): round(float(current[i] - reference[i]), 4) for i in largest},
        },
    )


def confidence_row(confidences: np.ndarray, rules: DriftSettings) -> CheckRow:
    check = st.confidence_drift(confidences, threshold=rules.confidence_threshold, min_rows=rules.min_rows)
    return CheckRow(METRIC_CONFIDENCE, "confidence", _num(check.statistic), None, rules.confidence_threshold, _status(check),
                    {"n": check.n, "window_days": rules.confidence_window_days})


def concept_row(
    predicted: np.ndarray, true: np.ndarray, baseline_accuracy: float | None, rules: DriftSettings
) -> CheckRow:
    details: dict[str, Any] = {"n": int(len(predicted)), "window_days": rules.concept_window_days,
                               "baseline_accuracy": baseline_accuracy, "max_drop": rules.concept_max_drop}
    if baseline_accuracy is None:
        return CheckRow(METRIC_CONCEPT, "accuracy", None, None, None, STATUS_NO_DATA, details | {"why": "no baseline accuracy"})
    check = st.concept_drift(predicted, true, baseline_accuracy=baseline_accuracy, max_drop=rules.concept_max_drop,
                             min_rows=rules.concept_min_feedback, significance=rules.concept_p_value)
    drop = baseline_accuracy - check.statistic if check.n else None
    return CheckRow(METRIC_CONCEPT, "accuracy", _num(check.statistic), _num(check.p_value), check.threshold, _status(check),
                    details | {"drop": _num(drop), "significance": rules.concept_p_value})


def _status(check: st.ThresholdCheck) -> str:
    if not check.enough_data:
        return STATUS_NO_DATA
    return STATUS_ALERT if check.breached else STATUS_OK


def evaluate_day(
    inputs: DayInputs, rules: DriftSettings, *, history: Mapping[date, bool], check_date: date,
    featurizer: DriftFeaturizer | None = None,
) -> DayEvaluation:
    """All four rules on one day's inputs; ``history`` holds the previous days' data-drift verdicts.

    ``featurizer`` may come already fitted on ``inputs.reference_products`` (one reference, many days);
    an unfitted one is fitted here.
    """
    featurizer = featurizer or DriftFeaturizer()
    features = list(featurizer.feature_names)
    if len(inputs.reference_products) > featurizer.n_components and len(inputs.current_products):
        if not featurizer.is_fitted:
            featurizer.fit(inputs.reference_products)
        reference = featurizer.transform(inputs.reference_products).reset_index(drop=True)
        current = featurizer.transform(inputs.current_products).reset_index(drop=True)
    else:
        reference = pd.DataFrame(columns=features, dtype=float)
        current = pd.DataFrame(columns=features, dtype=float)
    if inputs.reference_images is not None and inputs.current_images is not None:
        # image statistics come from their own sample: the KS tests ignore the other rows' NaN
        reference = pd.concat([reference, inputs.reference_images.reset_index(drop=True)], axis=1)
        current = pd.concat([current, inputs.current_images.reset_index(drop=True)], axis=1)
        features += list(IMAGE_FEATURES)
    rows = data_drift_rows(reference, current, features, rules)
    rows[-1] = apply_consecutive_rule(rows[-1], history, check_date, rules.consecutive_days)
    rows.append(prediction_row(inputs.window_codes, inputs.reference_class_counts, rules, inputs.reference_source))
    rows.append(confidence_row(inputs.confidences, rules))
    rows.append(concept_row(inputs.labelled_predicted, inputs.labelled_true, inputs.baseline_accuracy, rules))
    return DayEvaluation(rows, reference, current, tuple(features))
