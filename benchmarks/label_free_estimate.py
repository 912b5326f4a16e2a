"""Label-free performance estimation (CBPE) against realized accuracy on generated drift scenarios.

    python -m benchmarks.label_free_estimate [--train-rows 12000] [--day-rows 3000] [--days 10]

A champion is trained on a generated catalogue: the platform's TextClassifier (temperature-calibrated)
fused with :func:`fuse_probabilities` with an image stand-in that reads every rendered photo (a logistic
regression on a colour histogram, temperature-calibrated on tune rows; the fusion weight searched on the
same rows as training does). A full vision ensemble would make the run far too long for what is measured
here: whether the estimate follows accuracy when the inputs move. Each scenario then scores a fresh
catalogue every day, drift entering from day 3, and compares :func:`estimate_performance` with the
accuracy on the labels, the drop alarm (estimate more than ``estimate_max_drop`` below the estimate on the
validation rows) and :func:`calibration_check` on a 1% labelled sample over the concept window.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from benchmarks.results import machine_line, write_section
from rakuten_ml.catalogue.generator import CatalogueSpec, DriftSpec, generate_frames, render_image
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.calibration import fit_temperature, softmax
from rakuten_ml.models.fusion import fuse_probabilities, has_usable_text
from rakuten_ml.models.fusion_tuning import search_image_weight
from rakuten_ml.models.text_model import TextClassifier
from rakuten_ml.monitoring.performance_estimate import (
    CalibrationCheck,
    ConfusionSums,
    PerformanceEstimate,
    calibration_check,
    estimate_performance,
)
from rakuten_ml.settings import DriftSettings, Settings, TrainingSettings
from rakuten_ml.training.split import stratified_split

log = logging.getLogger("benchmarks.label_free_estimate")

IMAGE_SIZE = 64  # the histogram needs colours, not detail (below ~48 px the generator's contact shadow can leave the canvas)
COLOUR_LEVELS = 4  # per channel: a 64-bin joint RGB histogram
LABELLED_SHARE = 0.01  # the seed's 1% feedback sample
DRIFT_START_DAY = 3
TEXT_COLUMNS = ["designation", "description"]
# The generator's own image stream (``_Stream.IMAGES``): the photos ``generate_catalogue`` would write.
PHOTO_STREAM = 5


def _histogram(data: bytes) -> np.ndarray:
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int64) * COLOUR_LEVELS // 256
    index = (pixels[..., 0] * COLOUR_LEVELS + pixels[..., 1]) * COLOUR_LEVELS + pixels[..., 2]
    return np.sqrt(np.bincount(index.ravel(), minlength=COLOUR_LEVELS**3) / index.size)


def photo_features(codes: np.ndarray, seed: int, drift: DriftSpec) -> np.ndarray:
    """Render each product's photo of its true class (as the generator does) and histogram its colours."""

    def one(row: int) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PHOTO_STREAM, row)))
        return _histogram(render_image(int(codes[row]), rng, drift, IMAGE_SIZE))

    with ThreadPoolExecutor(max_workers=2) as pool:  # PIL releases the GIL while drawing and encoding
        return np.array(list(pool.map(one, range(len(codes)))))


@dataclass
class ColourHistogramModel:
    """The image stand-in: multinomial logistic regression on colour histograms, temperature-calibrated."""

    temperature: float = 1.0

    def fit(self, features: np.ndarray, y_idx: np.ndarray, tune_features: np.ndarray, tune_y: np.ndarray) -> ColourHistogramModel:
        self.model_ = LogisticRegression(C=10.0, max_iter=400).fit(features, y_idx)
        self.temperature = fit_temperature(self._log_proba(tune_features), tune_y)
        return self

    def _log_proba(self, features: np.ndarray) -> np.ndarray:
        out = np.full((len(features), DEFAULT_MAPPING.n_classes), -1e6)
        out[:, self.model_.classes_] = self.model_.predict_log_proba(features)
        return out

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return softmax(self._log_proba(features), self.temperature)


# The champion's probabilities as batch scoring fuses them today, and with one temperature fitted on the
# fused log-probabilities of the tune rows (argmax unchanged, so realized accuracy is the same for both).
FUSED_TODAY = "fused as scored today"
FUSED_CALIBRATED = "fused + temperature"
VARIANTS = (FUSED_CALIBRATED, FUSED_TODAY)


@dataclass
class Champion:
    text: TextClassifier
    image: ColourHistogramModel
    image_weight: float
    fused_temperature: float = 1.0

    def fused(self, products: pd.DataFrame, photos: np.ndarray) -> np.ndarray:
        p_text, p_image = self.text.predict_proba(products[TEXT_COLUMNS]), self.image.predict_proba(photos)
        has_photo = np.ones(len(products), dtype=bool)
        return fuse_probabilities(p_text, p_image, has_usable_text(products), has_photo, self.image_weight)[0]

    def variants(self, products: pd.DataFrame, photos: np.ndarray) -> dict[str, np.ndarray]:
        fused = self.fused(products, photos)
        return {FUSED_TODAY: fused, FUSED_CALIBRATED: softmax(_log(fused), self.fused_temperature)}


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(proba, 1e-300))


@dataclass(frozen=True)
class Catalogue:
    products: pd.DataFrame  # designation, description, prdtypecode (the labels that arrive)
    photos: np.ndarray

    @property
    def y_idx(self) -> np.ndarray:
        return DEFAULT_MAPPING.encode(self.products["prdtypecode"])


def catalogue(spec: CatalogueSpec) -> Catalogue:
    """Products with the labels that arrive (label noise included) and photos of their true classes."""
    x, y = generate_frames(spec)
    # label noise only touches Y, from its own stream: the same spec without it gives the true classes
    true = generate_frames(replace(spec, drift=replace(spec.drift, label_noise=0.0)))[1] if spec.drift.label_noise else y
    photos = photo_features(true["prdtypecode"].to_numpy(), spec.seed, spec.drift)
    return Catalogue(x.assign(prdtypecode=y["prdtypecode"].to_numpy()), photos)


def train_champion(rows: int, seed: int) -> tuple[Champion, Catalogue]:
    """Fit, tune and validation rows as training splits them; returns the champion and its validation rows."""
    data = catalogue(CatalogueSpec(rows=rows, seed=seed))
    frame = data.products.assign(row=np.arange(rows))
    training = TrainingSettings()
    fit, validation = stratified_split(frame, training.validation_share, seed)
    fit, tune = stratified_split(fit, training.fusion_tune_share, seed)
    text = TextClassifier(random_state=seed).fit(fit[TEXT_COLUMNS], fit["prdtypecode"].to_numpy())
    photos = {name: data.photos[part["row"].to_numpy()] for name, part in (("fit", fit), ("tune", tune), ("validation", validation))}
    y_fit, y_tune = DEFAULT_MAPPING.encode(fit["prdtypecode"]), DEFAULT_MAPPING.encode(tune["prdtypecode"])
    image = ColourHistogramModel().fit(photos["fit"], y_fit, photos["tune"], y_tune)
    p_text, p_image = text.predict_proba(tune[TEXT_COLUMNS]), image.predict_proba(photos["tune"])
    search = search_image_weight(p_text, p_image, has_usable_text(tune), np.ones(len(tune), dtype=bool), y_tune, default=training.image_weight)
    champion = Champion(text, image, search.best_weight)
    champion.fused_temperature = fit_temperature(_log(champion.fused(tune, photos["tune"])), y_tune)
    log.info("text T=%.3f, image T=%.3f, image weight %.1f (tune F1 %s), fused T=%.3f", text.temperature_, image.temperature,
             search.best_weight, {w: round(s, 3) for w, s in search.scores.items()}, champion.fused_temperature)
    return champion, Catalogue(validation.drop(columns="row"), photos["validation"])


@dataclass(frozen=True)
class Scenario:
    name: str
    drift: Callable[[float], DriftSpec]  # strength 0..1 -> the day's drift
    shape: Literal["ramp", "step"]  # "ramp": strength grows from day 3 to 1 on the last day; "step": full strength from day 3

    def strength(self, day: int, days: int) -> float:
        if day < DRIFT_START_DAY:
            return 0.0
        if self.shape == "step":
            return 1.0
        return (day - DRIFT_START_DAY + 1) / (days - DRIFT_START_DAY + 1)


SCENARIOS = (
    Scenario("no drift", lambda s: DriftSpec(), "ramp"),
    Scenario("vocabulary shift (ramp to 0.8)", lambda s: DriftSpec(vocabulary_shift=0.8 * s), "ramp"),
    Scenario("class-prior shift (step, 0.8)", lambda s: DriftSpec(class_prior_shift=0.8 * s), "step"),
    Scenario("image brightness shift (ramp to -0.8)", lambda s: DriftSpec(brightness_shift=-0.8 * s), "ramp"),
    Scenario("label noise / concept shift (ramp to 0.3)", lambda s: DriftSpec(label_noise=0.3 * s), "ramp"),
)


@dataclass(frozen=True)
class Scored:
    """One scored set: estimates per probability variant, realized metrics on all its labels, its labelled sample."""

    drift: DriftSpec
    estimates: dict[str, PerformanceEstimate]
    accuracy: float
    f1_weighted: float
    labelled_confidence: dict[str, np.ndarray]
    labelled_correct: np.ndarray


def score(champion: Champion, data: Catalogue, drift: DriftSpec, seed: int) -> Scored:
    variants = champion.variants(data.products, data.photos)
    y = data.y_idx
    predicted = variants[FUSED_TODAY].argmax(axis=1)
    labelled = np.random.default_rng(seed).random(len(y)) < LABELLED_SHARE
    return Scored(
        drift,
        {name: estimate_performance(ConfusionSums.from_probabilities(p)) for name, p in variants.items()},
        float(accuracy_score(y, predicted)),
        float(f1_score(y, predicted, average="weighted", zero_division=0)),
        {name: p.max(axis=1)[labelled] for name, p in variants.items()},
        (predicted == y)[labelled],
    )


def window_check(days: list[Scored], variant: str, rules: DriftSettings) -> CalibrationCheck:
    """:func:`calibration_check` on the labelled products of the last ``concept_window_days`` days."""
    window = days[-rules.concept_window_days :]
    return calibration_check(
        np.concatenate([d.labelled_confidence[variant] for d in window]), np.concatenate([d.labelled_correct for d in window]),
        max_gap=rules.calibration_max_gap, significance=rules.calibration_p_value, min_labels=rules.calibration_min_labels,
    )


@dataclass(frozen=True)
class ScenarioRun:
    scenario: Scenario
    days: list[Scored]
    checks: dict[str, list[CalibrationCheck]]  # per variant, one per day


def run_scenario(index: int, scenario: Scenario, champion: Champion, args: argparse.Namespace, rules: DriftSettings) -> ScenarioRun:
    days: list[Scored] = []
    checks: dict[str, list[CalibrationCheck]] = {v: [] for v in VARIANTS}
    for day in range(1, args.days + 1):
        spec = CatalogueSpec(rows=args.day_rows, seed=1000 + 100 * index + day, drift=scenario.drift(scenario.strength(day, args.days)))
        days.append(score(champion, catalogue(spec), spec.drift, spec.seed))
        for variant in VARIANTS:
            checks[variant].append(window_check(days, variant, rules))
        log.info("%s day %d: estimated %.3f, realized %.3f; %s", scenario.name, day, days[-1].estimates[FUSED_CALIBRATED].accuracy,
                 days[-1].accuracy, checks[FUSED_CALIBRATED][-1].reason)
    return ScenarioRun(scenario, days, checks)


def _first(days: list[int]) -> str:
    return str(days[0]) if days else "never"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value >= 0.01 else f"{value:.0e}"


def _acc(estimate: PerformanceEstimate) -> float:
    return np.nan if estimate.accuracy is None else estimate.accuracy


@dataclass(frozen=True)
class Summary:
    """One scenario under one probability variant, against the alarm floors."""

    mae_accuracy: float
    mae_f1: float
    dropped: list[int]  # days whose realized accuracy fell more than max_drop below validation
    alarmed: list[int]  # days whose estimate fell more than max_drop below its validation value
    check: CalibrationCheck  # on the last day

    @property
    def caught(self) -> int:
        return len(set(self.dropped) & set(self.alarmed))

    @property
    def early(self) -> int:
        return len(set(self.alarmed) - set(self.dropped))


def summarise(run: ScenarioRun, variant: str, estimate_floor: float, realized_floor: float) -> Summary:
    est = np.array([_acc(d.estimates[variant]) for d in run.days])
    est_f1 = np.array([d.estimates[variant].f1_weighted for d in run.days], dtype=float)
    return Summary(
        float(np.abs(est - [d.accuracy for d in run.days]).mean()),
        float(np.abs(est_f1 - [d.f1_weighted for d in run.days]).mean()),
        [i + 1 for i, d in enumerate(run.days) if d.accuracy < realized_floor],
        [i + 1 for i, e in enumerate(est) if e < estimate_floor],
        run.checks[variant][-1],
    )


def _verdict(check: CalibrationCheck) -> str:
    word = "trusted" if check.trusted else "**not trusted**"
    return f"{word} (accuracy - confidence {_fmt(check.gap, 3)} on {check.n} labels, p={_p(check.p_value)})"


def _summary_table(runs: list[ScenarioRun], variant: str, estimate_floor: float, realized_floor: float) -> list[str]:
    """One row per scenario; realized columns only for the first variant (the predictions, hence they, are shared)."""
    realized = variant == VARIANTS[0]
    lines = [
        "| scenario | estimated acc. day 1 -> last | " + ("realized acc. day 1 -> last | " if realized else "")
        + "MAE acc. | MAE weighted F1 | " + ("real drop from day | " if realized else "")
        + "alarm from day | real-drop days alarmed | alarms before a real drop | calibration check, last day |",
        "| --- | --- | " + ("--- | " if realized else "") + "---: | ---: | " + ("--- | " if realized else "") + "--- | --- | ---: | --- |",
    ]
    for run in runs:
        s = summarise(run, variant, estimate_floor, realized_floor)
        first, last = run.days[0], run.days[-1]
        cells = [run.scenario.name, f"{_fmt(first.estimates[variant].accuracy)} -> {_fmt(last.estimates[variant].accuracy)}"]
        cells += [f"{first.accuracy:.3f} -> {last.accuracy:.3f}"] if realized else []
        cells += [f"{s.mae_accuracy:.3f}", f"{s.mae_f1:.3f}"] + ([_first(s.dropped)] if realized else [])
        cells += [_first(s.alarmed), f"{s.caught} / {len(s.dropped)}", str(s.early), _verdict(s.check)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _per_day_table(runs: list[ScenarioRun], variant: str) -> list[str]:
    lines = ["| day | " + " | ".join(run.scenario.name for run in runs) + " |", "| ---: | " + " | ".join("---" for _ in runs) + " |"]
    for i in range(len(runs[0].days)):
        cells = [f"{_fmt(run.days[i].estimates[variant].accuracy)} / {run.days[i].accuracy:.3f}" for run in runs]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return lines


def _blind_spot_table(run: ScenarioRun, variant: str) -> list[str]:
    lines = ["| day | label noise | estimated acc. | realized acc. | labels in window | accuracy - confidence on them | p | check |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for i, (day, check) in enumerate(zip(run.days, run.checks[variant], strict=True), start=1):
        lines.append(
            f"| {i} | {day.drift.label_noise:.3f} | {_fmt(day.estimates[variant].accuracy)} | {day.accuracy:.3f} | {check.n} | "
            f"{_fmt(check.gap)} | {_p(check.p_value)} | {'trusted' if check.trusted else 'not trusted'} |"
        )
    return lines


def report(runs: list[ScenarioRun], champion: Champion, validation: Scored, rules: DriftSettings, args: argparse.Namespace,
           seconds: float) -> str:
    max_drop = rules.estimate_max_drop
    realized_floor = validation.accuracy - max_drop
    floors = {v: _acc(validation.estimates[v]) - max_drop for v in VARIANTS}
    clean = [(run, i) for run in runs for i, d in enumerate(run.days) if d.drift == DriftSpec()]
    noise = next(run for run in runs if run.scenario.name.startswith("label noise"))
    lines = [
        "## Label-free performance estimate (`python -m benchmarks.label_free_estimate`)",
        "",
        f"{machine_line()}; {seconds:.0f} s in all, seeded. Champion trained on {args.train_rows:,} generated products: the platform's "
        "TextClassifier (temperature-calibrated) fused by `fuse_probabilities` with an image stand-in that reads every rendered "
        f"photo ({IMAGE_SIZE} px, logistic regression on a {COLOUR_LEVELS ** 3}-bin colour histogram, temperature-calibrated on the "
        "tune rows; a vision ensemble would take most of the run), image weight searched on the tune rows as training does "
        f"({champion.image_weight:.1f}). Two sets of probabilities of the same predictions: **{FUSED_TODAY}** (late fusion "
        f"as `FusedClassifier` does it) and **{FUSED_CALIBRATED}** (softmax(log P / T), T = {champion.fused_temperature:.3f} "
        f"fitted on the tune rows after fusion). Each scenario scores {args.days} days of {args.day_rows:,} fresh products, drift "
        f"entering on day {DRIFT_START_DAY}; realized = accuracy / weighted F1 on the labels of all the day's products.",
        "",
        f"Validation rows at training: realized accuracy {validation.accuracy:.3f} (weighted F1 {validation.f1_weighted:.3f}); "
        + "; ".join(f"estimated {_fmt(validation.estimates[v].accuracy)} ({_fmt(validation.estimates[v].f1_weighted)}) {v}" for v in VARIANTS)
        + f". Alarm: estimated accuracy more than `estimate_max_drop` = {max_drop} below the estimate on the validation rows; "
        f"a real drop: realized accuracy more than {max_drop} below realized validation accuracy (below {realized_floor:.3f}). "
        f"Calibration check: {LABELLED_SHARE:.0%} of products labelled, the last {rules.concept_window_days} days, "
        f"`calibration_max_gap` = {rules.calibration_max_gap}, `calibration_p_value` = {rules.calibration_p_value}, "
        f"`calibration_min_labels` = {rules.calibration_min_labels}.",
        "",
        f"**{FUSED_CALIBRATED}:**",
        "",
        *_summary_table(runs, FUSED_CALIBRATED, floors[FUSED_CALIBRATED], realized_floor),
        "",
        f"**{FUSED_TODAY}** (same predictions, so the same realized accuracy and real-drop days):",
        "",
        *_summary_table(runs, FUSED_TODAY, floors[FUSED_TODAY], realized_floor),
        "",
        "Late fusion does not keep calibration: the fused top probability is the weighted mean of a confident text model and a "
        "hesitant image model, so a right answer is given less confidence than its accuracy. The drop alarm compares the estimate "
        "with its own validation value, where a constant bias cancels; the level does not (the estimate stored next to realized "
        "accuracy, the calibration check).",
        "",
        f"Days without drift (the no-drift scenario and every scenario's first {DRIFT_START_DAY - 1} days): {len(clean)}.",
    ]
    for v in VARIANTS:
        alarms = sum(_acc(run.days[i].estimates[v]) < floors[v] for run, i in clean)
        checked = [run.checks[v][i] for run, i in clean if run.checks[v][i].n >= rules.calibration_min_labels]
        lines.append(f"{v}: **{alarms} false alarms**; the calibration check distrusted {sum(not c.trusted for c in checked)} of the "
                     f"{len(checked)} of them with at least {rules.calibration_min_labels} labels in the window.")
    lines += [
        "", f"Estimated ({FUSED_CALIBRATED}) / realized accuracy per day:", "", *_per_day_table(runs, FUSED_CALIBRATED), "",
        f"The blind spot, {noise.scenario.name}: products and confidences do not change, only the labels do; the calibration "
        f"check ({FUSED_CALIBRATED}) on the labelled sample of the window is what notices.", "",
        *_blind_spot_table(noise, FUSED_CALIBRATED),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train-rows", type=int, default=12_000)
    parser.add_argument("--day-rows", type=int, default=3_000)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    seed = Settings().random_seed
    rules = DriftSettings()
    champion, validation_rows = train_champion(args.train_rows, seed)
    validation = score(champion, validation_rows, DriftSpec(), seed)
    log.info("validation: realized %.3f, estimated %s", validation.accuracy, {v: e.accuracy for v, e in validation.estimates.items()})
    runs = [run_scenario(i, s, champion, args, rules) for i, s in enumerate(SCENARIOS)]
    markdown = report(runs, champion, validation, rules, args, time.perf_counter() - started)
    write_section("label_free_estimate", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
