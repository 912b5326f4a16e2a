"""A/B statistics: checked against statsmodels, and by simulation over many seeds for each truth."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from rakuten_ml.promotion.ab_stats import ArmStats, decide, two_proportion_ztest, wilson_interval
from rakuten_ml.promotion.paired_stats import PairedCounts
from rakuten_ml.settings import ABSettings

SEEDS = range(400)


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 10), (10, 10), (170, 200), (801, 1000), (1, 3)])
def test_wilson_interval_matches_statsmodels(successes, n):
    low, high = wilson_interval(successes, n)
    ref_low, ref_high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-9)
    assert 0.0 <= low <= successes / n <= high <= 1.0


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(5, 3)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), [(180, 200, 160, 200), (85, 100, 3400, 4000), (50, 100, 50, 100)])
def test_two_proportion_ztest_matches_statsmodels(s1, n1, s2, n2, alternative):
    ours = two_proportion_ztest(s1, n1, s2, n2, alternative)
    ref_alt = {"greater": "larger", "less": "smaller", "two-sided": "two-sided"}[alternative]
    z, p = proportions_ztest([s1, s2], [n1, n2], alternative=ref_alt)
    assert ours.z == pytest.approx(z, abs=1e-9)
    assert ours.p_value == pytest.approx(p, abs=1e-9)


def test_ztest_without_variance_finds_no_difference():
    result = two_proportion_ztest(200, 200, 300, 300)
    assert result.z == 0.0 and result.p_value == 0.5


def simulate(seed: int, p_champion: float, p_challenger: float, n_champion: int = 4000, n_challenger: int = 800, *, sequential: bool) -> str:
    """One A/B test at one look: 5%-ish challenger arm, binomial correctness per labelled prediction."""
    rng = np.random.default_rng(seed)
    champion = ArmStats("champion", "1", n_champion, int(rng.binomial(n_champion, p_champion)))
    challenger = ArmStats("challenger", "2", n_challenger, int(rng.binomial(n_challenger, p_challenger)))
    policy = ABSettings(alpha=0.05, min_samples_per_arm=200, max_samples_per_arm=5000, sequential=sequential)
    return decide(champion, challenger, policy).action


def rates(actions: list[str]) -> dict[str, float]:
    return {a: actions.count(a) / len(actions) for a in ("promote", "keep_testing", "reject")}


# the sequential test pays for staying valid under every daily look with some power at any single one
POWER = {False: 0.9, True: 0.8}


@pytest.mark.parametrize("sequential", [False, True])
def test_truly_better_challenger_is_promoted(sequential):
    observed = rates([simulate(s, 0.80, 0.86, sequential=sequential) for s in SEEDS])
    assert observed["promote"] > POWER[sequential]  # power of a 6-point gain on 800 vs 4000 labels
    assert observed["reject"] == 0.0


@pytest.mark.parametrize("sequential", [False, True])
def test_truly_worse_challenger_is_rejected(sequential):
    observed = rates([simulate(s, 0.86, 0.80, sequential=sequential) for s in SEEDS])
    assert observed["reject"] > POWER[sequential]
    assert observed["promote"] == 0.0


@pytest.mark.parametrize("sequential", [False, True])
def test_equal_challenger_is_rarely_promoted(sequential):
    observed = rates([simulate(s, 0.83, 0.83, sequential=sequential) for s in SEEDS])
    # the one-sided test's false-promotion rate is alpha (0.05); allow for 400-run simulation noise
    assert observed["promote"] < 0.08
    assert observed["reject"] < 0.08
    assert observed["keep_testing"] > 0.85


def test_too_few_labels_keep_testing_whatever_the_numbers():
    decision = decide(ArmStats("champion", "1", 5000, 2500), ArmStats("challenger", "2", 150, 150), ABSettings(min_samples_per_arm=200))
    assert decision.action == "keep_testing" and decision.p_better is None
    assert "need 200 labelled predictions per arm" in decision.reason and "challenger 150" in decision.reason


def test_inconclusive_after_max_samples_keeps_the_champion():
    champion, challenger = ArmStats("champion", "1", 20000, 16600), ArmStats("challenger", "2", 5000, 4150)
    assert decide(champion, challenger, ABSettings(max_samples_per_arm=10000)).action == "keep_testing"
    decision = decide(champion, challenger, ABSettings(max_samples_per_arm=5000))
    assert decision.action == "reject" and "no significant difference after 5000" in decision.reason


def test_decision_reports_its_numbers():
    decision = decide(ArmStats("champion", "1", 4000, 3200), ArmStats("challenger", "2", 800, 700), ABSettings())
    out = decision.as_dict()
    assert out["action"] == "promote"
    assert out["challenger"]["accuracy"] == pytest.approx(0.875)
    assert out["challenger"]["ci95_low"] < 0.875 < out["challenger"]["ci95_high"]
    assert out["p_better"] < 0.05 and out["p_worse"] > 0.95 and out["diff"] == pytest.approx(0.075)
    with pytest.raises(ValueError, match="alpha"):
        decide(ArmStats("champion", "1", 10, 5), ArmStats("challenger", "2", 10, 5), ABSettings(alpha=0.7))


def test_empty_arms_have_no_accuracy_and_keep_testing_whatever_min_samples():
    empty, labelled = ArmStats("challenger", "2", 0, 0), ArmStats("champion", "1", 300, 240)
    assert empty.accuracy is None and empty.as_dict()["accuracy"] is None
    for min_samples in (200, 1):  # no z-test on an empty arm, even at the smallest minimum
        decision = decide(labelled, empty, ABSettings(min_samples_per_arm=min_samples))
        assert decision.action == "keep_testing" and decision.diff is None and decision.z is None
        assert decision.reason.startswith("challenger has no labelled predictions yet")
    assert decide(labelled, ArmStats("challenger", "2", 10, 9), ABSettings()).diff == pytest.approx(0.1)  # defined as soon as both arms have labels


def test_decision_names_its_test_and_its_labels():
    champion, challenger = ArmStats("champion", "1", 4000, 3200), ArmStats("challenger", "2", 800, 700)
    sequential = decide(champion, challenger, ABSettings())
    assert (sequential.action, sequential.test, sequential.n_labels) == ("promote", "split_msprt", 4800)
    assert "likelihood ratio" in sequential.reason and sequential.as_dict()["designs"][0]["test"] == "split_msprt"
    fixed = decide(champion, challenger, ABSettings(sequential=False))
    assert (fixed.action, fixed.test, fixed.n_labels) == ("promote", "split_ztest", 4800)


def test_paired_design_decides_on_labels_the_split_arms_cannot():
    """200 challenger-arm labels say nothing yet; 1,000 labelled pairs with 80 vs 30 discordant do."""
    champion, challenger = ArmStats("champion", "1", 3800, 3040), ArmStats("challenger", "2", 200, 165)
    paired = PairedCounts("1", "2", n=1000, both_right=770, champion_only=30, challenger_only=80, both_wrong=120)
    for sequential, test in ((True, "paired_msprt"), (False, "paired_mcnemar")):
        decision = decide(champion, challenger, ABSettings(sequential=sequential), paired)
        assert (decision.action, decision.test, decision.n_labels) == ("promote", test, 1000), decision.reason
        assert decision.alpha == 0.05 and all(d.alpha == 0.025 for d in decision.designs)  # Bonferroni over the two designs
        assert [d.test.split("_")[0] for d in decision.designs] == ["paired", "split"]
        assert decision.designs[1].finding == "undecided"
        assert decision.as_dict()["paired"]["challenger_only"] == 80
    worse = PairedCounts("1", "2", n=1000, both_right=770, champion_only=80, challenger_only=30, both_wrong=120)
    decision = decide(champion, challenger, ABSettings(), worse)
    assert (decision.action, decision.test) == ("reject", "paired_msprt")
    assert decision.reason.startswith("challenger significantly worse: paired sequential test")


def test_paired_design_without_enough_pairs_waits_and_says_so():
    champion, challenger = ArmStats("champion", "1", 100, 80), ArmStats("challenger", "2", 0, 0)
    decision = decide(champion, challenger, ABSettings(), PairedCounts("1", "2", 50, 40, 2, 3, 5))
    assert decision.action == "keep_testing" and decision.test is None
    assert "need 200 labelled pairs; 50 so far" in decision.reason and decision.reason.startswith("challenger has no labelled")


def test_paired_equal_models_are_rarely_promoted_at_one_look():
    rng = np.random.default_rng(3)
    actions = []
    for _ in SEEDS:
        discordant = rng.binomial(1000, 0.12)
        challenger_only = int(rng.binomial(discordant, 0.5))
        paired = PairedCounts("1", "2", 1000, 800, discordant - challenger_only, challenger_only, 200 - discordant)
        actions.append(decide(ArmStats("champion", "1", 950, 760), ArmStats("challenger", "2", 50, 40), ABSettings(), paired).action)
    assert rates(actions)["promote"] < 0.05


def test_paired_test_without_a_difference_ends_at_its_own_cap():
    champion, challenger = ArmStats("champion", "1", 1000, 800), ArmStats("challenger", "2", 50, 40)
    even = PairedCounts("1", "2", 20_000, 16_000, 1200, 1200, 1600)
    assert decide(champion, challenger, ABSettings(max_paired_labels=30_000), even).action == "keep_testing"
    decision = decide(champion, challenger, ABSettings(max_paired_labels=20_000), even)
    assert (decision.action, decision.test, decision.n_labels) == ("reject", "paired_msprt", 20_000)
    assert "no significant difference after 20000 labelled pairs" in decision.reason
