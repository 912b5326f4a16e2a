"""Always-valid (anytime-valid) A/B tests: pure functions, no I/O.

The daily A/B job looks at the same growing sample again and again. A fixed-sample test (z-test,
exact McNemar) keeps its error rate for one look only; re-run every day it is a new chance to cross
its threshold by luck, and false promotions add up. A sequential test is valid however often one
looks, and one may stop at any look.

Both tests here are mixture sequential probability ratio tests (mSPRT). The likelihood ratio of
"some effect, weighted by a prior (the mixture)" against H0, computed on the data so far, is a
nonnegative martingale with mean 1 under H0. Ville's inequality bounds the chance that such a
martingale *ever* exceeds 1/alpha by alpha, so "decide when LR >= 1/alpha" errs with probability
at most alpha over all looks together (either direction; by the mixture's symmetry a false
promotion alone is about half of it). Inverting the test, the null values whose LR has not yet
reached 1/alpha form a confidence sequence: it covers the truth at every look at once with
probability >= 1 - alpha, and it excludes 0 exactly when the test decides.

- Paired design (shadow scoring): only discordant pairs inform. Under H0 each is the challenger's
  with probability theta = 1/2; the mixture is theta ~ Beta(a, a), a conjugate closed form.
- Split design (traffic split): the normal-mixture mSPRT of Johari, Pekelis & Walsh ("Always valid
  inference", Operations Research 2022) on the difference of two proportions, with the plug-in
  variance of the difference (asymptotically valid, as in their paper).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import betaln, xlog1py, xlogy

Design = Literal["paired", "split"]
Direction = Literal["better", "worse"]

_LOG_FLOAT_MAX = math.log(np.finfo(float).max)


@dataclass(frozen=True)
class SequentialTest:
    """One look at an always-valid test; ``estimate`` and the interval are challenger - champion accuracy."""

    design: Design
    n_labels: int
    estimate: float | None
    likelihood_ratio: float  # capped at the largest float, so JSON stays valid; the log below is exact
    threshold: float  # 1 / alpha
    ci_low: float
    ci_high: float
    alpha: float
    log_likelihood_ratio: float

    @property
    def decided(self) -> bool:
        return self.log_likelihood_ratio >= math.log(self.threshold)

    @property
    def direction(self) -> Direction | None:
        """Which way the decision went; None while undecided."""
        if not self.decided or not self.estimate:
            return None
        return "better" if self.estimate > 0 else "worse"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"decided": self.decided, "direction": self.direction}


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _check_arm(correct: int, n: int, name: str) -> None:
    if n < 0 or not 0 <= correct <= n:
        raise ValueError(f"{name}: need 0 <= correct <= n, got correct={correct}, n={n}")


def _capped_exp(log_value: float) -> float:
    return math.exp(min(log_value, _LOG_FLOAT_MAX))


# -- paired design -----------------------------------------------------------------------------

def paired_log_likelihood_ratio(
    champion_only: npt.ArrayLike, challenger_only: npt.ArrayLike, prior_concentration: float = 1.0, theta0: float = 0.5
) -> np.ndarray:
    """log of the Beta(a, a)-mixture LR against H0 "the challenger wins a discordant pair with probability theta0".

    Vectorised (numpy broadcasting) so simulations can run many tests at once:
    log B(c + a, b + a) - log B(a, a) - c log theta0 - b log(1 - theta0).
    """
    b = np.asarray(champion_only, dtype=float)
    c = np.asarray(challenger_only, dtype=float)
    a = prior_concentration
    return np.asarray(betaln(c + a, b + a) - betaln(a, a) - xlogy(c, theta0) - xlog1py(b, -theta0))


def _theta_lower(b: int, c: int, a: float, log_threshold: float) -> float:
    """Smallest theta0 the paired mixture does not reject; the LR is convex-shaped in theta0 with its minimum (< 1) at c / (b + c)."""
    if c == 0:
        return 0.0
    def excess(theta0: float) -> float:
        return float(paired_log_likelihood_ratio(b, c, a, theta0)) - log_threshold
    tiny = float(np.nextafter(0.0, 1.0))
    if excess(tiny) <= 0:
        return 0.0
    return float(brentq(excess, tiny, c / (b + c), xtol=1e-15))


def paired_msprt(
    champion_only: int, challenger_only: int, *, alpha: float, prior_concentration: float = 1.0, n_labels: int | None = None
) -> SequentialTest:
    """Always-valid test of "challenger and champion are equally accurate" on shadow-scored pairs.

    ``champion_only`` (b) and ``challenger_only`` (c) are the discordant pairs; ``n_labels`` all paired
    labelled products (default b + c), which scales the estimate (c - b) / n_labels.
    ``prior_concentration`` is a in the Beta(a, a) mixture over theta, the challenger's share of discordant
    pairs: 1 is uniform; larger a concentrates the mixture near 1/2, tuning the test to small effects
    (prior sd of theta is 1 / (2 sqrt(2a + 1)); with a discordant share q the prior sd of the accuracy
    difference is q / sqrt(2a + 1)).

    The confidence sequence is exact on theta; it maps to the accuracy difference by
    diff = (2 theta - 1) * (b + c) / n_labels, plugging in the observed discordant share (b + c) / n_labels
    for its true value, which is estimated far more precisely than theta. Without any discordant pair
    nothing bounds the difference: (-1, 1).
    """
    _check_alpha(alpha)
    if champion_only < 0 or challenger_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={champion_only}, c={challenger_only}")
    if prior_concentration <= 0:
        raise ValueError(f"prior_concentration must be > 0, got {prior_concentration}")
    b, c = champion_only, challenger_only
    discordant = b + c
    n = discordant if n_labels is None else n_labels
    if n < discordant:
        raise ValueError(f"n_labels={n} is fewer than the {discordant} discordant pairs")
    log_lr = float(paired_log_likelihood_ratio(b, c, prior_concentration))
    log_threshold = math.log(1 / alpha)
    if discordant == 0:
        ci_low, ci_high = -1.0, 1.0
    else:
        theta_low = _theta_lower(b, c, prior_concentration, log_threshold)
        theta_high = 1.0 - _theta_lower(c, b, prior_concentration, log_threshold)  # swapping b and c mirrors theta
        scale = discordant / n
        ci_low, ci_high = (2 * theta_low - 1) * scale, (2 * theta_high - 1) * scale
    return SequentialTest(
        design="paired", n_labels=n, estimate=(c - b) / n if n else None,
        likelihood_ratio=_capped_exp(log_lr), threshold=1 / alpha, ci_low=ci_low, ci_high=ci_high,
        alpha=alpha, log_likelihood_ratio=log_lr,
    )


# -- split design ------------------------------------------------------------------------------

def _plugin_variance(correct: np.ndarray, n: np.ndarray) -> np.ndarray:
    """p(1-p)/n; at 0 or n successes p is pulled by half a success so a perfect arm still has variance."""
    safe_n = np.maximum(n, 1.0)
    edge = (correct == 0) | (correct == n)
    p = np.where(edge, (correct + 0.5) / (safe_n + 1), correct / safe_n)
    return np.asarray(p * (1 - p) / safe_n)


def split_moments(
    challenger_correct: npt.ArrayLike, challenger_n: npt.ArrayLike, champion_correct: npt.ArrayLike, champion_n: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference of accuracies, its plug-in variance, which tests have an empty arm); vectorised."""
    s1, n1 = np.asarray(challenger_correct, dtype=float), np.asarray(challenger_n, dtype=float)
    s2, n2 = np.asarray(champion_correct, dtype=float), np.asarray(champion_n, dtype=float)
    empty = (n1 == 0) | (n2 == 0)
    diff = s1 / np.maximum(n1, 1.0) - s2 / np.maximum(n2, 1.0)
    return np.where(empty, 0.0, diff), _plugin_variance(s1, n1) + _plugin_variance(s2, n2), empty


def split_log_likelihood_ratio(
    challenger_correct: npt.ArrayLike, challenger_n: npt.ArrayLike, champion_correct: npt.ArrayLike, champion_n: npt.ArrayLike,
    tau: float, null_diff: float = 0.0,
) -> np.ndarray:
    """log of the N(null_diff, tau^2)-mixture LR against H0 "difference = null_diff"; 0 (LR 1) with an empty arm. Vectorised."""
    diff, sigma2, empty = split_moments(challenger_correct, challenger_n, champion_correct, champion_n)
    tau2 = tau * tau
    log_lr = 0.5 * np.log(sigma2 / (sigma2 + tau2)) + tau2 * (diff - null_diff) ** 2 / (2 * sigma2 * (sigma2 + tau2))
    return np.asarray(np.where(empty, 0.0, log_lr))


def split_msprt(
    challenger_correct: int, challenger_n: int, champion_correct: int, champion_n: int, *, alpha: float, tau: float
) -> SequentialTest:
    """Always-valid test of "equal accuracy" on two independent arms (traffic split).

    ``tau`` is the standard deviation of the normal mixture over the accuracy difference: the scale of
    differences the test is tuned to detect fastest (0.02-0.05 is the range a retrain moves accuracy by).
    A smaller tau finds small gains sooner and large ones later; any tau keeps the error bound.
    The confidence sequence is d +- sqrt(s2 (s2 + tau^2) / tau^2 * (2 log(1/alpha) + log((s2 + tau^2) / s2))),
    clipped to [-1, 1]; (-1, 1) while an arm is empty.
    """
    _check_alpha(alpha)
    _check_arm(challenger_correct, challenger_n, "challenger")
    _check_arm(champion_correct, champion_n, "champion")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    n_labels = challenger_n + champion_n
    if challenger_n == 0 or champion_n == 0:
        return SequentialTest("split", n_labels, None, 1.0, 1 / alpha, -1.0, 1.0, alpha, 0.0)
    diff_array, sigma2_array, _ = split_moments(challenger_correct, challenger_n, champion_correct, champion_n)
    diff, sigma2, tau2 = float(diff_array), float(sigma2_array), tau * tau
    log_lr = float(split_log_likelihood_ratio(challenger_correct, challenger_n, champion_correct, champion_n, tau))
    half_width = math.sqrt(sigma2 * (sigma2 + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((sigma2 + tau2) / sigma2)))
    return SequentialTest(
        design="split", n_labels=n_labels, estimate=diff,
        likelihood_ratio=_capped_exp(log_lr), threshold=1 / alpha,
        ci_low=max(-1.0, diff - half_width), ci_high=min(1.0, diff + half_width),
        alpha=alpha, log_likelihood_ratio=log_lr,
    )
