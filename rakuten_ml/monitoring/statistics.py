"""Pure drift statistics: KS tests, multiple-testing decision, smoothed KL, confidence and concept checks.

No I/O and no clock: every function maps arrays (and thresholds) to a small frozen result, so the
drift rules of the production plan (docs/production-plan.md) can be tested exhaustively without a database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike
from scipy import stats

# Below this many values on either side a KS p-value says more about the sample size than the data.
MIN_KS_SAMPLES = 20
# Additive (Laplace) smoothing of class counts: a class absent on one side must not make KL infinite.
DEFAULT_SMOOTHING = 1.0

MultipleTesting = Literal["share", "bonferroni"]


@dataclass(frozen=True)
class FeatureTest:
    """Two-sample KS test of one feature; ``p_value`` is NaN when a side has too few values."""

    feature: str
    statistic: float
    p_value: float
    n_reference: int
    n_current: int

    @property
    def tested(self) -> bool:
        return not math.isnan(self.p_value)

    def drifted(self, alpha: float) -> bool:
        return self.tested and self.p_value < alpha


@dataclass(frozen=True)
class DataDriftDecision:
    """Whether today's feature tests, taken together, say the inputs drifted."""

    drifted: bool
    share: float  # share of tested features with p < alpha
    n_tested: int
    drifted_features: tuple[str, ...]
    threshold: float  # the share threshold, or the Bonferroni-corrected alpha
    method: MultipleTesting
    min_p_value: float


@dataclass(frozen=True)
class ThresholdCheck:
    """A scalar statistic compared with a threshold (KL, mean confidence, accuracy)."""

    statistic: float
    threshold: float
    n: int
    breached: bool
    enough_data: bool
    p_value: float = math.nan


def ks_test(feature: str, reference: np.ndarray, current: np.ndarray, min_samples: int = MIN_KS_SAMPLES) -> FeatureTest:
    """Two-sample KS test ignoring NaN (absent images, for instance)."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size < min_samples or cur.size < min_samples:
        return FeatureTest(feature, math.nan, math.nan, int(ref.size), int(cur.size))
    result = stats.ks_2samp(ref, cur)
    return FeatureTest(feature, float(result.statistic), float(result.pvalue), int(ref.size), int(cur.size))


def ks_tests(
    reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray], features: Sequence[str]
) -> list[FeatureTest]:
    """:func:`ks_test` for each named feature (columns of two frames, or dicts of arrays)."""
    return [ks_test(name, np.asarray(reference[name]), np.asarray(current[name])) for name in features]


def data_drift_decision(
    tests: Sequence[FeatureTest], *, alpha: float, share_threshold: float, method: MultipleTesting = "share"
) -> DataDriftDecision:
    """Multiple-testing control over the feature tests of one day.

    ``share``: the day drifts when at least ``share_threshold`` of the tested features have
    p < alpha: evidently's drift_share rule, boundary included (``share >= drift_share``), so the
    stored verdict and the evidently report never disagree on a day exactly at the threshold. ``bonferroni``: when any p < alpha / n_tested.
    """
    tested = [t for t in tests if t.tested]
    n = len(tested)
    min_p = min((t.p_value for t in tested), default=math.nan)
    if method == "bonferroni":
        threshold = alpha / n if n else alpha
        drifted = tuple(t.feature for t in tested if t.p_value < threshold)
        share = len(drifted) / n if n else 0.0
        return DataDriftDecision(bool(drifted), share, n, drifted, threshold, method, min_p)
    drifted = tuple(t.feature for t in tested if t.p_value < alpha)
    share = len(drifted) / n if n else 0.0
    return DataDriftDecision(n > 0 and share >= share_threshold, share, n, drifted, share_threshold, method, min_p)


def consecutive_days(drifted_by_day: Mapping[date, bool], today: date) -> int:
    """How many calendar days in a row, ending ``today``, were drifted (a missing day breaks the run)."""
    count = 0
    day = today
    while drifted_by_day.get(day, False):
        count += 1
        day -= timedelta(days=1)
    return count


def class_distribution(codes: Iterable[int], classes: Sequence[int], smoothing: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """Class frequencies in ``classes`` order with ``smoothing`` added to every count (unknown codes ignored)."""
    index = {int(c): i for i, c in enumerate(classes)}
    counts = np.full(len(classes), float(smoothing))
    for code in codes:
        i = index.get(int(code))
        if i is not None:
            counts[i] += 1.0
    return counts / counts.sum()


def smooth_counts(counts: ArrayLike, smoothing: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """Counts (already in class order) -> smoothed probabilities."""
    values = np.asarray(counts, dtype=float) + smoothing
    return values / values.sum()


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats; both must be strictly positive distributions (smooth them first)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"distributions differ in length: {p.shape} vs {q.shape}")
    if (p <= 0).any() or (q <= 0).any():
        raise ValueError("KL divergence needs strictly positive probabilities; apply additive smoothing first")
    return float(scipy.stats.entropy(p, q))  # relative entropy; it would renormalise p and q, which already sum to 1


def prediction_drift(
    current_codes: ArrayLike, reference: np.ndarray, classes: Sequence[int], *, threshold: float,
    min_rows: int, smoothing: float = DEFAULT_SMOOTHING,
) -> ThresholdCheck:
    """KL(current predicted classes || reference distribution) > ``threshold`` means prediction drift."""
    codes = np.asarray(current_codes).ravel()
    n = int(codes.size)
    current = class_distribution(codes, classes, smoothing)
    kl = kl_divergence(current, np.asarray(reference, dtype=float))
    enough = n >= min_rows
    return ThresholdCheck(kl, threshold, n, enough and kl > threshold, enough)


def confidence_drift(confidences: ArrayLike, *, threshold: float, min_rows: int) -> ThresholdCheck:
    """Mean predicted confidence below ``threshold`` means the model is unsure of what it now sees."""
    values = np.asarray(confidences, dtype=float)
    values = values[~np.isnan(values)]
    n = int(values.size)
    mean = float(values.mean()) if n else math.nan
    enough = n >= min_rows
    return ThresholdCheck(mean, threshold, n, enough and mean < threshold, enough)


def concept_drift(
    predicted: ArrayLike, true: ArrayLike, *, baseline_accuracy: float, max_drop: float, min_rows: int,
    significance: float,
) -> ThresholdCheck:
    """Rolling accuracy on labelled feedback more than ``max_drop`` below the validation accuracy.

    A 1% feedback sample is small: with ``significance`` < 1 the drop must also be significant (one-sided
    binomial test of H0 "accuracy >= baseline - max_drop"), so sampling noise alone does not page anyone.
    """
    pred = np.asarray(predicted)
    truth = np.asarray(true)
    if pred.shape != truth.shape:
        raise ValueError(f"predicted ({pred.shape}) and true ({truth.shape}) labels differ in length")
    n = int(pred.size)
    correct = int((pred == truth).sum())
    accuracy = correct / n if n else math.nan
    floor = baseline_accuracy - max_drop
    p_value = math.nan
    if n and 0.0 < floor < 1.0:
        p_value = float(stats.binomtest(correct, n, floor, alternative="less").pvalue)
    enough = n >= min_rows
    breached = enough and accuracy < floor and (significance >= 1.0 or p_value < significance)
    return ThresholdCheck(accuracy, floor, n, breached, enough, p_value)
