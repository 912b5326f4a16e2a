"""Text model training on an 85K-row catalogue: the platform's TextClassifier vs a plain sklearn
pipeline of the seed's configuration, time and peak memory, in the same run.

    python -m benchmarks.text_training [--rows 85000]
"""

from __future__ import annotations

import argparse
import logging

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from benchmarks.measure import measure_in_subprocess
from benchmarks.results import machine_line, write_section
from rakuten_ml.catalogue.generator import CatalogueSpec, generate_frames
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.calibration import expected_calibration_error, log_loss_at, softmax
from rakuten_ml.models.text_cleaning import build_corpus
from rakuten_ml.models.text_model import TextClassifier
from rakuten_ml.settings import Settings, TrainingSettings
from rakuten_ml.training.split import stratified_split


def load(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    x, y = generate_frames(CatalogueSpec(rows=rows, seed=42))
    products = x.assign(prdtypecode=y["prdtypecode"].to_numpy())
    products["description"] = products["description"].fillna("")
    training = TrainingSettings()
    return stratified_split(products, training.validation_share, Settings().random_seed)


def fit_seed_pipeline(train: pd.DataFrame, evaluation: pd.DataFrame) -> float:
    """Exactly the seed report's code: FeatureUnion(word, char_wb) + LinearSVC(C=0.5), no calibration."""
    pipeline = Pipeline([
        ("features", FeatureUnion([
            ("word", TfidfVectorizer(ngram_range=(1, 2), max_features=120000, min_df=2, max_df=0.9, sublinear_tf=True, strip_accents="unicode")),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), max_features=160000, sublinear_tf=True)),
        ])),
        ("classifier", LinearSVC(C=0.5)),
    ])
    pipeline.fit(build_corpus(train["designation"], train["description"]), train["prdtypecode"])
    predicted = pipeline.predict(build_corpus(evaluation["designation"], evaluation["description"]))
    return float(f1_score(evaluation["prdtypecode"], predicted, average="weighted"))


def fit_platform_model(train: pd.DataFrame, evaluation: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """The registered text model: same features and SVC + temperature calibration + pair stages.

    Also returns log-loss and ECE on the evaluation rows with the fitted temperature vs T = 1
    (a plain softmax over the margins): the effect of the calibration choice.
    """
    model = TextClassifier().fit(train[["designation", "description"]], train["prdtypecode"].to_numpy())
    frame = evaluation[["designation", "description"]]
    predicted = model.predict(frame)
    y_idx = DEFAULT_MAPPING.encode(evaluation["prdtypecode"])
    margins = model.decision_function(frame)
    calibration = {"temperature": float(model.temperature_)}
    for name, temperature in (("T=1", 1.0), ("fitted T", model.temperature_)):
        calibration[f"log_loss {name}"] = log_loss_at(margins, y_idx, temperature)
        calibration[f"ECE {name}"] = expected_calibration_error(softmax(margins, temperature), y_idx)
    return float(f1_score(evaluation["prdtypecode"], predicted, average="weighted")), calibration


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=85_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    train, evaluation = load(args.rows)
    base_s, base_mb, base_f1 = measure_in_subprocess(fit_seed_pipeline, train, evaluation)
    ours_s, ours_mb, (ours_f1, calibration) = measure_in_subprocess(fit_platform_model, train, evaluation)
    table = (
        f"## Text training ({args.rows:,} generated rows, {len(train):,} train / {len(evaluation):,} eval)\n\n"
        f"{machine_line()}\n\n"
        "| pipeline | fit seconds | peak RSS MiB | weighted F1 | time ratio vs seed |\n| --- | --- | --- | --- | --- |\n"
        f"| seed sklearn pipeline (baseline) | {base_s:.1f} | {base_mb:.0f} | {base_f1:.4f} | 1.00 |\n"
        f"| platform TextClassifier (calibrated + pair stages) | {ours_s:.1f} | {ours_mb:.0f} | {ours_f1:.4f} | {ours_s / base_s:.2f} |\n"
        "\nPeak RSS is the fitting process's own; the platform model's second SVC fit runs in a worker process "
        "(n_jobs=2) not counted here.\n"
        "\nCalibration of the margins on the evaluation rows (global model, before pair stages): "
        f"fitted temperature {calibration['temperature']:.3f}.\n\n"
        "| probabilities | log-loss | ECE |\n| --- | --- | --- |\n"
        f"| softmax of margins, T = 1 | {calibration['log_loss T=1']:.4f} | {calibration['ECE T=1']:.4f} |\n"
        f"| softmax of margins, fitted T (registered) | {calibration['log_loss fitted T']:.4f} | {calibration['ECE fitted T']:.4f} |\n"
    )
    print(table)
    write_section("text_training", table)


if __name__ == "__main__":
    main()
