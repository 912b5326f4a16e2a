"""The label-free performance estimate (CBPE) judged by the platform's own rule on generated drift scenarios.

    python -m benchmarks.label_free_estimate [--train-rows 12000] [--day-rows 3000] [--days 10]

A champion is trained on a generated catalogue: the platform's TextClassifier (temperature-calibrated)
fused as :class:`FusedClassifier` fuses, with an image stand-in that reads every rendered photo (a logistic
regression on a colour histogram, temperature-calibrated on tune rows); the fusion weight and the fused rows'
temperature are fitted on the same rows as training fits them. A full vision ensemble would make the run far
too long for what is measured here: whether the estimate, and the rule on it, follow accuracy when the
inputs move. Each scenario scores a fresh catalogue every night, drift entering from day 3, and each night
is judged by :func:`evaluate_day` as the drift job judges it: the night's :class:`ConfusionSums` against the
first night's, the labelled sample (1% of products, labels arriving at once) of the concept window, the
validation accuracy as the version's baseline, the earlier nights' verdicts for the consecutive-days rule.
Realized accuracy and weighted F1 come from the labels of all the night's products.
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
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
from rakuten_ml.models.fusion import MODALITY_FUSED, FusedClassifier, fuse_probabilities, has_usable_text
from rakuten_ml.models.fusion_tuning import search_image_weight
from rakuten_ml.models.text_model import TextClassifier
from rakuten_ml.monitoring import (
    DRIFTED_STATUSES,
    METRIC_CONCEPT,
    METRIC_ESTIMATED,
    STATUS_ALERT,
    STATUS_DRIFT,
    STATUS_UNTRUSTED,
)
from rakuten_ml.monitoring.performance_estimate import ConfusionSums, PerformanceEstimate, estimate_performance
from rakuten_ml.monitoring.rules import CheckRow, DayInputs, evaluate_day
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
FIRST_NIGHT = date(2026, 1, 1)  # any date: the consecutive-days rule only counts calendar days in a row
# The rules this benchmark does not exercise read these: too few rows, so their rows are insufficient_data.
NO_PRODUCTS = pd.DataFrame(columns=TEXT_COLUMNS)
NOTHING = np.array([])


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


# The same predictions with two sets of probabilities: what this release trains (fused rows recalibrated by
# ``fused_temperature``) and what versions trained before it score (``fused_temperature`` = 1.0).
FUSED_CALIBRATED = "fused + temperature (this release)"
FUSED_TODAY = "fused, no temperature (earlier versions)"
VARIANTS = (FUSED_CALIBRATED, FUSED_TODAY)


@dataclass
class Champion:
    text: TextClassifier
    image: ColourHistogramModel
    fusion: FusedClassifier  # its weight and fused temperature: :meth:`FusedClassifier.fuse` is what scoring calls

    def variants(self, products: pd.DataFrame, photos: np.ndarray) -> dict[str, np.ndarray]:
        p_text, p_image = self.text.predict_proba(products[TEXT_COLUMNS]), self.image.predict_proba(photos)
        has_photo = np.ones(len(products), dtype=bool)
        earlier = replace(self.fusion, fused_temperature=1.0)
        return {name: model.fuse(p_text, p_image, has_usable_text(products), has_photo)[0]
                for name, model in ((FUSED_CALIBRATED, self.fusion), (FUSED_TODAY, earlier))}


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
    has_text, has_photo = has_usable_text(tune), np.ones(len(tune), dtype=bool)
    search = search_image_weight(p_text, p_image, has_text, has_photo, y_tune, default=training.image_weight)
    # as training's fusion tuning: one temperature for the fused tune rows, at the chosen weight
    proba, modality = fuse_probabilities(p_text, p_image, has_text, has_photo, search.best_weight)
    fused = modality == MODALITY_FUSED
    temperature = fit_temperature(np.log(np.clip(proba[fused], 1e-12, None)), np.asarray(y_tune)[fused])
    fusion = FusedClassifier(image_weight=search.best_weight, confidence_threshold=training.confidence_threshold,
                             fused_temperature=temperature)
    log.info("text T=%.3f, image T=%.3f, image weight %.1f (tune F1 %s), fused T=%.3f", text.temperature_, image.temperature,
             search.best_weight, {w: round(s, 3) for w, s in search.scores.items()}, temperature)
    return Champion(text, image, fusion), Catalogue(validation.drop(columns="row"), photos["validation"])


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
    """One scored night: its confusion sums per probability variant, realized metrics on all its labels, its labelled sample."""

    drift: DriftSpec
    sums: dict[str, ConfusionSums]
    accuracy: float
    f1_weighted: float
    labelled_predicted: np.ndarray  # class indices
    labelled_true: np.ndarray
    labelled_confidence: dict[str, np.ndarray]

    def estimate(self, variant: str) -> PerformanceEstimate:
        return estimate_performance(self.sums[variant])


def score(champion: Champion, data: Catalogue, drift: DriftSpec, seed: int) -> Scored:
    variants = champion.variants(data.products, data.photos)
    y = data.y_idx
    predicted = variants[FUSED_TODAY].argmax(axis=1)  # the temperature leaves the argmax as it is
    labelled = np.random.default_rng(seed).random(len(y)) < LABELLED_SHARE
    return Scored(
        drift,
        {name: ConfusionSums.from_probabilities(p) for name, p in variants.items()},
        float(accuracy_score(y, predicted)),
        float(f1_score(y, predicted, average="weighted", zero_division=0)),
        predicted[labelled],
        y[labelled],
        {name: p.max(axis=1)[labelled] for name, p in variants.items()},
    )


@dataclass(frozen=True)
class Verdict:
    """The drift job's rows for one night: the estimate's (after the consecutive-days rule) and concept drift's."""

    estimate: CheckRow
    concept: CheckRow

    @property
    def status(self) -> str:
        return self.estimate.status

    @property
    def corrected(self) -> float:
        return float(self.estimate.details["corrected_accuracy"])


def judge(nights: list[Scored], variant: str, baseline_accuracy: float, rules: DriftSettings,
          history: dict[date, bool]) -> Verdict:
    """:func:`evaluate_day` on the last night: its sums, the first night's as reference, the concept window's labels."""
    window = nights[-rules.concept_window_days :]
    inputs = DayInputs(
        reference_products=NO_PRODUCTS, current_products=NO_PRODUCTS, reference_class_counts=np.zeros(DEFAULT_MAPPING.n_classes),
        window_codes=NOTHING, confidences=NOTHING,
        labelled_predicted=np.concatenate([n.labelled_predicted for n in window]),
        labelled_true=np.concatenate([n.labelled_true for n in window]),
        labelled_confidence=np.concatenate([n.labelled_confidence[variant] for n in window]),
        baseline_accuracy=baseline_accuracy,
        estimate_sums=nights[-1].sums[variant], reference_sums=nights[0].sums[variant],
    )
    check_date = FIRST_NIGHT + timedelta(days=len(nights) - 1)
    rows = {row.metric: row for row in evaluate_day(inputs, rules, history={}, check_date=check_date, estimate_history=history).rows}
    # what ``drift_history`` reads back from the stored row tomorrow
    history[check_date] = rows[METRIC_ESTIMATED].status in DRIFTED_STATUSES
    return Verdict(rows[METRIC_ESTIMATED], rows[METRIC_CONCEPT])


@dataclass(frozen=True)
class ScenarioRun:
    scenario: Scenario
    nights: list[Scored]
    verdicts: dict[str, list[Verdict]]  # per variant, one per night


def run_scenario(index: int, scenario: Scenario, champion: Champion, args: argparse.Namespace, baseline_accuracy: float,
                 rules: DriftSettings) -> ScenarioRun:
    nights: list[Scored] = []
    verdicts: dict[str, list[Verdict]] = {v: [] for v in VARIANTS}
    histories: dict[str, dict[date, bool]] = {v: {} for v in VARIANTS}
    for day in range(1, args.days + 1):
        spec = CatalogueSpec(rows=args.day_rows, seed=1000 + 100 * index + day, drift=scenario.drift(scenario.strength(day, args.days)))
        nights.append(score(champion, catalogue(spec), spec.drift, spec.seed))
        for variant in VARIANTS:
            verdicts[variant].append(judge(nights, variant, baseline_accuracy, rules, histories[variant]))
        headline = verdicts[FUSED_CALIBRATED][-1]
        log.info("%s day %d: estimated %.3f (corrected %.3f), realized %.3f: %s; %s", scenario.name, day, headline.estimate.statistic,
                 headline.corrected, nights[-1].accuracy, headline.status, headline.estimate.details["calibration"]["reason"])
    return ScenarioRun(scenario, nights, verdicts)


def _days(flags: list[bool]) -> list[int]:
    return [i + 1 for i, flag in enumerate(flags) if flag]


def _first(days: list[int]) -> str:
    return str(days[0]) if days else "never"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value >= 0.01 else f"{value:.0e}"


@dataclass(frozen=True)
class Summary:
    """One scenario under one probability variant, as the rule judged it."""

    mae_accuracy: float
    mae_corrected: float  # the estimate shifted by the version's known bias (``details.corrected_accuracy``)
    mae_f1: float
    dropped: list[int]  # nights whose realized accuracy fell more than max_drop below the validation accuracy
    drifted: list[int]  # status drift or alert
    alerted: list[int]
    untrusted: list[int]
    concept_alerted: list[int]

    @property
    def caught(self) -> int:
        return len(set(self.dropped) & set(self.alerted))

    @property
    def unfounded(self) -> int:
        return len(set(self.alerted) - set(self.dropped))


def summarise(run: ScenarioRun, variant: str, realized_floor: float) -> Summary:
    verdicts = run.verdicts[variant]
    realized = np.array([n.accuracy for n in run.nights])
    estimated = np.array([v.estimate.statistic for v in verdicts], dtype=float)
    f1 = np.array([v.estimate.details["estimated_f1_weighted"] for v in verdicts], dtype=float)
    status = [v.status for v in verdicts]
    return Summary(
        float(np.abs(estimated - realized).mean()),
        float(np.abs(np.array([v.corrected for v in verdicts]) - realized).mean()),
        float(np.abs(f1 - [n.f1_weighted for n in run.nights]).mean()),
        _days(list(realized < realized_floor)),
        _days([s in DRIFTED_STATUSES for s in status]),
        _days([s == STATUS_ALERT for s in status]),
        _days([s == STATUS_UNTRUSTED for s in status]),
        _days([v.concept.status == STATUS_ALERT for v in verdicts]),
    )


def _summary_table(runs: list[ScenarioRun], variant: str, realized_floor: float) -> list[str]:
    """One row per scenario; realized columns only for the first variant (the predictions, hence they, are shared)."""
    realized = variant == VARIANTS[0]
    head = ["scenario", "estimated acc. day 1 -> last"] + (["realized acc. day 1 -> last"] if realized else [])
    head += ["estimated / realized weighted F1, last day", "MAE acc. (raw / bias-corrected)", "MAE weighted F1"]
    head += (["real drop from day"] if realized else []) + ["first drift day", "first alert", "real-drop days alerted",
                                                            "alerts without a real drop", "days drift / alert / untrusted"]
    head += ["concept_drift alert from day"] if realized else []
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for run in runs:
        s = summarise(run, variant, realized_floor)
        first, last = run.verdicts[variant][0].estimate, run.verdicts[variant][-1].estimate
        cells = [run.scenario.name, f"{_fmt(first.statistic)} -> {_fmt(last.statistic)}"]
        cells += [f"{run.nights[0].accuracy:.3f} -> {run.nights[-1].accuracy:.3f}"] if realized else []
        cells += [f"{_fmt(last.details['estimated_f1_weighted'])} / {run.nights[-1].f1_weighted:.3f}",
                  f"{s.mae_accuracy:.3f} / {s.mae_corrected:.3f}", f"{s.mae_f1:.3f}"]
        cells += [_first(s.dropped)] if realized else []
        cells += [_first(s.drifted), _first(s.alerted), f"{s.caught} / {len(s.dropped)}", str(s.unfounded),
                  f"{len(s.drifted) - len(s.alerted)} / {len(s.alerted)} / {len(s.untrusted)}"]
        cells += [_first(s.concept_alerted)] if realized else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _per_day_table(runs: list[ScenarioRun], variant: str) -> list[str]:
    lines = ["| day | " + " | ".join(run.scenario.name for run in runs) + " |", "| ---: | " + " | ".join("---" for _ in runs) + " |"]
    for i in range(len(runs[0].nights)):
        cells = [f"{_fmt(run.verdicts[variant][i].estimate.statistic)} / {run.nights[i].accuracy:.3f} {run.verdicts[variant][i].status}"
                 for run in runs]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return lines


def _blind_spot_table(run: ScenarioRun, variant: str) -> list[str]:
    lines = ["| day | label noise | estimated acc. | bias-corrected | realized acc. | labels in window | "
             "accuracy - corrected confidence on them | p | estimated_performance | concept_drift |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for i, (night, verdict) in enumerate(zip(run.nights, run.verdicts[variant], strict=True), start=1):
        calibration = verdict.estimate.details["calibration"]
        checked = "" if calibration["checked"] else " (unverified)"
        lines.append(
            f"| {i} | {night.drift.label_noise:.3f} | {_fmt(verdict.estimate.statistic)} | {_fmt(verdict.corrected)} | "
            f"{night.accuracy:.3f} | {verdict.estimate.details['n_labels']} | {_fmt(calibration['gap'])} | {_p(calibration['p_value'])} | "
            f"{verdict.status}{checked} | {verdict.concept.status} |"
        )
    return lines


def _calm_days(runs: list[ScenarioRun], variant: str, rules: DriftSettings) -> str:
    """What the rule said on the nights without drift (the no-drift scenario and every scenario's first nights)."""
    calm = [run.verdicts[variant][i] for run in runs for i, n in enumerate(run.nights) if n.drift == DriftSpec()]
    count = {s: sum(v.status == s for v in calm) for s in (STATUS_DRIFT, STATUS_ALERT, STATUS_UNTRUSTED)}
    checked = sum(v.estimate.details["calibration"]["checked"] for v in calm)
    return (f"{variant}: **{count[STATUS_ALERT]} false alerts**, {count[STATUS_DRIFT]} drifted days, {count[STATUS_UNTRUSTED]} untrusted "
            f"of {len(calm)} calm nights ({checked} of them with at least {rules.calibration_min_labels} labels in the window, "
            "the others judged unverified).")


def report(runs: list[ScenarioRun], champion: Champion, validation: Scored, rules: DriftSettings, args: argparse.Namespace,
           seconds: float) -> str:
    max_drop = rules.estimate_max_drop
    realized_floor = validation.accuracy - max_drop
    noise = next(run for run in runs if run.scenario.name.startswith("label noise"))
    lines = [
        "## Label-free performance estimate (`python -m benchmarks.label_free_estimate`)",
        "",
        f"{machine_line()}; {seconds:.0f} s in all, seeded. Champion trained on {args.train_rows:,} generated products: the platform's "
        "TextClassifier (temperature-calibrated) fused by `FusedClassifier.fuse` with an image stand-in that reads every rendered "
        f"photo ({IMAGE_SIZE} px, logistic regression on a {COLOUR_LEVELS ** 3}-bin colour histogram, temperature-calibrated on the "
        "tune rows; a vision ensemble would take most of the run); image weight searched and the fused rows' temperature fitted on "
        f"the tune rows as training does (weight {champion.fusion.image_weight:.1f}, `fused_temperature` "
        f"{champion.fusion.fused_temperature:.3f}). Two sets of probabilities of the same predictions: **{FUSED_CALIBRATED}** and "
        f"**{FUSED_TODAY}** (`fused_temperature` = 1.0). Each scenario scores {args.days} nights of {args.day_rows:,} fresh products, "
        f"drift entering on day {DRIFT_START_DAY}; realized = accuracy / weighted F1 on the labels of all the night's products.",
        "",
        "Each night is judged by the drift job's `evaluate_day` (`estimated_performance` and `concept_drift` rows): the night's "
        f"confusion sums against night 1's; `baseline_accuracy` = realized accuracy on the validation rows, {validation.accuracy:.3f} "
        f"(weighted F1 {validation.f1_weighted:.3f}; estimated there "
        + "; ".join(f"{_fmt(validation.estimate(v).accuracy)} {v}" for v in VARIANTS)
        + f"); the calibration check on the {LABELLED_SHARE:.0%} labelled sample of the last {rules.concept_window_days} nights, "
        "confidences shifted by the version's bias (baseline accuracy - night 1's estimate), labels arriving the same night "
        "(in production they lag, so the check starts later). Drifted night: estimate more than `estimate_max_drop` = "
        f"{max_drop} below night 1's; an alert once {rules.consecutive_days} nights in a row drifted (`consecutive_days`); "
        f"`calibration_max_gap` = {rules.calibration_max_gap}, `calibration_p_value` = {rules.calibration_p_value}, "
        f"`calibration_min_labels` = {rules.calibration_min_labels}. A real drop: realized accuracy more than {max_drop} below "
        f"the baseline (below {realized_floor:.3f}).",
        "",
        f"**{FUSED_CALIBRATED}:**",
        "",
        *_summary_table(runs, FUSED_CALIBRATED, realized_floor),
        "",
        f"**{FUSED_TODAY}** (same predictions, so the same realized accuracy, real-drop days and concept_drift rows):",
        "",
        *_summary_table(runs, FUSED_TODAY, realized_floor),
        "",
        "MAE raw: the stored estimate against realized accuracy; bias-corrected: `details.corrected_accuracy` (the estimate plus "
        "the version's bias). The drop rule compares the estimate with night 1's, where a constant bias cancels.",
        "",
        "Calm nights (no drift: the no-drift scenario and every scenario's first "
        f"{DRIFT_START_DAY - 1} nights):",
        "",
        *(f"- {_calm_days(runs, v, rules)}" for v in VARIANTS),
        "", f"Estimated ({FUSED_CALIBRATED}) / realized accuracy and the rule's status per night:", "",
        *_per_day_table(runs, FUSED_CALIBRATED), "",
        f"The blind spot, {noise.scenario.name}: products and confidences do not change, only the labels do; the calibration "
        f"check ({FUSED_CALIBRATED}) on the labelled sample of the window is the only part of the rule that can notice "
        f"(`untrusted` from night {_first(summarise(noise, FUSED_CALIBRATED, realized_floor).untrusted)}).", "",
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
    log.info("validation: realized %.3f, estimated %s", validation.accuracy, {v: validation.estimate(v).accuracy for v in VARIANTS})
    runs = [run_scenario(i, s, champion, args, validation.accuracy, rules) for i, s in enumerate(SCENARIOS)]
    markdown = report(runs, champion, validation, rules, args, time.perf_counter() - started)
    write_section("label_free_estimate", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
