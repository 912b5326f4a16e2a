"""The drift rules of the production plan (docs/production-plan.md), free of I/O: one day's loaded
inputs in, one ``drift_checks`` row per rule (plus one per KS feature) out.

- ``data_drift``: share of drift features with KS p < 0.05; alert when above the threshold 3 days in a row;
- ``prediction_drift``: KL(predicted classes || reference), Laplace-smoothed; alert when > 0.1;
- ``confidence_drift``: mean confidence over the last 7 days; alert when < 0.75;
- ``concept_drift``: accuracy on labelled feedback (30-day window); alert when > 3 points below validation;
- ``estimated_performance``: the champion's accuracy estimated without labels from its probabilities on the
  night's scored catalogue (:mod:`~rakuten_ml.monitoring.performance_estimate`); a drop of more than 3 points
  below the version's first nightly estimate, 3 days in a row, is an alert; not trusted (no verdict) when
  the labelled sample shows confidence no longer matches accuracy.

:mod:`rakuten_ml.monitoring.checks` is the job that loads the inputs and stores the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    METRIC_ESTIMATED,
    METRIC_ESTIMATED_F1,
    METRIC_KS,
    METRIC_PREDICTION,
    STATUS_ALERT,
    STATUS_DRIFT,
    STATUS_NO_DATA,
    STATUS_OK,
    STATUS_UNTRUSTED,
)
from rakuten_ml.monitoring import statistics as st
from rakuten_ml.monitoring.features import IMAGE_FEATURES, DriftFeaturizer
from rakuten_ml.monitoring.performance_estimate import ConfusionSums, calibration_check, estimate_performance
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
    labelled_confidence: np.ndarray | None = None  # the confidence of each labelled prediction (calibration check)
    estimate_sums: ConfusionSums | None = None  # expected confusion counts of the window's latest scoring run
    reference_sums: ConfusionSums | None = None  # those of the version's first scoring run: the estimate's reference
    estimate_run: str | None = None  # the scoring runs the two sums come from
    reference_run: str | None = None


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


def estimate_rows(inputs: DayInputs, rules: DriftSettings) -> list[CheckRow]:
    """The label-free estimate of the night's accuracy (a rule row) and weighted F1 (shown beside it).

    Its reference is the version's own first nightly estimate, not its validation accuracy: a calibration
    bias common to both nights cancels, and what is left is how far the catalogue moved the model.
    """
    if inputs.estimate_sums is None or inputs.estimate_sums.n < rules.min_rows:
        why = {"why": f"fewer than {rules.min_rows} products scored in the window", "n": 0 if inputs.estimate_sums is None else inputs.estimate_sums.n}
        return [CheckRow(METRIC_ESTIMATED, "accuracy", None, None, None, STATUS_NO_DATA, why)]
    estimate = estimate_performance(inputs.estimate_sums)
    reference = estimate_performance(inputs.reference_sums) if inputs.reference_sums is not None else estimate
    # The version's known bias: its validation accuracy minus what its probabilities promised on the reference
    # night (a model trained on little data is overconfident). The labelled sample is checked against the
    # confidence corrected by it, so only a *change* of calibration, the sign of a drop the estimate cannot see,
    # distrusts the estimate.
    assert estimate.accuracy is not None and reference.accuracy is not None  # n >= min_rows >= 1
    bias = 0.0 if inputs.baseline_accuracy is None else inputs.baseline_accuracy - reference.accuracy
    predicted, true = inputs.labelled_predicted, inputs.labelled_true
    confidence = inputs.labelled_confidence if inputs.labelled_confidence is not None else np.array([])
    calibration = calibration_check(
        np.clip(confidence + bias, 0.0, 1.0), np.asarray(predicted) == np.asarray(true), max_gap=rules.calibration_max_gap,
        significance=rules.calibration_p_value, min_labels=rules.calibration_min_labels,
    )
    threshold = reference.accuracy - rules.estimate_max_drop
    drop = reference.accuracy - estimate.accuracy
    # too few labels to check calibration is the estimate's usual state (labels arrive late): it is judged,
    # unverified. Only a labelled sample on which the (corrected) confidence significantly overstates accuracy
    # makes it untrusted: that is how a drop hides from it (concept shift, label noise). Confidence that
    # understates accuracy sits low, but its drops still show against its own reference night.
    checked = calibration.n >= rules.calibration_min_labels
    untrusted = checked and not calibration.trusted and (calibration.gap or 0.0) < 0
    # A drop the estimate sees is a drop whatever the labels say: when they say accuracy is lower still, it is
    # worse, not unknown. Untrusted withholds only the all-clear.
    status = STATUS_DRIFT if drop > rules.estimate_max_drop else STATUS_UNTRUSTED if untrusted else STATUS_OK
    details: dict[str, Any] = {
        "n": estimate.n, "run_id": inputs.estimate_run, "reference_run_id": inputs.reference_run,
        "reference_accuracy": _num(reference.accuracy), "drop": _num(drop), "max_drop": rules.estimate_max_drop,
        "estimated_f1_weighted": _num(estimate.f1_weighted), "reference_f1_weighted": _num(reference.f1_weighted),
        "bias_correction": _num(bias), "corrected_accuracy": _num(min(max(estimate.accuracy + bias, 0.0), 1.0)),
        "realized_accuracy": _num(calibration.accuracy), "n_labels": calibration.n,
        "calibration": {"checked": checked, "trusted": not untrusted, "reason": calibration.reason, "gap": _num(calibration.gap),
                        "ece": _num(calibration.ece), "p_value": _num(calibration.p_value), "mean_confidence": _num(calibration.mean_confidence)},
    }
    return [
        CheckRow(METRIC_ESTIMATED, "accuracy", _num(estimate.accuracy), _num(calibration.p_value), _num(threshold), status, details),
        CheckRow(METRIC_ESTIMATED_F1, "f1_weighted", _num(estimate.f1_weighted), None,
                 _num(None if reference.f1_weighted is None else reference.f1_weighted - rules.estimate_max_drop),
                 status, {"n": estimate.n, "reference_f1_weighted": _num(reference.f1_weighted)}),
    ]


def _status(check: st.ThresholdCheck) -> str:
    if not check.enough_data:
        return STATUS_NO_DATA
    return STATUS_ALERT if check.breached else STATUS_OK


def evaluate_day(
    inputs: DayInputs, rules: DriftSettings, *, history: Mapping[date, bool], check_date: date,
    featurizer: DriftFeaturizer | None = None, estimate_history: Mapping[date, bool] | None = None,
) -> DayEvaluation:
    """All five rules on one day's inputs; ``history`` holds the previous days' data-drift verdicts and
    ``estimate_history`` those of the label-free estimate (both need ``consecutive_days`` in a row).

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
    estimated, *shown = estimate_rows(inputs, rules)
    if estimated.status in DRIFTED_STATUSES:
        estimated = apply_consecutive_rule(estimated, estimate_history or {}, check_date, rules.consecutive_days)
    rows += [estimated, *(replace(row, status=estimated.status) for row in shown)]
    return DayEvaluation(rows, reference, current, tuple(features))
