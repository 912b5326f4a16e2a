"""The drift rules on catalogues from the generator's drift knobs, scored by a real trained text model.

Pure scenarios run :func:`evaluate_day` on frames; the stored scenarios run :func:`run_drift_checks`
against PostgreSQL and a local object store, the way the daily DAG does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rakuten_ml.catalogue.generator import CatalogueSpec, DriftSpec, generate_frames, render_image
from rakuten_ml.data.snapshot import write_snapshot
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.monitoring.checks import run_drift_checks
from rakuten_ml.monitoring.evidently_report import column_scores, data_drift_report, drifted_columns
from rakuten_ml.monitoring.features import IMAGE_FEATURES, DriftFeaturizer, image_statistics, length_features
from rakuten_ml.monitoring.performance_estimate import ConfusionSums
from rakuten_ml.monitoring.rules import DayInputs, evaluate_day
from rakuten_ml.monitoring.statistics import ks_tests
from rakuten_ml.resources import Platform
from rakuten_ml.settings import DriftSettings, Settings
from rakuten_ml.storage.database import confusion_sums, count_rows, drift_checks, feedback, predictions, upsert
from tests.support.cli import cli

log = logging.getLogger(__name__)

REFERENCE_ROWS = 3000
WINDOW_ROWS = 1000
FEEDBACK_ROWS = 400
NO_DRIFT_SEEDS = range(2, 12)


@dataclass(frozen=True)
class World:
    """A text model trained on the reference catalogue, and what its registry entry would hold."""

    model: object
    reference: pd.DataFrame
    validation_counts: np.ndarray
    baseline_accuracy: float
    featurizer: DriftFeaturizer  # fitted on the reference once, reused by every simulated day
    validation_sums: ConfusionSums | None = None  # the label-free estimate's reference: a calm night's sums

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        proba = self.model.predict_proba(frame[["designation", "description"]])
        return DEFAULT_MAPPING.decode(proba.argmax(axis=1)), proba.max(axis=1)


def products(spec: CatalogueSpec) -> pd.DataFrame:
    x, y = generate_frames(spec)
    return x.assign(prdtypecode=y["prdtypecode"].to_numpy())


@pytest.fixture(scope="module")
def world() -> World:
    from rakuten_ml.models.text_model import TextClassifier

    reference = products(CatalogueSpec(rows=REFERENCE_ROWS, seed=1))
    model = TextClassifier(random_state=42).fit(reference[["designation", "description"]], reference["prdtypecode"].to_numpy())
    validation = products(CatalogueSpec(rows=WINDOW_ROWS, seed=99))
    featurizer = DriftFeaturizer().fit(reference)
    world = World(model, reference, np.zeros(DEFAULT_MAPPING.n_classes), 0.0, featurizer)
    codes, _ = world.predict(validation)
    counts = np.bincount(DEFAULT_MAPPING.encode(codes), minlength=DEFAULT_MAPPING.n_classes).astype(float)
    sums = ConfusionSums.from_probabilities(model.predict_proba(validation[["designation", "description"]]))
    return World(model, reference, counts, float((codes == validation["prdtypecode"].to_numpy()).mean()), featurizer, sums)


def day_inputs(world: World, drift: DriftSpec = DriftSpec(), *, seed: int, feedback_noise: float = 0.0, estimate: bool = False) -> DayInputs:
    """One day's inputs; with ``estimate`` the night's expected confusion sums too (the label-free rule)."""
    current = products(CatalogueSpec(rows=WINDOW_ROWS, seed=seed, drift=drift))
    codes, confidence = world.predict(current)
    sums = ConfusionSums.from_probabilities(world.model.predict_proba(current[["designation", "description"]])) if estimate else None
    labels = products(CatalogueSpec(rows=WINDOW_ROWS, seed=seed, drift=DriftSpec(**{**drift.__dict__, "label_noise": feedback_noise})))
    return DayInputs(
        reference_products=world.reference,
        current_products=current,
        reference_class_counts=world.validation_counts,
        window_codes=codes,
        confidences=confidence,
        labelled_predicted=codes[:FEEDBACK_ROWS],
        labelled_true=labels["prdtypecode"].to_numpy()[:FEEDBACK_ROWS],
        baseline_accuracy=world.baseline_accuracy,
        reference_source="validation_predictions",
        labelled_confidence=confidence[:FEEDBACK_ROWS],
        estimate_sums=sums,
        reference_sums=world.validation_sums if estimate else None,
    )


def rules(world: World, inputs: DayInputs) -> dict[str, str]:
    evaluation = evaluate_day(inputs, DriftSettings(), history={}, check_date=date(2026, 3, 1), featurizer=world.featurizer)
    return {r.metric: r.status for r in evaluation.rows if r.metric != "ks"}


# ----------------------------------------------------------------------------- pure scenarios


def test_no_drift_gives_a_low_false_alarm_rate(world):
    """Ten fresh catalogues from the reference distribution: alerts (or even drifted days) stay rare."""
    outcomes = [rules(world, day_inputs(world, seed=seed)) for seed in NO_DRIFT_SEEDS]
    alert_days = sum(any(s == "alert" for s in day.values()) for day in outcomes)
    drifted_days = sum(day["data_drift"] != "ok" for day in outcomes)
    log.warning("no-drift false alarms: %d/%d days with an alert, %d/%d data-drift days (before the 3-day rule)",
                alert_days, len(outcomes), drifted_days, len(outcomes))
    assert alert_days <= len(outcomes) // 10, outcomes
    assert drifted_days <= len(outcomes) // 10, outcomes  # so 3 in a row is ~1e-3 or less


def test_class_prior_shift_raises_a_prediction_drift_alert(world):
    statuses = rules(world, day_inputs(world, DriftSpec(class_prior_shift=0.8), seed=21))
    assert statuses["prediction_drift"] == "alert"


def test_degraded_feedback_labels_raise_a_concept_drift_alert(world):
    clean = rules(world, day_inputs(world, seed=22))
    noisy = rules(world, day_inputs(world, seed=22, feedback_noise=0.3))
    assert clean["concept_drift"] == "ok" and noisy["concept_drift"] == "alert"
    assert noisy["data_drift"] == "ok" and noisy["prediction_drift"] == "ok"  # the inputs did not move


def test_unfamiliar_vocabulary_lowers_confidence_into_a_confidence_drift_alert(world):
    statuses = rules(world, day_inputs(world, DriftSpec(vocabulary_shift=0.9), seed=23))
    assert statuses["confidence_drift"] == "alert"
    assert statuses["data_drift"] == "drift"  # one day only: not yet an alert


def estimated(world: World, inputs: DayInputs):
    evaluation = evaluate_day(inputs, DriftSettings(), history={}, check_date=date(2026, 3, 1), featurizer=world.featurizer)
    return next(r for r in evaluation.rows if r.metric == "estimated_performance")


def test_label_free_estimate_tracks_calm_days_and_drops_on_unfamiliar_vocabulary(world):
    calm = [estimated(world, day_inputs(world, seed=seed, estimate=True)) for seed in NO_DRIFT_SEEDS]
    assert [row.status for row in calm].count("ok") >= len(calm) - 1, [(r.status, r.statistic) for r in calm]
    for row in calm:  # the labelled sample never finds the confidence overstating accuracy on a calm day
        assert row.details["calibration"]["checked"] and row.details["calibration"]["trusted"], row.details
        assert abs(row.details["realized_accuracy"] - row.details["corrected_accuracy"]) < 0.05
    shifted = estimated(world, day_inputs(world, DriftSpec(vocabulary_shift=0.9), seed=23, estimate=True))
    assert shifted.status == "drift" and shifted.details["drop"] > 0.03  # one day: an alert needs three
    assert shifted.statistic < shifted.threshold and shifted.details["estimated_f1_weighted"] < shifted.details["reference_f1_weighted"]


def test_label_noise_is_the_estimates_blind_spot_and_the_labelled_sample_says_so(world):
    """The inputs do not move, so neither does the estimate; the labels contradict the confidence."""
    noisy = estimated(world, day_inputs(world, seed=22, feedback_noise=0.3, estimate=True))
    assert abs(noisy.details["drop"]) < 0.03  # the estimate alone would see nothing
    assert noisy.status == "untrusted" and not noisy.details["calibration"]["trusted"]
    assert "overstates accuracy" in noisy.details["calibration"]["reason"]


def test_image_brightness_shift_is_caught_by_the_image_statistics(world):
    def stats(brightness: float, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        codes = rng.choice(DEFAULT_MAPPING.codes, size=60)
        drift = DriftSpec(brightness_shift=brightness)
        return image_statistics([render_image(int(c), rng, drift, size=64) for c in codes] + [None, b"not a jpeg"])

    reference, same, darker = stats(0.0, 1), stats(0.0, 2), stats(-0.5, 3)
    assert reference[list(IMAGE_FEATURES)].iloc[-2:].isna().all().all()  # absent and unreadable: NaN, not 0
    inputs = day_inputs(world, seed=24)
    with_images = DayInputs(**{**inputs.__dict__, "reference_images": reference, "current_images": darker})
    evaluation = evaluate_day(with_images, DriftSettings(), history={}, check_date=date(2026, 3, 1), featurizer=world.featurizer)
    ks = {r.feature: r for r in evaluation.rows if r.metric == "ks"}
    assert ks["image_brightness"].status == "drift" and ks["text_svd_0"].status == "ok"
    calm = evaluate_day(DayInputs(**{**inputs.__dict__, "reference_images": reference, "current_images": same}),
                        DriftSettings(), history={}, check_date=date(2026, 3, 1), featurizer=world.featurizer)
    assert {r.feature: r.status for r in calm.rows if r.metric == "ks"}["image_brightness"] == "ok"


def test_length_features_flag_missing_descriptions_per_row():
    frame = pd.DataFrame({"designation": ["abc", None], "description": [None, "  "]})
    features = length_features(frame)
    assert features["description_missing"].tolist() == [1.0, 1.0]
    assert features["designation_length"].tolist() == [3.0, 0.0]


def test_evidently_report_runs_the_same_ks_tests(world):
    featurizer = world.featurizer
    reference = featurizer.transform(world.reference)
    current = featurizer.transform(products(CatalogueSpec(rows=WINDOW_ROWS, seed=25, drift=DriftSpec(missing_description_rate=0.7))))
    rules = DriftSettings()
    snapshot = data_drift_report(reference, current, featurizer.feature_names, threshold=rules.ks_p_value, drift_share=rules.feature_share)
    ours = {t.feature: t.p_value for t in ks_tests(reference, current, featurizer.feature_names)}
    theirs = column_scores(snapshot)
    assert set(theirs) == set(ours)
    for name, p in ours.items():
        assert theirs[name] == pytest.approx(p, rel=1e-6, abs=1e-12), name
    count, share = drifted_columns(snapshot)
    assert count == sum(p < 0.05 for p in ours.values()) and share > 0.3
    assert "<html" in snapshot.get_html_str(as_iframe=False).lower()


# ----------------------------------------------------------------------------- stored scenarios


def write_products_snapshot(platform: Platform, frame: pd.DataFrame) -> str:
    rows = frame.assign(image_key=None, image_sha256=None, source="generator", location=[f"row {i}" for i in range(len(frame))])
    manifest, _, _ = write_snapshot(platform.store, platform.engine, rows, [], n_input=len(rows), sources={"generator": "test"})
    return manifest.snapshot_id


def score_day(platform: Platform, world: World, frame: pd.DataFrame, day: date, version: str = "1") -> None:
    codes, confidence = world.predict(frame)
    scored_at = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
    upsert(platform.engine, predictions, [
        {"run_id": f"scheduled__{day}", "productid": int(p), "model_name": "clf", "model_version": version, "variant": "champion",
         "prdtypecode": int(c), "confidence": float(s), "decision": "auto", "modality": "text", "scored_at": scored_at}
        for p, c, s in zip(frame["productid"], codes, confidence, strict=True)
    ])


@pytest.fixture
def platform(pg_url, tmp_path) -> Platform:
    return Platform(Settings(home=tmp_path, database_url=pg_url)).prepare()


def test_vocabulary_and_length_shift_alerts_only_on_the_third_consecutive_day(platform, world):
    reference_id = write_products_snapshot(platform, world.reference)
    drifted = products(CatalogueSpec(rows=WINDOW_ROWS, seed=31, drift=DriftSpec(vocabulary_shift=0.5, missing_description_rate=0.6)))
    write_products_snapshot(platform, drifted)
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]
    statuses = []
    for day in days:
        score_day(platform, world, drifted, day)
        result = run_drift_checks(platform, check_date=day, window_days=1, reference_snapshot_id=reference_id,
                                  baseline_accuracy=world.baseline_accuracy, write_report=day == days[-1])
        data = next(r for r in result.rows if r.metric == "data_drift")
        statuses.append((data.status, data.details["consecutive_days"]))
    assert statuses == [("drift", 1), ("drift", 2), ("alert", 3)]
    assert [r.metric for r in result.alerts] == ["data_drift"]
    payload = result.alert_payload()
    assert payload["alert_id"] == "drift:2026-03-03:v1" and payload["alerts"][0]["metric"] == "data_drift"
    assert "description_missing" in payload["alerts"][0]["details"]["drifted_features"]
    # the evidently page is in the store and its key is recorded with the day's row
    assert result.report_key == "monitoring/reports/2026-03-03/data_drift.html"
    assert b"<html" in platform.store.get_bytes(result.report_key).lower()
    assert data.details["report_key"] == result.report_key
    # idempotent per (day, version, metric, feature): rerunning the day overwrites
    n_rows = count_rows(platform.engine, drift_checks)
    again = run_drift_checks(platform, check_date=days[-1], window_days=1, reference_snapshot_id=reference_id,
                             baseline_accuracy=world.baseline_accuracy, write_report=False)
    assert count_rows(platform.engine, drift_checks) == n_rows == 3 * len(result.rows)
    assert [r.metric for r in again.alerts] == ["data_drift"]


def test_a_calm_day_breaks_the_consecutive_run(platform, world):
    reference_id = write_products_snapshot(platform, world.reference)
    drifted = products(CatalogueSpec(rows=WINDOW_ROWS, seed=32, drift=DriftSpec(missing_description_rate=0.8)))
    calm = products(CatalogueSpec(rows=WINDOW_ROWS, seed=33))
    write_products_snapshot(platform, pd.concat([drifted, calm], ignore_index=True))
    statuses = []
    for i, frame in enumerate([drifted, drifted, calm, drifted]):
        day = date(2026, 4, 1) + timedelta(days=i)
        score_day(platform, world, frame, day)
        result = run_drift_checks(platform, check_date=day, reference_snapshot_id=reference_id,
                                  baseline_accuracy=world.baseline_accuracy, write_report=False)
        statuses.append(next(r.status for r in result.rows if r.metric == "data_drift"))
    assert statuses == ["drift", "drift", "ok", "drift"]


def test_feedback_table_drives_the_concept_drift_check(platform, world):
    reference_id = write_products_snapshot(platform, world.reference)
    current = products(CatalogueSpec(rows=WINDOW_ROWS, seed=34))
    noisy = products(CatalogueSpec(rows=WINDOW_ROWS, seed=34, drift=DriftSpec(label_noise=0.3)))
    write_products_snapshot(platform, current)
    day = date(2026, 5, 1)
    score_day(platform, world, current, day)
    received = datetime(2026, 5, 1, 12, tzinfo=UTC)
    upsert(platform.engine, feedback, [
        {"productid": int(p), "prdtypecode": int(c), "source": "human", "received_at": received}
        for p, c in zip(noisy["productid"][:FEEDBACK_ROWS], noisy["prdtypecode"][:FEEDBACK_ROWS], strict=True)
    ])
    result = run_drift_checks(platform, check_date=day, reference_snapshot_id=reference_id,
                              baseline_accuracy=world.baseline_accuracy, write_report=False)
    concept = next(r for r in result.rows if r.metric == "concept_drift")
    assert concept.status == "alert" and concept.details["n"] == FEEDBACK_ROWS
    assert concept.statistic < world.baseline_accuracy - 0.1
    assert [r.metric for r in result.alerts] == ["concept_drift"]


def store_sums(platform: Platform, world: World, frame: pd.DataFrame, day: date, version: str = "1") -> None:
    """What batch scoring stores beside the predictions: the night's expected confusion sums."""
    sums = ConfusionSums.from_probabilities(world.model.predict_proba(frame[["designation", "description"]]))
    upsert(platform.engine, confusion_sums, [{
        "run_id": f"scheduled__{day}", "partition_id": 0, "model_version": version, "model_name": "clf", "n": sums.n,
        "sums": sums.as_dict(), "scored_at": datetime(day.year, day.month, day.day, 2, tzinfo=UTC),
    }])


def test_label_free_estimate_alerts_on_the_third_day_of_a_drop_and_names_its_reason(platform, world):
    reference_id = write_products_snapshot(platform, world.reference)
    calm = products(CatalogueSpec(rows=WINDOW_ROWS, seed=41))
    drifted = products(CatalogueSpec(rows=WINDOW_ROWS, seed=42, drift=DriftSpec(vocabulary_shift=0.9)))
    write_products_snapshot(platform, pd.concat([calm, drifted], ignore_index=True))
    rows = []
    for i, frame in enumerate([calm, drifted, drifted, drifted]):
        day = date(2026, 6, 1) + timedelta(days=i)
        score_day(platform, world, frame, day)
        store_sums(platform, world, frame, day)
        result = run_drift_checks(platform, check_date=day, reference_snapshot_id=reference_id,
                                  baseline_accuracy=world.baseline_accuracy, write_report=False)
        rows.append(next(r for r in result.rows if r.metric == "estimated_performance"))
    assert [r.status for r in rows] == ["ok", "drift", "drift", "alert"], [(r.status, r.statistic, r.threshold) for r in rows]
    assert rows[0].details["reference_run_id"] == rows[0].details["run_id"] == "scheduled__2026-06-01"  # the first night is the reference
    assert rows[-1].details["run_id"] == "scheduled__2026-06-04" and rows[-1].details["consecutive_days"] == 3
    assert "estimated_performance" in [r.metric for r in result.alerts]
    alert = next(a for a in result.alert_payload()["alerts"] if a["metric"] == "estimated_performance")
    assert alert["details"]["drop"] > 0.03 and alert["details"]["estimated_f1_weighted"] is not None
    with platform.engine.connect() as conn:
        stored = conn.execute(sa.select(drift_checks.c.metric, drift_checks.c.statistic).where(
            drift_checks.c.check_date == date(2026, 6, 4), drift_checks.c.metric.in_(["estimated_performance", "estimated_f1"]))).all()
    assert {metric for metric, _ in stored} == {"estimated_performance", "estimated_f1"}


def test_a_window_without_predictions_checks_nothing(platform):
    result = run_drift_checks(platform, check_date=date(2026, 1, 1))
    assert result.model_version is None and result.rows == [] and result.summary()["alerts"] == []
    with platform.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(drift_checks)).scalar_one() == 0


def test_cli_drift_check_prints_the_summary_and_writes_the_textfile(tmp_path):
    empty = cli(tmp_path, "drift", "check", "--date", "2026-01-01", "--window-days", "2")
    assert empty.returncode == 0, empty.stderr
    summary = json.loads(empty.stdout)
    assert summary["model_version"] is None and summary["window"] == ["2025-12-31T00:00:00+00:00", "2026-01-02T00:00:00+00:00"]
    assert (tmp_path / "metrics" / "rakuten_drift.prom").exists()
