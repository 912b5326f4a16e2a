"""A/B statistics on labelled predictions: pure functions, no I/O.

Two designs judge a challenger (docs/decisions.md):

- **split traffic**: each arm is a binomial sample of the products routed to it (a labelled
  prediction is right or wrong), the challenger's arm the small ``challenger_share``;
- **paired** (shadow scoring): both models predicted every product, so each labelled product
  says which of the two was right; only the discordant pairs carry evidence.

By default both are decided with always-valid sequential tests (:mod:`.sequential`), which the
daily job may look at every day without inflating its error rates; ``ab.sequential=false`` keeps
the fixed-sample tests (one-sided pooled z-test, exact McNemar), valid for a single look only.
When both designs run, each gets half of ``alpha`` (Bonferroni), so a false promotion by either
stays within ``alpha``. Promote only on significant evidence the challenger is *better*, reject on
evidence it is *worse*, and reject an inconclusive test once ``max_samples`` labels were seen (the
champion keeps its place without evidence against it). Accuracy gets a Wilson score interval,
honest near 0/1 and on the small challenger arm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from rakuten_ml.promotion.paired_stats import PairedCounts, mcnemar_exact
from rakuten_ml.promotion.sequential import paired_msprt, split_msprt
from rakuten_ml.settings import ABSettings

Alternative = Literal["greater", "less", "two-sided"]
Verdict = Literal["promote", "keep_testing", "reject"]
TestName = Literal["paired_msprt", "split_msprt", "paired_mcnemar", "split_ztest"]
Finding = Literal["better", "worse", "undecided", "too_few_labels"]

REPORT_CONFIDENCE = 0.95  # intervals shown to people use the usual 95 %, independent of the test's alpha
_STATSMODELS_ALTERNATIVE = {"greater": "larger", "less": "smaller", "two-sided": "two-sided"}


def wilson_interval(successes: int, n: int, confidence: float = REPORT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there is no observation."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    # at 0 or n successes the bound is exactly 0 or 1; rounding would leave 1e-17 off
    return (0.0 if successes == 0 else max(0.0, float(low))), (1.0 if successes == n else min(1.0, float(high)))


@dataclass(frozen=True)
class ArmStats:
    """One variant's labelled predictions: ``correct`` of ``n`` were right."""

    variant: str
    version: str | None
    n: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        """None without observations: undefined, and NaN would not survive JSON (Airflow XComs, the API)."""
        return self.correct / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return asdict(self) | {"accuracy": self.accuracy, "ci95_low": low, "ci95_high": high}


@dataclass(frozen=True)
class ZTest:
    diff: float  # p1 - p2
    z: float
    p_value: float
    alternative: Alternative


def two_proportion_ztest(s1: int, n1: int, s2: int, n2: int, alternative: Alternative = "greater") -> ZTest:
    """Test H0 p1 == p2 with the pooled standard error; 'greater' means H1 p1 > p2."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"both samples need observations, got n1={n1}, n2={n2}")
    p1, p2 = s1 / n1, s2 / n2
    pooled = (s1 + s2) / (n1 + n2)
    if pooled in (0.0, 1.0):  # both arms all right or all wrong: no variance, no difference to find
        return ZTest(p1 - p2, 0.0, 0.5 if alternative != "two-sided" else 1.0, alternative)
    z, p_value = proportions_ztest([s1, s2], [n1, n2], alternative=_STATSMODELS_ALTERNATIVE[alternative], prop_var=False)
    return ZTest(p1 - p2, float(z), min(1.0, float(p_value)), alternative)


@dataclass(frozen=True)
class DesignResult:
    """What one design's test says on the labels so far."""

    test: TestName
    n_labels: int
    finding: Finding
    alpha: float
    numbers: dict[str, Any]
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ABDecision:
    action: Verdict
    reason: str
    champion: ArmStats
    challenger: ArmStats
    diff: float | None  # challenger accuracy - champion accuracy on the split arms; None while an arm has no labels
    z: float | None  # the split design's pooled z statistic, reported whichever test decides
    p_better: float | None  # its one-sided p-value of "challenger is better" (a single-look figure)
    p_worse: float | None  # and of "challenger is worse"
    alpha: float
    min_samples: int
    max_samples: int
    test: TestName | None = None  # the test that decided; None while testing goes on
    n_labels: int = 0  # the labels that test decided on (the split arms' sum, or the labelled pairs)
    sequential: bool = True
    paired: PairedCounts | None = None
    designs: tuple[DesignResult, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["champion"], out["challenger"] = self.champion.as_dict(), self.challenger.as_dict()
        out["paired"] = None if self.paired is None else self.paired.as_dict()
        out["designs"] = [d.as_dict() for d in self.designs]
        return out


def _too_few_labels(champion: ArmStats, challenger: ArmStats, min_samples: int) -> str:
    """Why the test keeps running; an arm without any label is named first, the usual state of a fresh test."""
    counts = f"need {min_samples} labelled predictions per arm; champion has {champion.n}, challenger {challenger.n}"
    empty = [arm.variant for arm in (champion, challenger) if arm.n == 0]
    if not empty:
        return counts
    return f"{' and '.join(empty)} {'has' if len(empty) == 1 else 'have'} no labelled predictions yet ({counts})"


def _split_design(champion: ArmStats, challenger: ArmStats, policy: ABSettings, alpha: float) -> DesignResult:
    n = champion.n + challenger.n
    name: TestName = "split_msprt" if policy.sequential else "split_ztest"
    if min(champion.n, challenger.n) < max(policy.min_samples_per_arm, 1):
        return DesignResult(name, n, "too_few_labels", alpha, {}, _too_few_labels(champion, challenger, policy.min_samples_per_arm))
    numbers = f"challenger {challenger.accuracy:.4f} vs champion {champion.accuracy:.4f} (n={challenger.n}/{champion.n}"
    finding: Finding
    if policy.sequential:
        test = split_msprt(challenger.correct, challenger.n, champion.correct, champion.n, alpha=alpha, tau=policy.tau)
        finding = test.direction or "undecided"
        summary = (f"split-traffic sequential test: {numbers}, likelihood ratio {test.likelihood_ratio:.3g} "
                   f"{'>=' if test.decided else '<'} {test.threshold:.3g}, difference in [{test.ci_low:+.4f}, {test.ci_high:+.4f}])")
        return DesignResult(name, n, finding, alpha, test.as_dict(), summary)
    better = two_proportion_ztest(challenger.correct, challenger.n, champion.correct, champion.n, "greater")
    worse = 1 - better.p_value
    finding = "better" if better.p_value < alpha else "worse" if worse < alpha else "undecided"
    p = better.p_value if finding != "worse" else worse
    summary = f"split-traffic z-test: {numbers}, z={better.z:.2f}), p={p:.4g} {'<' if finding != 'undecided' else '>='} {alpha:g}"
    return DesignResult(name, n, finding, alpha, {"z": better.z, "p_better": better.p_value, "p_worse": worse}, summary)


def _paired_design(paired: PairedCounts, policy: ABSettings, alpha: float) -> DesignResult:
    name: TestName = "paired_msprt" if policy.sequential else "paired_mcnemar"
    if paired.n < max(policy.min_samples_per_arm, 1):
        return DesignResult(name, paired.n, "too_few_labels", alpha, {},
                            f"need {policy.min_samples_per_arm} labelled pairs; {paired.n} so far")
    numbers = (f"on {paired.n} labelled products both models scored, challenger right alone on {paired.challenger_only}, "
               f"champion right alone on {paired.champion_only}")
    finding: Finding
    if policy.sequential:
        test = paired_msprt(paired.champion_only, paired.challenger_only, alpha=alpha,
                            prior_concentration=policy.paired_prior_concentration, n_labels=paired.n)
        finding = test.direction or "undecided"
        summary = (f"paired sequential test {numbers}: likelihood ratio {test.likelihood_ratio:.3g} "
                   f"{'>=' if test.decided else '<'} {test.threshold:.3g}, difference in [{test.ci_low:+.4f}, {test.ci_high:+.4f}]")
        return DesignResult(name, paired.n, finding, alpha, test.as_dict(), summary)
    mcnemar = mcnemar_exact(paired.champion_only, paired.challenger_only)
    finding = "better" if mcnemar.p_better < alpha else "worse" if mcnemar.p_worse < alpha else "undecided"
    p = mcnemar.p_worse if finding == "worse" else mcnemar.p_better
    summary = f"paired exact McNemar test {numbers}: p={p:.4g} {'<' if finding != 'undecided' else '>='} {alpha:g}"
    return DesignResult(name, paired.n, finding, alpha, asdict(mcnemar), summary)


def decide(
    champion: ArmStats,
    challenger: ArmStats,
    policy: ABSettings,
    paired: PairedCounts | None = None,
) -> ABDecision:
    """promote / keep_testing / reject, with the numbers that led there (``policy`` bounds alpha to (0, 0.5)).

    ``paired`` holds the shadow-scored products' counts when both models score every product; the
    paired test is asked first (it needs far fewer labels), then the split-traffic one.
    """
    if not 0 < policy.alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {policy.alpha}")
    alpha = policy.alpha / (2 if paired is not None else 1)
    designs = (*((_paired_design(paired, policy, alpha),) if paired is not None else ()), _split_design(champion, challenger, policy, alpha))
    verdict: dict[str, Any] = {
        "champion": champion, "challenger": challenger, "alpha": policy.alpha, "min_samples": policy.min_samples_per_arm,
        "max_samples": policy.max_samples_per_arm, "sequential": policy.sequential, "paired": paired, "designs": designs,
    }
    champion_accuracy, challenger_accuracy = champion.accuracy, challenger.accuracy
    diff = None if champion_accuracy is None or challenger_accuracy is None else challenger_accuracy - champion_accuracy
    if all(d.finding == "too_few_labels" for d in designs):
        verdict |= {"diff": diff, "z": None, "p_better": None, "p_worse": None}
        return ABDecision("keep_testing", "; ".join(d.summary for d in reversed(designs)), **verdict)
    z = p_better = p_worse = None
    if min(champion.n, challenger.n) >= max(policy.min_samples_per_arm, 1):
        ztest = two_proportion_ztest(challenger.correct, challenger.n, champion.correct, champion.n, "greater")
        z, p_better, p_worse = ztest.z, ztest.p_value, 1 - ztest.p_value
    verdict |= {"diff": diff, "z": z, "p_better": p_better, "p_worse": p_worse}
    decisive = next((d for d in designs if d.finding in ("better", "worse")), None)
    if decisive is not None:
        action: Verdict = "promote" if decisive.finding == "better" else "reject"
        reason = f"challenger significantly {decisive.finding}: {decisive.summary}"
        return ABDecision(action, reason, test=decisive.test, n_labels=decisive.n_labels, **verdict)
    summaries = "; ".join(d.summary for d in designs)
    if paired is not None and paired.n >= policy.max_paired_labels:
        reason = f"no significant difference after {paired.n} labelled pairs (max {policy.max_paired_labels}): {summaries}"
        return ABDecision("reject", reason, test=designs[0].test, n_labels=paired.n, **verdict)
    if challenger.n >= policy.max_samples_per_arm:
        reason = f"no significant difference after {challenger.n} challenger labels (max {policy.max_samples_per_arm}): {summaries}"
        return ABDecision("reject", reason, test=designs[-1].test, n_labels=designs[-1].n_labels, **verdict)
    return ABDecision("keep_testing", f"no significant difference yet: {summaries}", **verdict)
