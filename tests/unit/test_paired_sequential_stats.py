"""Paired McNemar and the always-valid tests: against statsmodels/scipy references, their own inversions, and simulation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.contingency_tables import mcnemar

from rakuten_ml.promotion.paired_stats import PairedCounts, mcnemar_exact
from rakuten_ml.promotion.sequential import (
    paired_log_likelihood_ratio,
    paired_msprt,
    split_log_likelihood_ratio,
    split_moments,
    split_msprt,
)

ALPHA = 0.05
DISCORDANT = [(0, 1), (1, 0), (3, 9), (9, 3), (30, 60), (60, 60), (0, 25), (400, 470), (1200, 1000)]
ARMS: list[tuple[int, int, int, int]] = [(50, 60, 800, 1000), (180, 200, 3300, 4000), (950, 1000, 15000, 19000), (10, 10, 0, 10), (0, 12, 190, 200), (1, 1, 1, 1)]


# -- paired counts and McNemar ------------------------------------------------------------------

def test_paired_counts_properties_and_dict():
    counts = PairedCounts("1", "2", n=100, both_right=70, champion_only=5, challenger_only=12, both_wrong=13)
    assert counts.discordant == 17
    assert counts.champion_accuracy == pytest.approx(0.75)
    assert counts.challenger_accuracy == pytest.approx(0.82)
    assert counts.diff == pytest.approx(0.07)
    assert json.loads(json.dumps(counts.as_dict())) == counts.as_dict()
    assert counts.as_dict()["diff"] == pytest.approx(0.07) and counts.as_dict()["discordant"] == 17


def test_empty_paired_counts_have_no_accuracy():
    counts = PairedCounts(None, None, 0, 0, 0, 0, 0)
    assert (counts.champion_accuracy, counts.challenger_accuracy, counts.diff) == (None, None, None)
    assert counts.as_dict()["diff"] is None


@pytest.mark.parametrize("cells", [(10, 5, 2, 2), (11, 5, 2, 1), (-1, 5, 3, 3)])
def test_paired_counts_must_add_up(cells):
    with pytest.raises(ValueError):
        PairedCounts("1", "2", 10, *cells)


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_mcnemar_matches_statsmodels_and_binomtest(b, c):
    ours = mcnemar_exact(b, c)
    reference = mcnemar([[123, b], [c, 45]], exact=True)  # the concordant cells do not matter
    assert ours.statistic == reference.statistic
    assert ours.p_two_sided == pytest.approx(min(1.0, reference.pvalue), rel=1e-12)
    assert ours.p_better == pytest.approx(stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue, rel=1e-12)
    assert ours.p_worse == pytest.approx(stats.binomtest(c, b + c, 0.5, alternative="less").pvalue, rel=1e-12)
    # one-sided tails straight from the binomial distribution
    assert ours.p_better == pytest.approx(stats.binom.sf(c - 1, b + c, 0.5), rel=1e-9)
    assert ours.p_worse == pytest.approx(stats.binom.cdf(c, b + c, 0.5), rel=1e-9)


def test_mcnemar_without_discordant_pairs_finds_nothing():
    result = mcnemar_exact(0, 0)
    assert (result.p_two_sided, result.p_better, result.p_worse) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


# -- paired mixture SPRT ------------------------------------------------------------------------

@pytest.mark.parametrize("a", [0.5, 1.0, 7.5])
@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_paired_lr_matches_beta_binomial_over_binomial(b, c, a):
    result = paired_msprt(b, c, alpha=ALPHA, prior_concentration=a)
    reference = stats.betabinom.pmf(c, b + c, a, a) / stats.binom.pmf(c, b + c, 0.5)
    assert result.likelihood_ratio == pytest.approx(reference, rel=1e-9)
    assert result.log_likelihood_ratio == pytest.approx(math.log(reference), rel=1e-9, abs=1e-12)
    assert result.decided == (reference >= 1 / ALPHA)


def theta_of(diff: float, b: int, c: int, n: int) -> float:
    """The inverse of the documented mapping diff = (2 theta - 1) (b + c) / n."""
    return (diff * n / (b + c) + 1) / 2


@pytest.mark.parametrize(("b", "c"), DISCORDANT)
def test_paired_confidence_sequence_is_the_set_not_rejected(b, c):
    n = 10 * (b + c)
    result = paired_msprt(b, c, alpha=ALPHA, n_labels=n)
    threshold = math.log(1 / ALPHA)
    low, high = theta_of(result.ci_low, b, c, n), theta_of(result.ci_high, b, c, n)
    assert 0.0 <= low <= c / (b + c) <= high <= 1.0
    for bound, outward in ((low, -1), (high, 1)):
        inside, outside = bound - outward * 1e-7, bound + outward * 1e-7
        if 0.0 < bound < 1.0:
            assert paired_log_likelihood_ratio(b, c, 1.0, outside) >= threshold
        assert paired_log_likelihood_ratio(b, c, 1.0, min(max(inside, 0.0), 1.0)) < threshold
    assert result.decided == (not result.ci_low <= 0.0 <= result.ci_high)  # deciding = excluding "no difference"
    assert result.estimate == pytest.approx((c - b) / n)


def test_paired_direction_and_edges():
    assert paired_msprt(5, 40, alpha=ALPHA).direction == "better"
    assert paired_msprt(40, 5, alpha=ALPHA).direction == "worse"
    assert paired_msprt(10, 12, alpha=ALPHA).direction is None
    nothing = paired_msprt(0, 0, alpha=ALPHA, n_labels=500)
    assert (nothing.likelihood_ratio, nothing.ci_low, nothing.ci_high, nothing.estimate) == (1.0, -1.0, 1.0, 0.0)
    assert paired_msprt(0, 0, alpha=ALPHA).estimate is None
    overwhelming = paired_msprt(0, 5000, alpha=ALPHA)  # the LR overflows a float; its log does not
    assert math.isfinite(overwhelming.likelihood_ratio) and overwhelming.log_likelihood_ratio > 3000
    assert overwhelming.as_dict()["direction"] == "better"


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.0}, {"alpha": ALPHA, "prior_concentration": 0.0},
                                    {"alpha": ALPHA, "n_labels": 5}])
def test_paired_msprt_validates(kwargs):
    with pytest.raises(ValueError):
        paired_msprt(4, 3, **kwargs)
    with pytest.raises(ValueError):
        paired_msprt(-1, 3, alpha=ALPHA)


def test_paired_test_keeps_alpha_over_30_looks():
    """Equal models, 30 daily looks at 20 new discordant pairs each: Ville's bound, within Monte-Carlo slack."""
    rng = np.random.default_rng(20260101)
    runs, looks, per_look = 4000, 30, 20
    challenger = np.cumsum(rng.binomial(per_look, 0.5, size=(runs, looks)), axis=1)
    champion = per_look * np.arange(1, looks + 1) - challenger
    rejected = (paired_log_likelihood_ratio(champion, challenger) >= math.log(1 / ALPHA)).any(axis=1)
    slack = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert rejected.mean() <= ALPHA + slack
    # the vectorised LR the simulation uses is the one the test reports
    assert float(paired_log_likelihood_ratio(champion[0, -1], challenger[0, -1])) == pytest.approx(
        paired_msprt(int(champion[0, -1]), int(challenger[0, -1]), alpha=ALPHA).log_likelihood_ratio)


# -- split normal-mixture SPRT ------------------------------------------------------------------

def quad_lr(diff: float, sigma2: float, tau: float, null: float = 0.0) -> float:
    """Numerical mixture: the normal likelihood of the observed difference, averaged over N(null, tau^2), over its value at null."""
    sigma = math.sqrt(sigma2)
    def integrand(delta: float) -> float:
        return stats.norm.pdf(diff, delta, sigma) * stats.norm.pdf(delta, null, tau)
    mixture, _ = integrate.quad(integrand, null - 12 * tau, null + 12 * tau, points=[diff], limit=200, epsabs=0, epsrel=1e-11)
    return mixture / stats.norm.pdf(diff, null, sigma)


@pytest.mark.parametrize("tau", [0.02, 0.03, 0.05])
@pytest.mark.parametrize("arms", ARMS)
def test_split_lr_matches_numerical_integration(arms, tau):
    result = split_msprt(*arms, alpha=ALPHA, tau=tau)
    diff, sigma2, _ = split_moments(*arms)
    assert result.estimate == pytest.approx(arms[0] / arms[1] - arms[2] / arms[3])
    assert result.likelihood_ratio == pytest.approx(quad_lr(float(diff), float(sigma2), tau), rel=1e-6)


def test_split_variance_is_positive_at_perfect_arms():
    _, sigma2, _ = split_moments(10, 10, 0, 10)
    assert float(sigma2) > 0


@pytest.mark.parametrize("arms", ARMS)
def test_split_confidence_sequence_is_the_set_not_rejected(arms: tuple[int, int, int, int]) -> None:
    tau = 0.03
    result = split_msprt(*arms, alpha=ALPHA, tau=tau)
    assert result.estimate is not None
    threshold = math.log(1 / ALPHA)
    for bound, outward in ((result.ci_low, -1), (result.ci_high, 1)):
        if abs(bound) < 1.0:  # not clipped
            assert split_log_likelihood_ratio(*arms, tau=tau, null_diff=bound + outward * 1e-7) >= threshold
            assert split_log_likelihood_ratio(*arms, tau=tau, null_diff=bound - outward * 1e-7) < threshold
            assert quad_lr(result.estimate, float(split_moments(*arms)[1]), tau, null=bound) == pytest.approx(1 / ALPHA, rel=1e-5)
    assert result.decided == (not result.ci_low <= 0.0 <= result.ci_high)


def test_split_with_an_empty_arm_knows_nothing():
    result = split_msprt(0, 0, 150, 190, alpha=ALPHA, tau=0.03)
    assert (result.likelihood_ratio, result.ci_low, result.ci_high, result.estimate, result.decided) == (1.0, -1.0, 1.0, None, False)
    assert result.as_dict()["direction"] is None


def test_split_direction():
    assert split_msprt(950, 1000, 15000, 19000, alpha=ALPHA, tau=0.03).direction == "better"
    assert split_msprt(700, 1000, 15000, 19000, alpha=ALPHA, tau=0.03).direction == "worse"


@pytest.mark.parametrize(("args", "kwargs"), [
    ((5, 4, 10, 20), {"alpha": ALPHA, "tau": 0.03}),
    ((3, 4, 21, 20), {"alpha": ALPHA, "tau": 0.03}),
    ((3, 4, 10, -1), {"alpha": ALPHA, "tau": 0.03}),
    ((3, 4, 10, 20), {"alpha": 1.5, "tau": 0.03}),
    ((3, 4, 10, 20), {"alpha": ALPHA, "tau": 0.0}),
])
def test_split_msprt_validates(args, kwargs):
    with pytest.raises(ValueError):
        split_msprt(*args, **kwargs)
