"""Paired (shadow-scored) A/B statistics: pure functions, no I/O.

Under shadow scoring both models predict every product, so each labelled product tells whether
the champion and the challenger were right. Products both got right or both got wrong say nothing
about which model is better; only the discordant pairs do: ``b`` (champion right, challenger wrong)
and ``c`` (challenger right, champion wrong). Under H0 (equal accuracy) each discordant pair is the
challenger's with probability 1/2, so ``c`` given ``b + c`` is Binomial(b + c, 1/2): McNemar's exact
test. Pairing removes the product-to-product variance the split design pays for, which is why it
needs far fewer labels when the two models agree on most products (retrains of one model do).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar


def _check_counts(**counts: int) -> None:
    negative = {name: value for name, value in counts.items() if value < 0}
    if negative:
        raise ValueError(f"counts must be >= 0, got {negative}")


@dataclass(frozen=True)
class PairedCounts:
    """The 2x2 table of one paired test: who was right on each of ``n`` labelled products."""

    champion_version: str | None
    challenger_version: str | None
    n: int
    both_right: int
    champion_only: int  # b: champion right, challenger wrong
    challenger_only: int  # c: challenger right, champion wrong
    both_wrong: int

    def __post_init__(self) -> None:
        _check_counts(n=self.n, both_right=self.both_right, champion_only=self.champion_only,
                      challenger_only=self.challenger_only, both_wrong=self.both_wrong)
        cells = self.both_right + self.champion_only + self.challenger_only + self.both_wrong
        if cells != self.n:
            raise ValueError(f"the four cells sum to {cells}, not n={self.n}")

    @property
    def discordant(self) -> int:
        """The pairs that decide: the models disagreed on correctness."""
        return self.champion_only + self.challenger_only

    @property
    def champion_accuracy(self) -> float | None:
        """None without observations (NaN would not survive JSON)."""
        return (self.both_right + self.champion_only) / self.n if self.n else None

    @property
    def challenger_accuracy(self) -> float | None:
        return (self.both_right + self.challenger_only) / self.n if self.n else None

    @property
    def diff(self) -> float | None:
        """Challenger minus champion accuracy, (c - b) / n."""
        return (self.challenger_only - self.champion_only) / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "discordant": self.discordant,
            "champion_accuracy": self.champion_accuracy,
            "challenger_accuracy": self.challenger_accuracy,
            "diff": self.diff,
        }


@dataclass(frozen=True)
class McNemarResult:
    champion_only: int
    challenger_only: int
    statistic: float  # min(b, c), the exact test's statistic
    p_two_sided: float
    p_better: float  # one-sided p of "challenger is better": P(X >= c | b + c, 1/2)
    p_worse: float  # one-sided p of "challenger is worse": P(X <= c | b + c, 1/2)


def mcnemar_exact(champion_only: int, challenger_only: int) -> McNemarResult:
    """Exact McNemar test on the discordant pairs; a fixed-sample test, valid for one look only."""
    _check_counts(champion_only=champion_only, challenger_only=challenger_only)
    b, c = champion_only, challenger_only
    if b + c == 0:  # no discordant pair: no evidence either way
        return McNemarResult(b, c, 0.0, 1.0, 1.0, 1.0)
    # only the off-diagonal cells enter the exact test
    two_sided = mcnemar([[0, b], [c, 0]], exact=True)
    return McNemarResult(
        b, c,
        statistic=float(two_sided.statistic),
        p_two_sided=min(1.0, float(two_sided.pvalue)),
        p_better=float(binomtest(c, b + c, 0.5, alternative="greater").pvalue),
        p_worse=float(binomtest(c, b + c, 0.5, alternative="less").pvalue),
    )
