"""The pure drift math: KS tests, multiple-testing decision, consecutive days, smoothed KL, confidence, concept."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.monitoring import statistics as st
from rakuten_ml.monitoring.rules import CheckRow, apply_consecutive_rule, concept_row
from rakuten_ml.settings import DriftSettings

RNG = np.random.default_rng(0)


def test_ks_test_separates_shifted_from_same_distribution_and_ignores_nan():
    same = st.ks_test("x", RNG.normal(size=2000), RNG.normal(size=2000))
    shifted = st.ks_test("x", RNG.normal(size=2000), RNG.normal(0.3, size=2000))
    assert same.p_value > 0.01 and shifted.p_value < 1e-6
    with_nan = st.ks_test("x", np.r_[RNG.normal(size=100), [np.nan] * 50], RNG.normal(size=100))
    assert with_nan.n_reference == 100 and with_nan.tested


def test_ks_test_with_too_few_values_is_untested_not_drifted():
    result = st.ks_test("image_brightness", np.full(10, np.nan), RNG.normal(size=5))
    assert not result.tested and not result.drifted(0.05) and math.isnan(result.p_value)


def _tests(p_values: list[float]) -> list[st.FeatureTest]:
    return [st.FeatureTest(f"f{i}", 0.1, p, 1000, 1000) for i, p in enumerate(p_values)]


def test_share_rule_needs_at_least_the_share_of_features_as_evidently_does():
    two_of_ten = _tests([0.01, 0.02] + [0.5] * 8)
    three_of_ten = _tests([0.01, 0.02, 0.03] + [0.5] * 7)
    assert not st.data_drift_decision(two_of_ten, alpha=0.05, share_threshold=0.3).drifted
    decision = st.data_drift_decision(three_of_ten, alpha=0.05, share_threshold=0.3)  # 0.3 >= 0.3: evidently's boundary
    assert decision.drifted and decision.share == pytest.approx(0.3) and decision.drifted_features == ("f0", "f1", "f2")
    from evidently.legacy.calculations.data_drift import get_dataset_drift

    drifted = {f"f{i}": type("Column", (), {"drift_detected": i < 3})() for i in range(10)}
    assert get_dataset_drift(drifted, drift_share=0.3).dataset_drift is decision.drifted


def test_bonferroni_rule_uses_alpha_over_the_number_of_tested_features():
    untested = st.FeatureTest("img", math.nan, math.nan, 0, 0)
    one_strong = _tests([0.004] + [0.5] * 9) + [untested]  # 0.004 < 0.05 / 10
    one_weak = _tests([0.006] + [0.5] * 9)
    decision = st.data_drift_decision(one_strong, alpha=0.05, share_threshold=0.3, method="bonferroni")
    assert decision.drifted and decision.threshold == pytest.approx(0.005) and decision.n_tested == 10
    assert not st.data_drift_decision(one_weak, alpha=0.05, share_threshold=0.3, method="bonferroni").drifted


def test_no_tested_feature_is_no_drift():
    assert not st.data_drift_decision([], alpha=0.05, share_threshold=0.3).drifted


def test_consecutive_days_count_back_from_today_and_a_gap_breaks_the_run():
    today = date(2026, 3, 10)
    day = lambda n: today - timedelta(days=n)  # noqa: E731
    assert st.consecutive_days({day(0): True, day(1): True, day(2): True}, today) == 3
    assert st.consecutive_days({day(0): True, day(2): True, day(3): True}, today) == 1  # missing yesterday
    assert st.consecutive_days({day(0): False, day(1): True}, today) == 0


def test_data_drift_becomes_an_alert_only_on_the_third_consecutive_day():
    today = date(2026, 3, 10)
    drifted = CheckRow("data_drift", "share", 0.6, 0.001, 0.3, "drift", {})
    assert apply_consecutive_rule(drifted, {}, today, 3).status == "drift"
    two_before = {today - timedelta(days=1): True, today - timedelta(days=2): True}
    alert = apply_consecutive_rule(drifted, two_before, today, 3)
    assert alert.status == "alert" and alert.details["consecutive_days"] == 3
    calm = CheckRow("data_drift", "share", 0.0, 0.4, 0.3, "ok", {})
    assert apply_consecutive_rule(calm, two_before, today, 3).status == "ok"


def test_laplace_smoothing_keeps_kl_finite_when_a_class_is_absent():
    classes = CLASS_CODES
    only_books = [10] * 500
    reference = st.class_distribution(RNG.choice(classes, size=5000), classes)
    current = st.class_distribution(only_books, classes)
    assert (current > 0).all() and current.sum() == pytest.approx(1.0)
    assert math.isfinite(st.kl_divergence(current, reference)) and st.kl_divergence(current, reference) > 1.0
    with pytest.raises(ValueError, match="smoothing"):
        st.kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5]))


def test_kl_of_a_distribution_with_itself_is_zero_and_grows_with_the_shift():
    p = st.smooth_counts(np.arange(1, 28))
    q = st.smooth_counts(np.arange(27, 0, -1))
    assert st.kl_divergence(p, p) == pytest.approx(0.0)
    assert st.kl_divergence(p, q) > st.kl_divergence(p, 0.5 * (p + q)) > 0


def test_prediction_drift_alerts_above_threshold_and_not_on_small_windows():
    reference = st.smooth_counts(np.ones(27) * 100)
    skewed = [10] * 300 + list(CLASS_CODES) * 10
    check = st.prediction_drift(skewed, reference, CLASS_CODES, threshold=0.1, min_rows=100)
    assert check.breached and check.statistic > 0.1
    small = st.prediction_drift(skewed[:50], reference, CLASS_CODES, threshold=0.1, min_rows=100)
    assert not small.breached and not small.enough_data


def test_confidence_drift_is_a_mean_below_the_threshold():
    assert st.confidence_drift(np.full(200, 0.7), threshold=0.75, min_rows=100).breached
    assert not st.confidence_drift(np.full(200, 0.8), threshold=0.75, min_rows=100).breached
    assert not st.confidence_drift(np.full(20, 0.1), threshold=0.75, min_rows=100).breached  # too few


def test_concept_drift_needs_a_significant_drop_of_more_than_the_allowed_points():
    n = 1000
    truth = np.zeros(n, dtype=int)
    at = lambda accuracy: np.where(np.arange(n) < accuracy * n, 0, 1)  # noqa: E731
    plain = {"baseline_accuracy": 0.85, "max_drop": 0.03, "min_rows": 200, "significance": 1.0}
    assert st.concept_drift(at(0.81), truth, **plain).breached  # the seed's plain rule: 4 points
    assert not st.concept_drift(at(0.83), truth, **plain).breached  # 2 points
    guarded = plain | {"significance": 0.05}
    assert not st.concept_drift(at(0.81), truth, **guarded).breached  # 1 point below the floor: noise at n=1000
    strong = st.concept_drift(at(0.70), truth, **guarded)
    assert strong.breached and strong.p_value < 1e-6


def test_concept_row_without_baseline_is_insufficient_data():
    row = concept_row(np.array([10, 10]), np.array([10, 40]), None, DriftSettings())
    assert row.status == "insufficient_data" and row.statistic is None
