"""A/B decisions on simulated labels: paired shadow scoring vs a 5% traffic split, sequential vs fixed-sample tests,
and the false promotions of today's daily-looked z-test.

    python -m benchmarks.ab_decisions [--runs 4000]

Seeded simulation with known true accuracies, numpy only (no platform services). Each labelled product
falls in one cell of the paired 2x2 table (both right, champion only, challenger only, both wrong) with
probabilities fixed by the champion's accuracy, the gap, and the share of products on which the two
models' correctness differs (retrains of one model agree on most products). Labels arrive one day at a
time; every test looks once a day. The tests are vectorised over runs here and checked against the
library's scalar functions (``ab_stats.decide``, ``paired_msprt``, ``split_msprt``, ``mcnemar_exact``).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

import rakuten_ml.promotion.ab_stats as ab_stats
from benchmarks.results import machine_line, write_section
from rakuten_ml.promotion.paired_stats import mcnemar_exact
from rakuten_ml.promotion.sequential import paired_log_likelihood_ratio, paired_msprt, split_log_likelihood_ratio, split_moments
from rakuten_ml.settings import ABSettings

log = logging.getLogger("benchmarks.ab_decisions")

CHAMPION_ACCURACY = 0.80
DISCORDANCE = 0.12  # share of products one model gets right and the other wrong
LABELS_PER_DAY = 200  # labelled products per day over the whole catalogue
CAP_DAYS = 120  # part (a): a test still undecided after this is reported as undecided
GAPS = (0.01, 0.02, 0.05)
POWER = 0.8  # the fixed-sample tests are sized for it
SEED = 20260101
POLICY = ABSettings(sequential=True)  # the new tests, with the platform's alpha, tau, a, min and max per arm
POLICY_TODAY = ABSettings(sequential=False)  # today's procedure: the same policy with fixed-sample tests

KEEP, BETTER, WORSE, AT_MAX = 0, 1, -1, -2  # a look's verdict; AT_MAX: challenger arm full, champion kept
Outcome = tuple[np.ndarray, np.ndarray]  # (labels when the test stopped, its verdict) per run


def cell_probabilities(gap: float) -> np.ndarray:
    """(both right, champion only, challenger only, both wrong): discordant cells split DISCORDANCE so that c - b = gap."""
    champion_only, challenger_only = (DISCORDANCE - gap) / 2, (DISCORDANCE + gap) / 2
    return np.array([CHAMPION_ACCURACY - champion_only, champion_only, challenger_only, 1 - CHAMPION_ACCURACY - challenger_only])


# -- label streams: cumulative counts after each day, shape (runs, days) ------------------------

@dataclass(frozen=True)
class SplitStream:
    challenger_correct: np.ndarray
    challenger_n: np.ndarray
    champion_correct: np.ndarray
    champion_n: np.ndarray


@dataclass(frozen=True)
class PairedStream:
    champion_only: np.ndarray
    challenger_only: np.ndarray


def split_stream(rng: np.random.Generator, gap: float, runs: int, days: int) -> SplitStream:
    """Each labelled product saw the challenger with the traffic share; only the marginal accuracies matter.

    Drawn day-major, so a shorter horizon with the same seed is a prefix of a longer one.
    """
    routing, challenger, champion = rng.spawn(3)  # one generator per draw keeps the prefix property
    n1 = routing.binomial(LABELS_PER_DAY, POLICY.challenger_share, size=(days, runs))
    s1 = challenger.binomial(n1, CHAMPION_ACCURACY + gap)
    s2 = champion.binomial(LABELS_PER_DAY - n1, CHAMPION_ACCURACY)
    n1c, s1c, s2c = (np.cumsum(x, axis=0).T for x in (n1, s1, s2))
    return SplitStream(s1c, n1c, s2c, LABELS_PER_DAY * np.arange(1, days + 1) - n1c)


def paired_stream(rng: np.random.Generator, gap: float, runs: int, days: int) -> PairedStream:
    """The paired 2x2 cells of each day's labelled products, drawn day-major like split_stream."""
    cells = np.cumsum(rng.multinomial(LABELS_PER_DAY, cell_probabilities(gap), size=(days, runs)), axis=0)
    return PairedStream(cells[..., 1].T, cells[..., 2].T)


# -- the tests, vectorised: a verdict per run and day ------------------------------------------

def pooled_z(s: SplitStream) -> np.ndarray:
    """The pooled two-proportion z of ab_stats.two_proportion_ztest (0 where an arm is empty or the pool has no variance)."""
    n1, n2 = np.maximum(s.challenger_n, 1), np.maximum(s.champion_n, 1)
    pooled = (s.challenger_correct + s.champion_correct) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (s.challenger_correct / n1 - s.champion_correct / n2) / np.sqrt(variance)
    return np.where(variance > 0, z, 0.0)


def with_split_rules(s: SplitStream, verdict: np.ndarray) -> np.ndarray:
    """ab_stats.decide's rules around a split test: no verdict before min labels per arm; challenger arm full and undecided: reject."""
    enough = np.minimum(s.challenger_n, s.champion_n) >= max(POLICY.min_samples_per_arm, 1)
    verdict = np.where((verdict == KEEP) & (s.challenger_n >= POLICY.max_samples_per_arm), AT_MAX, verdict)
    return np.where(enough, verdict, KEEP)


def today_verdicts(s: SplitStream) -> np.ndarray:
    """ab_stats.decide with ab.sequential=false, looked at daily: one-sided pooled z-tests at alpha per direction."""
    p_better = stats.norm.sf(pooled_z(s))
    verdict = np.where(p_better < POLICY.alpha, BETTER, np.where(1 - p_better < POLICY.alpha, WORSE, KEEP))
    return with_split_rules(s, verdict)


def sequential_verdicts(log_lr: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    return np.where(log_lr >= math.log(1 / POLICY.alpha), np.sign(estimate).astype(int), KEEP)


def split_sequential_verdicts(s: SplitStream) -> np.ndarray:
    """ab_stats.decide with ab.sequential=true and no paired counts (split_msprt), looked at daily."""
    log_lr = split_log_likelihood_ratio(s.challenger_correct, s.challenger_n, s.champion_correct, s.champion_n, POLICY.tau)
    diff, _, _ = split_moments(s.challenger_correct, s.challenger_n, s.champion_correct, s.champion_n)
    return with_split_rules(s, sequential_verdicts(log_lr, diff))


def paired_sequential_verdicts(p: PairedStream, prior_concentration: float) -> np.ndarray:
    log_lr = paired_log_likelihood_ratio(p.champion_only, p.challenger_only, prior_concentration)
    return sequential_verdicts(log_lr, p.challenger_only - p.champion_only)


def first_verdicts(verdicts: np.ndarray) -> Outcome:
    """(labels when the test stopped, its verdict) per run; an undecided run stops at the horizon with KEEP."""
    stopped = verdicts != KEEP
    day = np.where(stopped.any(axis=1), stopped.argmax(axis=1), verdicts.shape[1] - 1)
    return (day + 1) * LABELS_PER_DAY, verdicts[np.arange(len(verdicts)), day]


# -- fixed-sample tests at the size for POWER -----------------------------------------------------

def split_fixed_size(gap: float) -> tuple[int, int]:
    """(challenger, champion) labels for a two-sided z-test at alpha with POWER (statsmodels, arcsine effect size)."""
    ratio = (1 - POLICY.challenger_share) / POLICY.challenger_share
    n1 = NormalIndPower().solve_power(effect_size=proportion_effectsize(CHAMPION_ACCURACY + gap, CHAMPION_ACCURACY),
                                      alpha=POLICY.alpha, power=POWER, ratio=ratio, alternative="two-sided")
    return math.ceil(n1), math.ceil(n1 * ratio)


def paired_fixed_size(gap: float) -> int:
    """Pairs for exact McNemar at alpha with POWER: Connor's (1987) normal approximation, psi = discordance, delta = gap."""
    z_alpha, z_power = stats.norm.isf(POLICY.alpha / 2), stats.norm.isf(1 - POWER)
    return math.ceil((z_alpha * math.sqrt(DISCORDANCE) + z_power * math.sqrt(DISCORDANCE - gap**2)) ** 2 / gap**2)


def split_fixed_verdicts(rng: np.random.Generator, gap: float, runs: int) -> tuple[int, np.ndarray]:
    n1, n2 = split_fixed_size(gap)
    s = SplitStream(rng.binomial(n1, CHAMPION_ACCURACY + gap, size=runs), np.full(runs, n1),
                    rng.binomial(n2, CHAMPION_ACCURACY, size=runs), np.full(runs, n2))
    z = pooled_z(s)
    significant = 2 * stats.norm.sf(np.abs(z)) < POLICY.alpha
    return n1 + n2, np.where(significant, np.sign(z).astype(int), KEEP)


def mcnemar_two_sided(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """statsmodels' exact McNemar p, vectorised: twice the binomial tail of min(b, c), at most 1."""
    return np.where(b + c > 0, np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(b, c), b + c, 0.5)), 1.0)


def paired_fixed_verdicts(rng: np.random.Generator, gap: float, runs: int) -> tuple[int, np.ndarray]:
    n = paired_fixed_size(gap)
    cells = rng.multinomial(n, cell_probabilities(gap), size=runs)
    b, c = cells[:, 1], cells[:, 2]
    return n, np.where(mcnemar_two_sided(b, c) < POLICY.alpha, np.sign(c - b), KEEP)


# -- checks that the vectorised tests are the library's ---------------------------------------

def verdict_of(decision: ab_stats.ABDecision) -> int:
    if decision.action == "reject":  # significantly worse, or inconclusive with the challenger arm full
        return WORSE if any(design.finding == "worse" for design in decision.designs) else AT_MAX
    return {"promote": BETTER, "keep_testing": KEEP}[decision.action]


def check_against_library(rng: np.random.Generator) -> None:
    """Assert the vectorised verdicts equal the library's (ab_stats.decide, paired_msprt, mcnemar_exact) on states of real streams."""
    stream = split_stream(rng, 0.05, runs=40, days=550)
    vectorised = ((POLICY_TODAY, today_verdicts(stream)), (POLICY, split_sequential_verdicts(stream)))
    checked = 0
    for run in range(40):
        for day in (0, 19, 25, 60, 200, 499, 549):
            n1, s1 = int(stream.challenger_n[run, day]), int(stream.challenger_correct[run, day])
            n2, s2 = int(stream.champion_n[run, day]), int(stream.champion_correct[run, day])
            for policy, verdicts in vectorised:
                decision = ab_stats.decide(ab_stats.ArmStats("champion", "1", n2, s2), ab_stats.ArmStats("challenger", "2", n1, s1), policy)
                assert verdicts[run, day] == verdict_of(decision), (run, day, decision)
                checked += 1
    paired = paired_stream(rng, 0.02, runs=40, days=120)
    verdicts = paired_sequential_verdicts(paired, POLICY.paired_prior_concentration)
    for run in range(40):
        for day in (0, 5, 30, 119):
            b, c = int(paired.champion_only[run, day]), int(paired.challenger_only[run, day])
            test = paired_msprt(b, c, alpha=POLICY.alpha, prior_concentration=POLICY.paired_prior_concentration)
            assert verdicts[run, day] == {"better": BETTER, "worse": WORSE, None: KEEP}[test.direction], (run, day, test)
            mcnemar = mcnemar_exact(b, c)
            assert math.isclose(float(mcnemar_two_sided(np.array(b), np.array(c))), mcnemar.p_two_sided, rel_tol=1e-9)
            checked += 1
    log.info("vectorised tests agree with ab_stats.decide, paired_msprt and mcnemar_exact on %d states", checked)


# -- reporting ---------------------------------------------------------------------------------

def labels_summary(labels: np.ndarray, cap: int | None) -> tuple[str, str]:
    """(median, p10-p90) of labels; a quantile at the cap reads '>cap' (the run was undecided)."""
    def show(value: float) -> str:
        return f">{cap:,}" if cap is not None and value >= cap else f"{value:,.0f}"
    p10, p50, p90 = np.percentile(labels, [10, 50, 90])
    return show(p50), f"{show(p10)}-{show(p90)}"


def share(mask: np.ndarray) -> str:
    return f"{mask.mean():.3f}"


def mc_se(rate: float, runs: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / runs)


def run_cell(name: str, simulate: Callable[[float], Outcome], gap: float) -> Outcome:
    started = time.perf_counter()
    labels, verdict = simulate(gap)
    log.info("%s: %.1f s", name, time.perf_counter() - started)
    return labels, verdict


def tuned_concentration() -> float:
    """The Beta(a, a) whose prior sd of the accuracy difference, DISCORDANCE / sqrt(2a + 1), is tau: the split test's tuning."""
    return ((DISCORDANCE / POLICY.tau) ** 2 - 1) / 2


def paired_sequential(gap: float, runs: int, days: int, prior_concentration: float, stream_seed: int) -> Outcome:
    stream = paired_stream(np.random.default_rng((SEED, int(round(gap * 1000)), stream_seed)), gap, runs, days)
    return first_verdicts(paired_sequential_verdicts(stream, prior_concentration))


def split_sequential(gap: float, runs: int, days: int, stream_seed: int) -> Outcome:
    stream = split_stream(np.random.default_rng((SEED, int(round(gap * 1000)), stream_seed)), gap, runs, days)
    return first_verdicts(split_sequential_verdicts(stream))


def split_today(gap: float, runs: int, days: int, stream_seed: int) -> Outcome:
    stream = split_stream(np.random.default_rng((SEED, int(round(gap * 1000)), stream_seed)), gap, runs, days)
    return first_verdicts(today_verdicts(stream))


def fixed(test: Callable[[np.random.Generator, float, int], tuple[int, np.ndarray]], gap: float, runs: int, stream_seed: int) -> Outcome:
    n, verdict = test(np.random.default_rng((SEED, int(round(gap * 1000)), stream_seed)), gap, runs)
    return np.full(len(verdict), n), verdict


def part_a(runs: int) -> list[str]:
    """Labels to a correct decision within CAP_DAYS, per design and test, for each true gap."""
    cap, a, tuned = CAP_DAYS * LABELS_PER_DAY, POLICY.paired_prior_concentration, tuned_concentration()
    designs: dict[str, Callable[[float], Outcome]] = {
        f"paired, sequential (a={a:g})": lambda gap: paired_sequential(gap, runs, CAP_DAYS, a, 1),
        f"paired, sequential (a={tuned:g})": lambda gap: paired_sequential(gap, runs, CAP_DAYS, tuned, 1),
        f"split {POLICY.challenger_share:.0%}, sequential (tau={POLICY.tau:g})": lambda gap: split_sequential(gap, runs, CAP_DAYS, 2),
        "paired, fixed n, exact McNemar": lambda gap: fixed(paired_fixed_verdicts, gap, runs, 3),
        f"split {POLICY.challenger_share:.0%}, fixed n, z-test": lambda gap: fixed(split_fixed_verdicts, gap, runs, 4),
    }
    rows = []
    for gap in GAPS:
        for design, simulate in designs.items():
            labels, verdict = run_cell(f"gap {gap:.2f}, {design}", simulate, gap)
            fixed_n = "fixed n" in design
            median, spread = labels_summary(labels, None if fixed_n else cap)
            spread = "(one look)" if fixed_n else spread
            beyond = " (beyond the cap)" if fixed_n and labels[0] > cap else ""
            rows.append(f"| {gap * 100:.0f} | {design} | {share(verdict == BETTER)} | {share(verdict == WORSE)} | {share(verdict == KEEP)} "
                        f"| {median}{beyond} | {spread} | {np.median(labels) / LABELS_PER_DAY:,.0f} |")
    return rows


def part_b(runs: int) -> tuple[list[str], list[str]]:
    """Daily looks until the challenger arm is full: false promotions at equal accuracy, labels to promotion when better."""
    days = math.ceil(POLICY.max_samples_per_arm / (LABELS_PER_DAY * POLICY.challenger_share) * 1.15)
    paired_days = round(POLICY.max_samples_per_arm / (LABELS_PER_DAY * POLICY.challenger_share))  # the same calendar for the paired test
    max_pairs_days = POLICY.max_paired_labels // LABELS_PER_DAY  # decide stops a paired test at max_paired_labels pairs
    a = POLICY.paired_prior_concentration
    procedures: dict[str, Callable[[float], Outcome]] = {
        f"today: split {POLICY.challenger_share:.0%}, one-sided z-tests at alpha per direction, min/max per arm": lambda gap: split_today(gap, runs, days, 5),
        f"split {POLICY.challenger_share:.0%}, sequential (tau={POLICY.tau:g})": lambda gap: split_sequential(gap, runs, days, 5),
        f"paired, sequential (a={a:g})": lambda gap: paired_sequential(gap, runs, paired_days, a, 6),
        f"paired, sequential (a={a:g}), stopped at {POLICY.max_paired_labels:,} pairs": lambda gap: paired_sequential(gap, runs, max_pairs_days, a, 6),
    }
    null_rows, power_rows = [], []
    for procedure, simulate in procedures.items():
        _, verdict = run_cell(f"equal models, {procedure}", simulate, 0.0)
        promoted, wrong = float((verdict == BETTER).mean()), float(((verdict == BETTER) | (verdict == WORSE)).mean())
        null_rows.append(f"| {procedure} | {promoted:.4f} ± {mc_se(promoted, runs):.4f} | {wrong:.4f} ± {mc_se(wrong, runs):.4f} |")
        cells = []
        for gap in (0.02, 0.05):
            labels, verdict = run_cell(f"gap {gap:.2f}, {procedure}", simulate, gap)
            promoted_labels = labels[verdict == BETTER]
            median, spread = labels_summary(promoted_labels, None) if len(promoted_labels) else ("-", "-")
            cells.append(f"{share(verdict == BETTER)} | {median} | {spread}")
        power_rows.append(f"| {procedure} | {' | '.join(cells)} |")
    return null_rows, power_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5000, help="simulated A/B tests per cell")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    check_against_library(np.random.default_rng((SEED, 0)))
    rows_a = part_a(args.runs)
    null_rows, power_rows = part_b(args.runs)
    cells = ", ".join(f"{name} {p:.3f}" for name, p in zip(("both right", "champion only", "challenger only", "both wrong"),
                                                          cell_probabilities(0.02), strict=True))
    lines = [
        "## A/B decisions (`python -m benchmarks.ab_decisions`)",
        "",
        f"Simulated, seeded, {args.runs:,} A/B tests per row, {machine_line()}, {time.perf_counter() - started:.0f} s in all. "
        f"Champion accuracy {CHAMPION_ACCURACY:.2f}, challenger {CHAMPION_ACCURACY:.2f} + gap; the two models' correctness differs on "
        f"{DISCORDANCE:.0%} of products (each labelled product is drawn from the paired 2x2 table, e.g. at a 2-point gap: {cells}). "
        f"{LABELS_PER_DAY} labelled products a day over the whole catalogue; every test looks once a day. Paired (shadow scoring): "
        f"every labelled product is a pair. Split: a labelled product saw the challenger with probability {POLICY.challenger_share:.0%}. "
        f"alpha = {POLICY.alpha} (ABSettings): the sequential tests bound the chance of *any* wrong verdict over all looks by alpha; "
        "the fixed-sample tests are two-sided at alpha, one look at the sample size for "
        f"{POWER:.0%} power (split: statsmodels `NormalIndPower`, arcsine effect size; paired: Connor's McNemar approximation). "
        f"Split tests give no verdict before {POLICY.min_samples_per_arm} labels per arm (about "
        f"{POLICY.min_samples_per_arm / (LABELS_PER_DAY * POLICY.challenger_share):.0f} days), as `ab_stats.decide`. Each test runs alone at "
        "alpha here (`decide` halves alpha for each when both designs run). "
        f"a={tuned_concentration():g}: the Beta(a, a) whose prior sd of the accuracy difference is tau at {DISCORDANCE:.0%} discordance.",
        "",
        f"### Labels to a correct decision (cap {CAP_DAYS} days = {CAP_DAYS * LABELS_PER_DAY:,} labels)",
        "",
        "Labels are all labelled products until the verdict (divide by 200 for days); an undecided run counts at the cap ('>cap'). "
        "A fixed-n test reads its one verdict at its sample size, whether or not that fits in the cap; "
        "'undecided' there means not significant (the champion stays).",
        "",
        "| gap (points) | design, test | promoted (correct) | rejected as worse | undecided | median labels | p10-p90 labels | median days |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows_a,
        "",
        "### False promotions under daily looks, equal accuracy",
        "",
        f"Looked at daily until the split challenger arm holds {POLICY.max_samples_per_arm:,} labels (about "
        f"{POLICY.max_samples_per_arm / (LABELS_PER_DAY * POLICY.challenger_share):.0f} days); the paired test runs for the same "
        f"number of days, and in the last row stops where `ab_stats.decide` stops it, at {POLICY.max_paired_labels:,} labelled pairs "
        f"({POLICY.max_paired_labels // LABELS_PER_DAY} days). '±' is the Monte-Carlo standard error.",
        "",
        "| procedure | false promotion rate | any significant verdict |",
        "| --- | ---: | ---: |",
        *null_rows,
        "",
        "Same looks, challenger better by 2 and 5 points: share promoted and labels at promotion (among promoted runs).",
        "",
        "| procedure | +2: promoted | +2: median labels | +2: p10-p90 | +5: promoted | +5: median labels | +5: p10-p90 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *power_rows,
    ]
    write_section("ab_decisions", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
