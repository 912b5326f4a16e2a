"""A/B statistics on labelled predictions: pure functions, no I/O.

Each arm is a binomial sample (a labelled prediction is right or wrong). Accuracy gets a
Wilson score interval (honest near 0/1 and on the small 5% challenger arm, where the normal
"Wald" interval is too narrow). The decision uses two one-sided two-proportion z-tests with a
pooled variance: promote only when the challenger is significantly *better*, reject when it
is significantly *worse*, and reject an inconclusive test once the challenger arm reached
``max_samples`` (the champion keeps its place without evidence against it).

The daily job looks at the same growing test repeatedly; a minimum sample size per arm and
a one-sided alpha per direction keep that peeking from deciding on a handful of labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from rakuten_ml.settings import ABSettings

Alternative = Literal["greater", "less", "two-sided"]
Verdict = Literal["promote", "keep_testing", "reject"]

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
class ABDecision:
    action: Verdict
    reason: str
    champion: ArmStats
    challenger: ArmStats
    diff: float | None  # challenger accuracy - champion accuracy; None while an arm has no labels
    z: float | None
    p_better: float | None  # one-sided p-value of "challenger is better"
    p_worse: float | None  # one-sided p-value of "challenger is worse"
    alpha: float
    min_samples: int
    max_samples: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["champion"], out["challenger"] = self.champion.as_dict(), self.challenger.as_dict()
        return out


def _too_few_labels(champion: ArmStats, challenger: ArmStats, min_samples: int) -> str:
    """Why the test keeps running; an arm without any label is named first, the usual state of a fresh test."""
    counts = f"need {min_samples} labelled predictions per arm; champion has {champion.n}, challenger {challenger.n}"
    empty = [arm.variant for arm in (champion, challenger) if arm.n == 0]
    if not empty:
        return counts
    return f"{' and '.join(empty)} {'has' if len(empty) == 1 else 'have'} no labelled predictions yet ({counts})"


def decide(
    champion: ArmStats,
    challenger: ArmStats,
    policy: ABSettings,
) -> ABDecision:
    """promote / keep_testing / reject, with the numbers that led there (``policy`` bounds alpha to (0, 0.5))."""
    alpha, min_samples, max_samples = policy.alpha, policy.min_samples_per_arm, policy.max_samples_per_arm
    verdict: dict[str, Any] = {"champion": champion, "challenger": challenger, "alpha": alpha, "min_samples": min_samples, "max_samples": max_samples}
    if min(champion.n, challenger.n) < max(min_samples, 1):  # an empty arm has nothing to test, whatever min_samples
        champion_accuracy, challenger_accuracy = champion.accuracy, challenger.accuracy
        return ABDecision(
            "keep_testing", _too_few_labels(champion, challenger, min_samples),
            diff=None if champion_accuracy is None or challenger_accuracy is None else challenger_accuracy - champion_accuracy,
            z=None, p_better=None, p_worse=None, **verdict,
        )
    better = two_proportion_ztest(challenger.correct, challenger.n, champion.correct, champion.n, "greater")
    worse = 1 - better.p_value  # same z, the other tail
    numbers = f"challenger {challenger.accuracy:.4f} vs champion {champion.accuracy:.4f} (n={challenger.n}/{champion.n}, z={better.z:.2f})"
    if better.p_value < alpha:
        action: Verdict = "promote"
        reason = f"challenger significantly better: {numbers}, p={better.p_value:.4g} < {alpha}"
    elif worse < alpha:
        action, reason = "reject", f"challenger significantly worse: {numbers}, p={worse:.4g} < {alpha}"
    elif challenger.n >= max_samples:
        action, reason = "reject", f"no significant difference after {challenger.n} challenger labels (max {max_samples}): {numbers}"
    else:
        action, reason = "keep_testing", f"no significant difference yet: {numbers}"
    return ABDecision(action, reason, diff=better.diff, z=better.z, p_better=better.p_value, p_worse=worse, **verdict)
