"""Daily drift check on 100K reference vs 100K current products, against a plain-scipy baseline in the same run.

    python -m benchmarks.drift_check [--rows 100000]

Baseline: scipy KS tests on the two raw text lengths (what a minimal check would do). Measured: the
platform's check (:func:`evaluate_day`: lengths, missing flag, TF-IDF -> SVD components, KS with
multiple-testing control, smoothed KL, confidence, concept) on the default 20K-row sample per side
and on all rows, and the evidently HTML report the daily job also writes. Each in a fresh process.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.measure import measure_in_subprocess
from benchmarks.results import machine_line, write_section
from rakuten_ml.catalogue.generator import CatalogueSpec, generate_frames
from rakuten_ml.labels import CLASS_CODES, class_prior
from rakuten_ml.monitoring.features import DriftFeaturizer
from rakuten_ml.monitoring.rules import DayInputs, evaluate_day
from rakuten_ml.monitoring.sampling import DEFAULT_MAX_ROWS, sample_rows
from rakuten_ml.settings import DriftSettings

log = logging.getLogger("benchmarks.drift_check")
CHECK_DATE = date(2026, 1, 1)


def products(rows: int, seed: int) -> pd.DataFrame:
    x, y = generate_frames(CatalogueSpec(rows=rows, seed=seed))
    return x.assign(prdtypecode=y["prdtypecode"].to_numpy())


def day_inputs(reference: pd.DataFrame, current: pd.DataFrame, seed: int = 0) -> DayInputs:
    """Predictions are drawn, not computed (the benchmark times the check, not the model): right 82% of the time."""
    rng = np.random.default_rng(seed)
    prior = np.array([class_prior()[c] for c in CLASS_CODES])
    truth = current["prdtypecode"].to_numpy()
    codes = np.where(rng.random(len(current)) < 0.82, truth, rng.choice(CLASS_CODES, size=len(current), p=prior))
    labelled = rng.choice(len(current), size=len(current) // 100, replace=False)  # the seed's 1% sample
    return DayInputs(
        reference_products=reference,
        current_products=current,
        reference_class_counts=prior * len(reference),
        window_codes=codes,
        confidences=rng.beta(8, 2, size=len(current)),
        labelled_predicted=codes[labelled],
        labelled_true=truth[labelled],
        baseline_accuracy=0.82,
    )


def baseline(reference: pd.DataFrame, current: pd.DataFrame) -> str:
    """Plain scipy: KS on raw designation and description lengths."""
    drifted = 0
    for column in ("designation", "description"):
        ref = reference[column].fillna("").str.len().to_numpy()
        cur = current[column].fillna("").str.len().to_numpy()
        drifted += int(stats.ks_2samp(ref, cur).pvalue < 0.05)
    return f"{drifted}/2 lengths drifted"


def full_check(reference: pd.DataFrame, current: pd.DataFrame, max_rows: int | None) -> str:
    inputs = day_inputs(sample_rows(reference, max_rows, 42), sample_rows(current, max_rows, 42))
    evaluation = evaluate_day(inputs, DriftSettings(), history={}, check_date=CHECK_DATE)
    statuses = {r.metric: r.status for r in evaluation.rows if r.metric != "ks"}
    return ", ".join(f"{k}={v}" for k, v in statuses.items())


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame) -> str:
    from rakuten_ml.monitoring.evidently_report import data_drift_report

    featurizer = DriftFeaturizer().fit(reference)
    ref, cur = sample_rows(reference, DEFAULT_MAX_ROWS, 42), sample_rows(current, DEFAULT_MAX_ROWS, 42)
    rules = DriftSettings()
    snapshot = data_drift_report(
        featurizer.transform(ref), featurizer.transform(cur), featurizer.feature_names, threshold=rules.ks_p_value, drift_share=rules.feature_share
    )
    return f"{len(snapshot.get_html_str(as_iframe=False)) / 1e6:.1f} MB of HTML"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("generating %d reference and %d current products", args.rows, args.rows)
    reference, current = products(args.rows, seed=1), products(args.rows, seed=2)
    # imported once here so the forked measurements time the work, not the imports
    import evidently.presets  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import sklearn.feature_extraction.text  # noqa: F401
    runs = {
        "baseline: scipy KS on 2 raw lengths": measure_in_subprocess(baseline, reference, current),
        f"drift check, {DEFAULT_MAX_ROWS // 1000}K-row sample per side (default)": measure_in_subprocess(full_check, reference, current, DEFAULT_MAX_ROWS),
        "drift check, all rows": measure_in_subprocess(full_check, reference, current, None),
        f"evidently HTML report ({DEFAULT_MAX_ROWS // 1000}K sample, incl. featurizing)": measure_in_subprocess(evidently_report, reference, current),
    }
    base_seconds = next(iter(runs.values()))[0]
    lines = [
        "## Drift check (`python -m benchmarks.drift_check`)",
        "",
        f"{args.rows:,} reference vs {args.rows:,} current products (no drift), {machine_line()}. Each row in a fresh process; "
        "the ratio is against the baseline of the same run.",
        "",
        "| what | seconds | x baseline | peak RSS MiB | result |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, (seconds, peak_mb, result) in runs.items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / base_seconds:.0f} | {peak_mb:.0f} | {result} |")
        log.info("%s: %.2f s (x%.0f), peak %.0f MiB, result %s", name, seconds, seconds / base_seconds, peak_mb, result)
    write_section("drift_check", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
