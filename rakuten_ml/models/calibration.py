"""Pure probability-calibration math: temperature scaling, reliability and sharpening.

LinearSVC gives margins, not probabilities, and the late fusion adds probabilities from
several models; they only mix well when each model's confidence means what it says.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

# Search range of the temperature. Margins of a linear SVC live roughly in [-3, 3]; the
# optimum on real data sits between 0.05 and 5, the wide range only guards the bounds.
TEMPERATURE_BOUNDS: tuple[float, float] = (1e-3, 1e3)
DEFAULT_N_BINS = 15


def _as_2d(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D (n_samples, n_classes) array, got shape {values.shape}")
    return values


def softmax(margins: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``margins / temperature`` (numerically stable)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return np.exp(log_softmax(_as_2d(margins) / temperature, axis=1))


def log_loss_at(margins: np.ndarray, y_idx: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes under ``softmax(margins / T)``."""
    log_proba = log_softmax(_as_2d(margins) / temperature, axis=1)
    y = np.asarray(y_idx, dtype=np.int64)
    return float(-log_proba[np.arange(len(y)), y].mean())


def fit_temperature(margins: np.ndarray, y_idx: np.ndarray) -> float:
    """The temperature minimising held-out log-loss (one scalar: argmax is unchanged)."""
    y = np.asarray(y_idx, dtype=np.int64)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero samples")
    # Search on log T: the loss is far better conditioned there than on T itself.
    low, high = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: log_loss_at(margins, y, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def reliability_curve(
    proba: np.ndarray, y_idx: np.ndarray, n_bins: int = DEFAULT_N_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-1 confidence vs accuracy in ``n_bins`` equal-width bins over [0, 1].

    Returns ``(bin_conf, bin_acc, bin_count)``; empty bins hold NaN confidence and accuracy.
    """
    proba = _as_2d(proba)
    y = np.asarray(y_idx, dtype=np.int64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    # Right-closed bins, with confidence 0 folded into the first one.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_conf = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        bin_acc = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return bin_conf, bin_acc, count


def expected_calibration_error(proba: np.ndarray, y_idx: np.ndarray, n_bins: int = DEFAULT_N_BINS) -> float:
    """Support-weighted mean gap between top-1 confidence and accuracy (0 = calibrated)."""
    bin_conf, bin_acc, count = reliability_curve(proba, y_idx, n_bins)
    filled = count > 0
    if not filled.any():
        return 0.0
    gaps = np.abs(bin_conf[filled] - bin_acc[filled])
    return float(np.sum(gaps * count[filled]) / count.sum())


def sharpen(p: np.ndarray, power: float = 3.0) -> np.ndarray:
    """``p**power`` renormalised per row: the seed's fix for XGBoost's too-flat votes.

    Order-preserving for power > 0, so the argmax never changes.
    """
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    p = _as_2d(p)
    # Divide by the row max first so that high powers of small numbers do not underflow to 0/0.
    scaled = (p / p.max(axis=1, keepdims=True)) ** power
    return scaled / scaled.sum(axis=1, keepdims=True)
