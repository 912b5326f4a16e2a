"""Label-free performance estimation (CBPE, confidence-based performance estimation) and its trust check.

Labels reach the platform weeks after scoring (a 1% feedback sample), but every night the champion scores
the whole catalogue with calibrated probabilities. If those probabilities are honest, row i is correct with
probability max_k p_i(k), so the expected confusion counts, hence accuracy and F1, follow from them alone.

The estimate is only as good as the calibration it rests on: under concept shift or label noise the model
stays as confident as before while it is wrong more often, and the estimate does not move.
:func:`calibration_check` tests that assumption on the labelled sample, so a stored estimate says whether
it is trusted. Pure: arrays in, small frozen results out; batch scoring sums :class:`ConfusionSums` per
partition and the drift job turns them into an estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

# Rows of a probability matrix must sum to 1; fused float32/float64 outputs drift by ~1e-7, a wrong
# matrix (logits, one column missing) by far more.
ROW_SUM_TOLERANCE = 1e-4
DEFAULT_ECE_BINS = 10


def _floats(values: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class ConfusionSums:
    """Sufficient statistics of one scored set for :func:`estimate_performance`; sums, so partitions add up.

    Per class k, in the probability columns' order (``DEFAULT_MAPPING.codes`` for the champion):
    ``predicted`` counts rows whose argmax is k, ``expected_tp`` sums p_i(k) over those rows and
    ``expected_support`` sums p_i(k) over all rows. ``confidence_sum`` sums each row's top probability.
    """

    n: int
    predicted: tuple[float, ...]
    expected_tp: tuple[float, ...]
    expected_support: tuple[float, ...]
    confidence_sum: float

    def __post_init__(self) -> None:
        sizes = {len(self.predicted), len(self.expected_tp), len(self.expected_support)}
        if len(sizes) != 1:
            raise ValueError(f"per-class sums differ in length: {sorted(sizes)}")
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")

    @property
    def n_classes(self) -> int:
        return len(self.predicted)

    @classmethod
    def empty(cls, n_classes: int) -> ConfusionSums:
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        zeros = (0.0,) * n_classes
        return cls(0, zeros, zeros, zeros, 0.0)

    @classmethod
    def from_probabilities(cls, proba: np.ndarray) -> ConfusionSums:
        """Sums of an (n_rows, n_classes) matrix of class probabilities; the prediction is the argmax."""
        p = np.asarray(proba, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 1:
            raise ValueError(f"expected a 2-D (n_rows, n_classes) probability matrix, got shape {p.shape}")
        if p.size and (not np.isfinite(p).all() or (p < 0).any() or (p > 1).any()):
            raise ValueError("probabilities must be finite and within [0, 1]")
        worst = float(np.abs(p.sum(axis=1) - 1.0).max()) if len(p) else 0.0
        if worst > ROW_SUM_TOLERANCE:
            raise ValueError(f"probability rows must sum to 1 (worst row is off by {worst:.3g})")
        n_rows, n_classes = p.shape
        best = p.argmax(axis=1)
        confidence = p[np.arange(n_rows), best]
        return cls(
            n=n_rows,
            predicted=_floats(np.bincount(best, minlength=n_classes)),
            expected_tp=_floats(np.bincount(best, weights=confidence, minlength=n_classes)),
            expected_support=_floats(p.sum(axis=0)),
            confidence_sum=float(confidence.sum()),
        )

    def __add__(self, other: ConfusionSums) -> ConfusionSums:
        if not isinstance(other, ConfusionSums):
            return NotImplemented
        if other.n_classes != self.n_classes:
            raise ValueError(f"cannot add sums over {self.n_classes} and {other.n_classes} classes")
        return ConfusionSums(
            n=self.n + other.n,
            predicted=_floats(np.add(self.predicted, other.predicted)),
            expected_tp=_floats(np.add(self.expected_tp, other.expected_tp)),
            expected_support=_floats(np.add(self.expected_support, other.expected_support)),
            confidence_sum=self.confidence_sum + other.confidence_sum,
        )

    @classmethod
    def merge(cls, parts: Iterable[ConfusionSums], n_classes: int | None = None) -> ConfusionSums:
        """The sums of all ``parts`` (partitions of one night); ``n_classes`` is needed only when there are none."""
        items = list(parts)
        if not items:
            if n_classes is None:
                raise ValueError("merging no sums needs n_classes")
            return cls.empty(n_classes)
        total = items[0]
        for part in items[1:]:
            total = total + part
        if n_classes is not None and total.n_classes != n_classes:
            raise ValueError(f"sums are over {total.n_classes} classes, expected {n_classes}")
        return total

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (plain ints, floats and lists): what the JSON column stores."""
        return {
            "n": self.n,
            "predicted": list(self.predicted),
            "expected_tp": list(self.expected_tp),
            "expected_support": list(self.expected_support),
            "confidence_sum": self.confidence_sum,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> ConfusionSums:
        return cls(
            n=int(payload["n"]),
            predicted=_floats(payload["predicted"]),
            expected_tp=_floats(payload["expected_tp"]),
            expected_support=_floats(payload["expected_support"]),
            confidence_sum=float(payload["confidence_sum"]),
        )


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimated accuracy and weighted F1 of one scored set (None when it has no rows)."""

    n: int
    accuracy: float | None
    f1_weighted: float | None
    f1_per_class: tuple[float, ...]  # in the probability columns' order; 0.0 where 2TP + FP + FN = 0

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "f1_weighted": self.f1_weighted, "f1_per_class": list(self.f1_per_class)}


def estimate_performance(sums: ConfusionSums) -> PerformanceEstimate:
    """CBPE: the expected confusion counts under the model's own probabilities, plugged into the metrics.

    Accuracy is exact in expectation: E[correct] / n = confidence_sum / n. Per class, E[TP_k] =
    ``expected_tp``, E[FP_k] = predicted_k - E[TP_k] and E[FN_k] = expected_support_k - E[TP_k];
    F1_k = 2TP / (2TP + FP + FN) of those expected counts, weighted by the expected support as
    sklearn's ``average="weighted"`` weights by the true support. F1 is a ratio, so this is a ratio
    estimator (expected counts plugged in, not E[F1]); its bias shrinks like 1/n, negligible for a
    night's catalogue. Both estimates hold only while the probabilities are calibrated.
    """
    predicted = np.asarray(sums.predicted)
    tp = np.asarray(sums.expected_tp)
    support = np.asarray(sums.expected_support)
    denominator = predicted + support  # = 2TP + FP + FN
    safe = np.where(denominator > 0, denominator, 1.0)
    f1 = np.where(denominator > 0, 2.0 * tp / safe, 0.0)
    if sums.n == 0:
        return PerformanceEstimate(0, None, None, _floats(f1))
    total_support = float(support.sum())
    f1_weighted = float(np.dot(f1, support) / total_support) if total_support > 0 else None
    return PerformanceEstimate(sums.n, sums.confidence_sum / sums.n, f1_weighted, _floats(f1))


@dataclass(frozen=True)
class CalibrationCheck:
    """Whether the model's confidence is still honest on the labelled sample, hence the estimate trusted."""

    n: int
    mean_confidence: float | None
    accuracy: float | None
    gap: float | None  # accuracy - mean confidence: negative when the model is overconfident
    ece: float | None
    p_value: float | None
    trusted: bool
    reason: str


def binned_ece(confidences: np.ndarray, correct: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Expected calibration error: |accuracy - confidence| per equal-width bin, weighted by the bin's rows.

    Bins are right-closed with confidence 0 in the first, as :func:`rakuten_ml.models.calibration.reliability_curve`.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.bincount(bins, weights=np.asarray(correct, dtype=np.float64) - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / count.sum())


def poisson_binomial_p_value(confidences: np.ndarray, n_correct: float) -> float:
    """Two-sided p of ``n_correct`` when each row is right with its own confidence (normal approximation).

    Under calibration the number correct is Poisson-binomial with mean sum(p) and variance sum(p(1 - p));
    the normal approximation is good once the variance is a few units, far below the labels a check needs.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    mean = float(conf.sum())
    variance = float((conf * (1.0 - conf)).sum())
    if variance <= 0.0:  # every confidence is 0 or 1: the outcome is certain under calibration
        return 1.0 if math.isclose(n_correct, mean, abs_tol=1e-9) else 0.0
    z = (n_correct - mean) / math.sqrt(variance)
    return float(2.0 * stats.norm.sf(abs(z)))


def _check_settings(max_gap: float, significance: float, min_labels: int, n_bins: int) -> None:
    if not 0.0 <= max_gap <= 1.0:
        raise ValueError(f"max_gap must be within [0, 1], got {max_gap}")
    if not 0.0 < significance <= 1.0:
        raise ValueError(f"significance must be within (0, 1], got {significance}")
    if min_labels < 1:
        raise ValueError(f"min_labels must be >= 1, got {min_labels}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")


def calibration_check(
    confidences: np.ndarray, correct: np.ndarray, *, max_gap: float, significance: float, min_labels: int,
    n_bins: int = DEFAULT_ECE_BINS,
) -> CalibrationCheck:
    """Is the confidence the model gave the labelled products still their accuracy?

    ``confidences``: top probability of each labelled product at scoring; ``correct``: whether its
    prediction matched the label. Untrusted with fewer than ``min_labels`` labels, or when
    |accuracy - mean confidence| > ``max_gap`` and the Poisson-binomial test gives p < ``significance``
    (both, so sampling noise on a small sample or a tiny gap on a large one does not distrust it).
    """
    _check_settings(max_gap, significance, min_labels, n_bins)
    conf = np.asarray(confidences, dtype=np.float64).ravel()
    hits = np.asarray(correct).ravel()
    if conf.shape != hits.shape:
        raise ValueError(f"confidences ({conf.size}) and correct ({hits.size}) differ in length")
    if conf.size and (not np.isfinite(conf).all() or (conf < 0).any() or (conf > 1).any()):
        raise ValueError("confidences must be finite and within [0, 1]")
    if hits.size and not np.isin(hits, (0, 1)).all():
        raise ValueError("correct must hold booleans (or 0/1)")
    hits = hits.astype(np.float64)
    n = int(conf.size)
    if n == 0:
        return CalibrationCheck(0, None, None, None, None, None, False,
                                f"no labels (need {min_labels}): the label-free estimate is not trusted")
    mean_confidence, accuracy = float(conf.mean()), float(hits.mean())
    gap = accuracy - mean_confidence
    ece = binned_ece(conf, hits, n_bins)
    p_value = poisson_binomial_p_value(conf, float(hits.sum()))

    def result(trusted: bool, reason: str) -> CalibrationCheck:
        return CalibrationCheck(n, mean_confidence, accuracy, gap, ece, p_value, trusted, reason)

    if n < min_labels:
        return result(False, f"only {n} labels (need {min_labels}): the label-free estimate is not trusted")
    if abs(gap) > max_gap and p_value < significance:
        if gap < 0:
            return result(False, f"confidence overstates accuracy by {-gap:.2f} on {n} labels (p={p_value:.2g}): "
                                 "the label-free estimate is not trusted (concept shift or label noise)")
        return result(False, f"confidence understates accuracy by {gap:.2f} on {n} labels (p={p_value:.2g}): "
                             "the label-free estimate is not trusted (it understates performance)")
    return result(True, f"accuracy {accuracy:.3f} vs mean confidence {mean_confidence:.3f} on {n} labels "
                        f"(gap {gap:+.2f}, p={p_value:.2g}; untrusted beyond {max_gap:.2f} at p < {significance:g})")
