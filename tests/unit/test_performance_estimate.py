"""Label-free performance estimation: the confusion sums, the CBPE estimate and the calibration trust check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from rakuten_ml.models.calibration import expected_calibration_error, softmax
from rakuten_ml.monitoring.performance_estimate import (
    CalibrationCheck,
    ConfusionSums,
    binned_ece,
    calibration_check,
    estimate_performance,
    poisson_binomial_p_value,
)

# Four rows, three classes: rows 0 and 1 predict class 0, row 2 class 1, row 3 class 2.
HAND = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
CHECK = {"max_gap": 0.05, "significance": 0.01, "min_labels": 100}


def model_probabilities(rng: np.random.Generator, rows: int, n_classes: int = 27, sharpness: float = 8.0) -> np.ndarray:
    """Peaked, varied rows like a classifier's: a softmax of Gaussian scores with one boosted class."""
    scores = rng.normal(size=(rows, n_classes))
    scores[np.arange(rows), rng.integers(n_classes, size=rows)] += rng.uniform(0, sharpness, size=rows)
    return softmax(scores, temperature=0.6)


def sample_labels(proba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from the row's own distribution: the model is calibrated by construction."""
    cdf = proba.cumsum(axis=1)
    return np.minimum((rng.random((len(proba), 1)) > cdf).sum(axis=1), proba.shape[1] - 1)


def test_sums_of_a_hand_made_matrix():
    sums = ConfusionSums.from_probabilities(HAND)
    assert sums.n == 4 and sums.n_classes == 3
    assert sums.predicted == (2.0, 1.0, 1.0)
    assert sums.expected_tp == pytest.approx((0.7 + 0.6, 0.5, 0.8))
    assert sums.expected_support == pytest.approx((1.6, 1.1, 1.3))
    assert sums.confidence_sum == pytest.approx(2.6)


def test_estimate_of_a_hand_made_matrix():
    estimate = estimate_performance(ConfusionSums.from_probabilities(HAND))
    # F1_k = 2 TP / (predicted + support): 2*1.3 / (2 + 1.6), 2*0.5 / (1 + 1.1), 2*0.8 / (1 + 1.3)
    f1 = (2.6 / 3.6, 1.0 / 2.1, 1.6 / 2.3)
    assert estimate.n == 4
    assert estimate.accuracy == pytest.approx(2.6 / 4)
    assert estimate.f1_per_class == pytest.approx(f1)
    assert estimate.f1_weighted == pytest.approx((1.6 * f1[0] + 1.1 * f1[1] + 1.3 * f1[2]) / 4)


def test_a_class_never_predicted_nor_expected_scores_zero_and_weighs_nothing():
    proba = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])
    estimate = estimate_performance(ConfusionSums.from_probabilities(proba))
    f1 = (1.8 / 2.1, 1.6 / 1.9, 0.0)
    assert estimate.f1_per_class == pytest.approx(f1)
    assert estimate.f1_weighted == pytest.approx((1.1 * f1[0] + 0.9 * f1[1]) / 2)


def test_certain_probabilities_give_perfect_scores():
    proba = np.eye(5)[[0, 1, 1, 4, 2]]
    estimate = estimate_performance(ConfusionSums.from_probabilities(proba))
    assert estimate.accuracy == 1.0 and estimate.f1_weighted == pytest.approx(1.0)
    assert estimate.f1_per_class == pytest.approx((1.0, 1.0, 1.0, 0.0, 1.0))


def test_no_rows_estimate_nothing():
    for sums in (ConfusionSums.empty(27), ConfusionSums.from_probabilities(np.empty((0, 27)))):
        estimate = estimate_performance(sums)
        assert estimate.n == 0 and estimate.accuracy is None and estimate.f1_weighted is None
        assert estimate.f1_per_class == (0.0,) * 27


def test_partition_sums_merge_to_the_sums_of_the_concatenation():
    rng = np.random.default_rng(1)
    parts = [model_probabilities(rng, rows) for rows in (300, 1, 0, 700)]
    merged = ConfusionSums.merge(ConfusionSums.from_probabilities(p) for p in parts)
    whole = ConfusionSums.from_probabilities(np.vstack(parts))
    assert merged.n == whole.n == 1001
    assert merged.predicted == whole.predicted
    for name in ("expected_tp", "expected_support"):
        assert getattr(merged, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    assert merged.confidence_sum == pytest.approx(whole.confidence_sum, rel=1e-12)
    assert estimate_performance(merged).f1_weighted == pytest.approx(estimate_performance(whole).f1_weighted, rel=1e-12)
    assert ConfusionSums.empty(27) + whole == whole
    assert ConfusionSums.merge([], n_classes=27) == ConfusionSums.empty(27)


def test_dict_round_trip_through_json():
    sums = ConfusionSums.from_probabilities(model_probabilities(np.random.default_rng(2), 50))
    payload = json.loads(json.dumps(sums.as_dict()))
    assert ConfusionSums.from_dict(payload) == sums
    assert ConfusionSums.from_dict(json.loads(json.dumps(ConfusionSums.empty(3).as_dict()))) == ConfusionSums.empty(3)
    estimate = estimate_performance(sums)
    assert json.loads(json.dumps(estimate.as_dict()))["f1_weighted"] == estimate.f1_weighted


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_estimate_matches_realized_metrics_when_labels_follow_the_probabilities(seed):
    rng = np.random.default_rng(seed)
    proba = model_probabilities(rng, 4000)
    labels = sample_labels(proba, rng)
    predicted = proba.argmax(axis=1)
    estimate = estimate_performance(ConfusionSums.from_probabilities(proba))
    assert 0.4 < accuracy_score(labels, predicted) < 0.95  # neither trivial nor hopeless
    assert estimate.accuracy == pytest.approx(accuracy_score(labels, predicted), abs=0.03)
    assert estimate.f1_weighted == pytest.approx(f1_score(labels, predicted, average="weighted", zero_division=0), abs=0.03)


def test_estimate_is_blind_to_labels_that_disagree_with_the_probabilities():
    """The documented blind spot: same probabilities, noisier labels, same estimate."""
    rng = np.random.default_rng(6)
    proba = model_probabilities(rng, 4000)
    labels = sample_labels(proba, rng)
    noisy = np.where(rng.random(len(labels)) < 0.3, rng.integers(27, size=len(labels)), labels)
    estimate = estimate_performance(ConfusionSums.from_probabilities(proba))
    realized = accuracy_score(noisy, proba.argmax(axis=1))
    assert estimate.accuracy - realized > 0.15  # 30% of labels redrawn: about 0.3 * 0.72 lost


def _labelled(rng: np.random.Generator, rows: int, accuracy_shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    confidences = rng.beta(8, 2, size=rows)
    correct = rng.random(rows) < np.clip(confidences + accuracy_shift, 0, 1)
    return confidences, correct


def test_calibrated_sample_is_trusted():
    for seed in range(5):
        check = calibration_check(*_labelled(np.random.default_rng(seed), 1500), **CHECK)
        assert isinstance(check, CalibrationCheck)
        assert check.trusted, check.reason
        assert check.n == 1500 and abs(check.gap) < 0.05 and check.ece < 0.05


def test_overconfident_sample_is_not_trusted_and_says_why():
    check = calibration_check(*_labelled(np.random.default_rng(7), 420, accuracy_shift=-0.2), **CHECK)
    assert not check.trusted
    assert check.gap < -0.1 and check.p_value < 1e-6 and check.mean_confidence - check.accuracy == pytest.approx(-check.gap)
    assert "overstates accuracy by" in check.reason and "on 420 labels" in check.reason and "concept shift" in check.reason


def test_underconfident_sample_is_not_trusted_either():
    confidences = np.full(500, 0.6)
    check = calibration_check(confidences, np.arange(500) < 400, **CHECK)  # 80% right at 60% confidence
    assert not check.trusted and check.gap == pytest.approx(0.2) and "understates" in check.reason


def test_too_few_labels_are_not_trusted():
    check = calibration_check(*_labelled(np.random.default_rng(8), 99), **CHECK)
    assert not check.trusted and check.n == 99 and "only 99 labels (need 100)" in check.reason
    empty = calibration_check(np.empty(0), np.empty(0, dtype=bool), **CHECK)
    assert not empty.trusted and empty.n == 0 and empty.accuracy is None and empty.p_value is None


def test_untrusted_needs_both_a_large_gap_and_significance():
    # 14 of 20 right at 80% confidence: gap -0.10 but z = -2 / sqrt(3.2), p = 0.26
    small = calibration_check(np.full(20, 0.8), np.arange(20) < 14, max_gap=0.05, significance=0.01, min_labels=10)
    assert small.trusted and small.gap == pytest.approx(-0.1) and small.p_value == pytest.approx(0.2636, abs=1e-3)
    # 79% right at 80% confidence on 100K labels: significant, but within max_gap
    large = calibration_check(np.full(100_000, 0.8), np.arange(100_000) < 79_000, **CHECK)
    assert large.trusted and large.p_value < 1e-10


def test_poisson_binomial_p_value():
    assert poisson_binomial_p_value(np.full(100, 0.5), 60) == pytest.approx(0.0455, abs=1e-4)  # z = 10 / 5 = 2
    assert poisson_binomial_p_value(np.ones(10), 10) == 1.0
    assert poisson_binomial_p_value(np.ones(10), 9) == 0.0


def test_binned_ece_by_hand_and_as_the_calibration_module_bins():
    assert binned_ece(np.array([0.95, 0.95, 0.55, 0.55]), np.array([1, 0, 1, 1])) == pytest.approx(0.45)
    rng = np.random.default_rng(9)
    confidences, correct = _labelled(rng, 500)
    confidences = 0.5 + confidences / 2  # a two-column matrix [c, 1 - c] has top-1 c only when c >= 0.5
    proba = np.column_stack([confidences, 1 - confidences])
    reference = expected_calibration_error(proba, np.where(correct, 0, 1), n_bins=10)
    assert binned_ece(confidences, correct, 10) == pytest.approx(reference)


@pytest.mark.parametrize(
    "proba",
    [np.ones(3) / 3, np.array([[0.5, 0.6]]), np.array([[1.2, -0.2]]), np.array([[np.nan, 1.0]]), np.empty((3, 0))],
)
def test_probability_matrix_is_validated(proba):
    with pytest.raises(ValueError):
        ConfusionSums.from_probabilities(proba)


def test_sums_are_validated():
    with pytest.raises(ValueError, match="27 and 3 classes"):
        ConfusionSums.empty(27) + ConfusionSums.empty(3)
    with pytest.raises(ValueError, match="n_classes"):
        ConfusionSums.merge([])
    with pytest.raises(ValueError, match="expected 27"):
        ConfusionSums.merge([ConfusionSums.empty(3)], n_classes=27)
    with pytest.raises(ValueError, match="differ in length"):
        ConfusionSums(1, (1.0,), (0.5, 0.5), (1.0,), 0.5)
    with pytest.raises(ValueError):
        ConfusionSums.empty(0)


@pytest.mark.parametrize(
    ("confidences", "correct", "settings"),
    [
        (np.full(3, 0.5), np.ones(2, dtype=bool), {}),
        (np.full(3, 1.5), np.ones(3, dtype=bool), {}),
        (np.full(3, 0.5), np.array([0, 1, 2]), {}),
        (np.full(3, 0.5), np.ones(3, dtype=bool), {"max_gap": -0.1}),
        (np.full(3, 0.5), np.ones(3, dtype=bool), {"significance": 0.0}),
        (np.full(3, 0.5), np.ones(3, dtype=bool), {"min_labels": 0}),
        (np.full(3, 0.5), np.ones(3, dtype=bool), {"n_bins": 0}),
    ],
)
def test_calibration_check_inputs_are_validated(confidences, correct, settings):
    with pytest.raises(ValueError):
        calibration_check(confidences, correct, **{**CHECK, **settings})
