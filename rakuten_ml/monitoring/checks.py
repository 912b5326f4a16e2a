"""The daily drift check: load a window of predictions, run the four seed rules, store and decide alerts.

The production plan's drift rules (docs/production-plan.md), one ``drift_checks`` row per rule per day (plus one per KS feature):

- ``data_drift``: share of drift features with KS p < 0.05; alert when above the threshold 3 days in a row;
- ``prediction_drift``: KL(predicted classes || reference), Laplace-smoothed; alert when > 0.1;
- ``confidence_drift``: mean confidence over the last 7 days; alert when < 0.75;
- ``concept_drift``: accuracy on labelled feedback (30-day window); alert when > 3 points below validation.

:func:`evaluate_day` is the side-effect-free core (data frames in, rows out); :func:`run_drift_checks`
is the edge that reads the database, the object store and the MLflow registry, and writes results.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import ModelLoadError
from rakuten_ml.jsonsafe import finite_or_none
from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.monitoring import (
    DRIFTED_STATUSES,
    METRIC_CONCEPT,
    METRIC_CONFIDENCE,
    METRIC_DATA,
    METRIC_KS,
    METRIC_PREDICTION,
    RULE_METRICS,
    STATUS_ALERT,
    STATUS_DRIFT,
    STATUS_NO_DATA,
    STATUS_OK,
)
from rakuten_ml.monitoring import statistics as st
from rakuten_ml.monitoring.features import IMAGE_FEATURES, DriftFeaturizer, image_statistics
from rakuten_ml.registry.client import mlflow_client
from rakuten_ml.registry.contract import ACCURACY_TAG, EVALUATION_REPORT, SNAPSHOT_TAG
from rakuten_ml.resources import Platform
from rakuten_ml.settings import DriftSettings, Settings
from rakuten_ml.storage.database import drift_checks, feedback, prediction_log, predictions, upsert
from rakuten_ml.storage.object_store import ObjectNotFoundError, ObjectStore

log = logging.getLogger(__name__)

FEATURE_SHARE = "share"

# Rows per side the features are computed on: bounds the TF-IDF cost, and keeps KS power where
# p < 0.05 means a visible shift (D ~ 0.014 at 20K) instead of any difference at all.
DEFAULT_MAX_ROWS = 20_000
# Images per side for the image statistics: object-store reads dominate, and a per-image mean needs
# only a few hundred values for KS to see a brightness or colour-cast change.
DEFAULT_IMAGE_SAMPLE = 300


@dataclass(frozen=True)
class CheckRow:
    """One ``drift_checks`` row (without its day and version keys)."""

    metric: str
    feature: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    status: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_alert(self) -> bool:
        return self.status == STATUS_ALERT


@dataclass(frozen=True)
class DayInputs:
    """Everything one day's check reads, already loaded (so the evaluation itself has no I/O)."""

    reference_products: pd.DataFrame  # designation, description of the model's training snapshot
    current_products: pd.DataFrame  # the same columns for the products scored in the window
    reference_class_counts: np.ndarray  # predicted (or labelled) class counts on reference data, CLASS_CODES order
    window_codes: np.ndarray  # predicted classes in the data window, one per product
    confidences: np.ndarray  # predicted confidences over the confidence window, one per product
    labelled_predicted: np.ndarray  # predictions that have feedback, over the concept window
    labelled_true: np.ndarray  # their true labels
    baseline_accuracy: float | None  # the model version's validation accuracy
    reference_images: pd.DataFrame | None = None  # image statistics (IMAGE_FEATURES) of sampled products
    current_images: pd.DataFrame | None = None
    reference_source: str = "training_labels"


@dataclass(frozen=True)
class DayEvaluation:
    rows: list[CheckRow]
    reference_features: pd.DataFrame
    current_features: pd.DataFrame
    tested_features: tuple[str, ...]


_num = finite_or_none  # JSON- and SQL-safe float: NaN/inf become None


def data_drift_rows(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], rules: DriftSettings
) -> list[CheckRow]:
    """One KS row per feature and the day's data-drift row (status drift/ok, before the consecutive rule)."""
    tests = st.ks_tests(reference, current, features)
    rows = [
        CheckRow(
            METRIC_KS,
            t.feature,
            _num(t.statistic),
            _num(t.p_value),
            rules.ks_p_value,
            STATUS_NO_DATA if not t.tested else (STATUS_DRIFT if t.drifted(rules.ks_p_value) else STATUS_OK),
            {"n_reference": t.n_reference, "n_current": t.n_current},
        )
        for t in tests
    ]
    decision = st.data_drift_decision(
        tests, alpha=rules.ks_p_value, share_threshold=rules.feature_share, method=rules.multiple_testing
    )
    enough = len(current) >= rules.min_rows and decision.n_tested > 0
    status = STATUS_NO_DATA if not enough else (STATUS_DRIFT if decision.drifted else STATUS_OK)
    rows.append(
        CheckRow(
            METRIC_DATA,
            FEATURE_SHARE,
            decision.share,
            _num(decision.min_p_value),
            decision.threshold,
            status,
            {
                "method": decision.method,
                "alpha": rules.ks_p_value,
                "n_tested": decision.n_tested,
                "drifted_features": list(decision.drifted_features),
                "n_reference": len(reference),
                "n_current": len(current),
            },
        )
    )
    return rows


def apply_consecutive_rule(row: CheckRow, history: Mapping[date, bool], check_date: date, required: int) -> CheckRow:
    """Turn today's data-drift row into an alert when the previous days were drifted too."""
    drifted_today = row.status in DRIFTED_STATUSES
    days = st.consecutive_days({**history, check_date: drifted_today}, check_date)
    status = STATUS_ALERT if drifted_today and days >= required else row.status
    return CheckRow(row.metric, row.feature, row.statistic, row.p_value, row.threshold, status,
                    row.details | {"consecutive_days": days, "required_days": required})


def prediction_row(codes: np.ndarray, reference_counts: np.ndarray, rules: DriftSettings, source: str) -> CheckRow:
    reference = st.smooth_counts(reference_counts)
    check = st.prediction_drift(codes, reference, CLASS_CODES, threshold=rules.prediction_kl_threshold, min_rows=rules.min_rows)
    current = st.class_distribution(codes, CLASS_CODES)
    largest = np.argsort(-np.abs(current - reference))[:5]
    return CheckRow(
        METRIC_PREDICTION, "prdtypecode", _num(check.statistic), None, rules.prediction_kl_threshold, _status(check),
        {
            "n": check.n,
            "reference": source,
            "smoothing": st.DEFAULT_SMOOTHING,
            # the classes that moved most: where to look first
            "largest_shifts": {str(CLASS_CODES[i]): round(float(current[i] - reference[i]), 4) for i in largest},
        },
    )


def confidence_row(confidences: np.ndarray, rules: DriftSettings) -> CheckRow:
    check = st.confidence_drift(confidences, threshold=rules.confidence_threshold, min_rows=rules.min_rows)
    return CheckRow(METRIC_CONFIDENCE, "confidence", _num(check.statistic), None, rules.confidence_threshold, _status(check),
                    {"n": check.n, "window_days": rules.confidence_window_days})


def concept_row(
    predicted: np.ndarray, true: np.ndarray, baseline_accuracy: float | None, rules: DriftSettings
) -> CheckRow:
    details: dict[str, Any] = {"n": int(len(predicted)), "window_days": rules.concept_window_days,
                               "baseline_accuracy": baseline_accuracy, "max_drop": rules.concept_max_drop}
    if baseline_accuracy is None:
        return CheckRow(METRIC_CONCEPT, "accuracy", None, None, None, STATUS_NO_DATA, details | {"why": "no baseline accuracy"})
    check = st.concept_drift(predicted, true, baseline_accuracy=baseline_accuracy, max_drop=rules.concept_max_drop,
                             min_rows=rules.concept_min_feedback, significance=rules.concept_p_value)
    drop = baseline_accuracy - check.statistic if check.n else None
    return CheckRow(METRIC_CONCEPT, "accuracy", _num(check.statistic), _num(check.p_value), check.threshold, _status(check),
                    details | {"drop": _num(drop), "significance": rules.concept_p_value})


def _status(check: st.ThresholdCheck) -> str:
    if not check.enough_data:
        return STATUS_NO_DATA
    return STATUS_ALERT if check.breached else STATUS_OK


def evaluate_day(
    inputs: DayInputs, rules: DriftSettings, *, history: Mapping[date, bool], check_date: date,
    featurizer: DriftFeaturizer | None = None,
) -> DayEvaluation:
    """All four rules on one day's inputs; ``history`` holds the previous days' data-drift verdicts.

    ``featurizer`` may come already fitted on ``inputs.reference_products`` (one reference, many days);
    an unfitted one is fitted here.
    """
    featurizer = featurizer or DriftFeaturizer()
    features = list(featurizer.feature_names)
    if len(inputs.reference_products) > featurizer.n_components and len(inputs.current_products):
        if not featurizer.is_fitted:
            featurizer.fit(inputs.reference_products)
        reference = featurizer.transform(inputs.reference_products).reset_index(drop=True)
        current = featurizer.transform(inputs.current_products).reset_index(drop=True)
    else:
        reference = pd.DataFrame(columns=features, dtype=float)
        current = pd.DataFrame(columns=features, dtype=float)
    if inputs.reference_images is not None and inputs.current_images is not None:
        # image statistics come from their own sample: the KS tests ignore the other rows' NaN
        reference = pd.concat([reference, inputs.reference_images.reset_index(drop=True)], axis=1)
        current = pd.concat([current, inputs.current_images.reset_index(drop=True)], axis=1)
        features += list(IMAGE_FEATURES)
    rows = data_drift_rows(reference, current, features, rules)
    rows[-1] = apply_consecutive_rule(rows[-1], history, check_date, rules.consecutive_days)
    rows.append(prediction_row(inputs.window_codes, inputs.reference_class_counts, rules, inputs.reference_source))
    rows.append(confidence_row(inputs.confidences, rules))
    rows.append(concept_row(inputs.labelled_predicted, inputs.labelled_true, inputs.baseline_accuracy, rules))
    return DayEvaluation(rows, reference, current, tuple(features))


# ----------------------------------------------------------------------------- edges: database


@dataclass(frozen=True)
class DriftCheckResult:
    check_date: date
    model_version: str | None
    window_start: datetime
    window_end: datetime
    rows: list[CheckRow]
    report_key: str | None = None
    reference_snapshot_id: str | None = None

    @property
    def alerts(self) -> list[CheckRow]:
        return [r for r in self.rows if r.metric in RULE_METRICS and r.is_alert]

    @property
    def alert_id(self) -> str:
        """Stable per day and version: a rerun of the day's check raises the same alert, not a new one."""
        return f"drift:{self.check_date.isoformat()}:v{self.model_version}"

    def alert_payload(self) -> dict[str, Any]:
        """What the drift-alert asset event carries (JSON values only): which alerts, their statistics."""
        return {
            "alert_id": self.alert_id,
            "check_date": self.check_date.isoformat(),
            "as_of": self.window_end.isoformat(),  # the time the alert stands for: a retrain it causes is dated so
            "model_version": self.model_version,
            "report_key": self.report_key,
            "alerts": [
                {"metric": r.metric, "feature": r.feature, "statistic": r.statistic, "threshold": r.threshold,
                 "p_value": r.p_value, "details": r.details}
                for r in self.alerts
            ],
        }

    def summary(self) -> dict[str, Any]:
        return {
            "check_date": self.check_date.isoformat(),
            "model_version": self.model_version,
            "window": [self.window_start.isoformat(), self.window_end.isoformat()],
            "reference_snapshot_id": self.reference_snapshot_id,
            "report_key": self.report_key,
            "rules": {r.metric: {"status": r.status, "statistic": r.statistic, "threshold": r.threshold}
                      for r in self.rows if r.metric in RULE_METRICS},
            "alerts": [r.metric for r in self.alerts],
            "alert": self.alert_payload() if self.alerts else None,
        }


@dataclass(frozen=True)
class ModelReference:
    """What a model version was trained and validated on."""

    snapshot_id: str
    baseline_accuracy: float | None
    predicted_class_counts: np.ndarray | None  # column sums of the validation confusion matrix


def window_bounds(as_of: datetime, days: int) -> tuple[datetime, datetime]:
    return as_of - timedelta(days=days), as_of


def _as_of(check_date: date | None, as_of: datetime | None) -> tuple[date, datetime]:
    """A day's check covers the window ending at ``as_of`` (default: the end of ``check_date``, or now)."""
    if as_of is None:
        as_of = datetime.combine(check_date + timedelta(days=1), time(), tzinfo=UTC) if check_date else datetime.now(UTC)
    elif as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return check_date or (as_of - timedelta(microseconds=1)).date(), as_of


def load_predictions(engine: Engine, start: datetime, end: datetime, model_version: str | None = None) -> pd.DataFrame:
    """Batch and online predictions in [start, end): productid, model_version, prdtypecode, confidence, at."""
    selects = []
    for table, at in ((predictions, predictions.c.scored_at), (prediction_log, prediction_log.c.created_at)):
        stmt = sa.select(
            table.c.productid, table.c.model_version, table.c.prdtypecode, table.c.confidence, at.label("at")
        ).where(at >= sa.bindparam("start"), at < sa.bindparam("end"))
        if model_version is not None:
            stmt = stmt.where(table.c.model_version == sa.bindparam("version"))
        selects.append(stmt)
    params: dict[str, Any] = {"start": start, "end": end}
    if model_version is not None:
        params["version"] = model_version
    with engine.connect() as conn:
        rows = conn.execute(sa.union_all(*selects), params).all()
    frame = pd.DataFrame(rows, columns=["productid", "model_version", "prdtypecode", "confidence", "at"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def latest_per_product(frame: pd.DataFrame, start: datetime | None = None) -> pd.DataFrame:
    """One row per product (its latest prediction since ``start``): nightly rescoring must not count a product 7 times.

    Online rows without a productid are kept as they are.
    """
    if start is not None:
        frame = frame[frame["at"] >= pd.Timestamp(start)]
    frame = frame.sort_values("at", kind="stable")
    known = frame[frame["productid"].notna()].drop_duplicates("productid", keep="last")
    return pd.concat([known, frame[frame["productid"].isna()]], ignore_index=True)


def primary_model_version(frame: pd.DataFrame) -> str | None:
    """The version that made most of the window's predictions (the champion; a 5% challenger is not)."""
    if frame.empty:
        return None
    counts = frame["model_version"].astype(str).value_counts()
    return str(counts.index[0])


def load_labels(engine: Engine, productids: Sequence[int]) -> pd.DataFrame:
    """Feedback labels (productid, true prdtypecode) of the given products."""
    if not len(productids):
        return pd.DataFrame(columns=["productid", "true_code"])
    stmt = sa.select(feedback.c.productid, feedback.c.prdtypecode.label("true_code")).where(
        feedback.c.productid.in_(sa.bindparam("ids", expanding=True))
    )
    frames = []
    ids = [int(i) for i in productids]
    with engine.connect() as conn:
        for start in range(0, len(ids), 10_000):  # keep each statement's parameter list bounded
            frames.append(pd.DataFrame(conn.execute(stmt, {"ids": ids[start : start + 10_000]}).all(), columns=["productid", "true_code"]))
    return pd.concat(frames, ignore_index=True)


def drift_history(engine: Engine, model_version: str, check_date: date, days: int) -> dict[date, bool]:
    """Data-drift verdicts of the ``days`` days before ``check_date`` for one version."""
    stmt = sa.select(drift_checks.c.check_date, drift_checks.c.status).where(
        drift_checks.c.model_version == sa.bindparam("version"),
        drift_checks.c.metric == sa.bindparam("metric"),
        drift_checks.c.feature == sa.bindparam("feature"),
        drift_checks.c.check_date >= sa.bindparam("first"),
        drift_checks.c.check_date < sa.bindparam("today"),
    )
    params = {"version": model_version, "metric": METRIC_DATA, "feature": FEATURE_SHARE,
              "first": check_date - timedelta(days=days), "today": check_date}
    with engine.connect() as conn:
        return {row.check_date: row.status in DRIFTED_STATUSES for row in conn.execute(stmt, params)}


def store_results(engine: Engine, check_date: date, model_version: str, rows: Sequence[CheckRow], checked_at: datetime) -> int:
    """Upsert the day's rows: a rerun of the same day and version overwrites them."""
    return upsert(
        engine,
        drift_checks,
        [
            {"check_date": check_date, "model_version": model_version, "checked_at": checked_at,
             **asdict(r), "details": json.loads(json.dumps(r.details, default=_json_default))}
            for r in rows
        ],
    )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ----------------------------------------------------------------------------- edges: registry and store


def resolve_reference(settings: Settings, model_version: str) -> ModelReference:
    """Training snapshot, validation accuracy and validation class distribution of a registered version."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    name = settings.registered_model_name
    try:
        version = client.get_model_version(name, model_version)
    except MlflowException as exc:
        raise ModelLoadError(
            f"cannot read {name!r} version {model_version} at {settings.mlflow_tracking_uri}: {exc.message}; "
            "pass the reference snapshot and baseline accuracy explicitly to check without the registry"
        ) from exc
    snapshot_id = version.tags.get(SNAPSHOT_TAG)
    if not snapshot_id:
        raise ModelLoadError(f"{name!r} version {model_version} has no snapshot_id tag: its training data is unknown")
    accuracy = version.tags.get(ACCURACY_TAG)
    counts = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(version.run_id, EVALUATION_REPORT, tmp)
            report = json.loads(Path(path).read_text())
        confusion = np.asarray(report["confusion"], dtype=float)
        by_code = dict(zip((int(c) for c in report["codes"]), confusion.sum(axis=0), strict=True))
        counts = np.array([by_code.get(c, 0.0) for c in CLASS_CODES])
    except (MlflowException, OSError, KeyError, ValueError) as exc:
        log.warning("no validation report for version %s (%s): prediction drift uses the training labels", model_version, exc)
    return ModelReference(snapshot_id, float(accuracy) if accuracy else None, counts)


def sample_rows(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` rows (seeded, so a rerun of the day sees the same sample); None = all."""
    return frame.sample(n=n, random_state=seed) if n is not None and len(frame) > n else frame


def load_image_statistics(store: ObjectStore, products: pd.DataFrame, n: int, seed: int) -> pd.DataFrame | None:
    """Image statistics of up to ``n`` products that have an image; None when there are none."""
    if "image_key" not in products:
        return None
    with_image = products[products["image_key"].notna() & (products["image_key"].astype(str) != "")]
    if with_image.empty:
        return None
    images: list[bytes | None] = []
    for key in sample_rows(with_image, n, seed)["image_key"]:
        try:
            images.append(store.get_bytes(str(key)))
        except ObjectNotFoundError:
            images.append(None)
    return image_statistics(images)


def run_drift_checks(
    platform: Platform,
    *,
    check_date: date | None = None,
    as_of: datetime | None = None,
    window_days: int | None = None,
    model_version: str | None = None,
    reference_snapshot_id: str | None = None,
    current_snapshot_id: str | None = None,
    baseline_accuracy: float | None = None,
    write_report: bool = True,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    image_sample: int = DEFAULT_IMAGE_SAMPLE,
) -> DriftCheckResult:
    """Run the day's drift checks for one model version, store them in ``drift_checks`` and return the verdicts.

    The data and prediction checks see the ``window_days`` before ``as_of``; the confidence and concept
    checks their own (7- and 30-day) windows. The version defaults to the one that made most of the
    window's predictions; its reference (training snapshot, validation accuracy and class distribution)
    comes from the registry unless given.
    """
    settings = platform.settings
    rules = settings.drift
    check_date, as_of = _as_of(check_date, as_of)
    window_days = window_days or settings.drift.window_days
    start, end = window_bounds(as_of, window_days)
    widest = max(window_days, rules.confidence_window_days, rules.concept_window_days)
    loaded = load_predictions(platform.engine, as_of - timedelta(days=widest), end, model_version)
    model_version = model_version or primary_model_version(latest_per_product(loaded, start))
    if model_version is None:
        log.warning("no predictions between %s and %s: nothing to check", start, end)
        return DriftCheckResult(check_date, None, start, end, [])
    loaded = loaded[loaded["model_version"].astype(str) == model_version]
    reference = _reference(settings, model_version, reference_snapshot_id, baseline_accuracy)
    inputs = load_day_inputs(
        platform, loaded, reference, start=start, as_of=as_of, rules=rules,
        current_snapshot_id=current_snapshot_id, max_rows=max_rows, image_sample=image_sample,
    )
    history = drift_history(platform.engine, model_version, check_date, rules.consecutive_days)
    evaluation = evaluate_day(inputs, rules, history=history, check_date=check_date,
                              featurizer=DriftFeaturizer(random_state=settings.random_seed))
    rows = evaluation.rows
    report_key = None
    if write_report and len(evaluation.current_features) and len(evaluation.reference_features):
        report_key = _write_report(platform.store, check_date, evaluation, rules)
        rows = [CheckRow(**{**asdict(r), "details": r.details | {"report_key": report_key}}) if r.metric == METRIC_DATA else r
                for r in rows]
    store_results(platform.engine, check_date, model_version, rows, datetime.now(UTC))
    for row in rows:
        if row.metric in RULE_METRICS:
            log.info("drift %s v%s %s: %s (statistic %s, threshold %s)", check_date, model_version, row.metric,
                     row.status, row.statistic, row.threshold)
    return DriftCheckResult(check_date, model_version, start, end, rows, report_key, reference.snapshot_id)


def load_day_inputs(
    platform: Platform,
    loaded: pd.DataFrame,
    reference: ModelReference,
    *,
    start: datetime,
    as_of: datetime,
    rules: DriftSettings,
    current_snapshot_id: str | None = None,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    image_sample: int = DEFAULT_IMAGE_SAMPLE,
) -> DayInputs:
    """Read what one version's day needs: its products (reference and scored), predictions, feedback, images.

    ``loaded`` holds that version's predictions over the widest window; each rule takes its own slice.
    """
    engine, store, seed = platform.engine, platform.store, platform.settings.random_seed
    window = latest_per_product(loaded, start)
    reference_products = load_products(store, reference.snapshot_id)
    # the scored products' text comes from the latest snapshot: predictions only hold ids
    current_products = load_products(store, current_snapshot_id or latest_snapshot_id(engine))
    current_products = current_products[current_products["productid"].isin(window["productid"].dropna().astype("int64"))]
    if reference.predicted_class_counts is not None:
        reference_counts, source = reference.predicted_class_counts, "validation_predictions"
    else:
        labels = reference_products["prdtypecode"].astype(int).value_counts()
        reference_counts, source = np.array([float(labels.get(c, 0)) for c in CLASS_CODES]), "training_labels"
    concept = latest_per_product(loaded, as_of - timedelta(days=rules.concept_window_days)).dropna(subset=["productid"])
    labelled = concept.merge(load_labels(engine, concept["productid"].tolist()), on="productid")
    confidence = latest_per_product(loaded, as_of - timedelta(days=rules.confidence_window_days))
    reference_images = load_image_statistics(store, reference_products, image_sample, seed)
    current_images = load_image_statistics(store, current_products, image_sample, seed)
    if reference_images is None or current_images is None:  # images on one side only: nothing to compare
        reference_images = current_images = None
    return DayInputs(
        reference_products=sample_rows(reference_products, max_rows, seed),
        current_products=sample_rows(current_products, max_rows, seed),
        reference_class_counts=reference_counts,
        window_codes=window["prdtypecode"].to_numpy(),
        confidences=confidence["confidence"].to_numpy(),
        labelled_predicted=labelled["prdtypecode"].to_numpy(),
        labelled_true=labelled["true_code"].to_numpy(),
        baseline_accuracy=reference.baseline_accuracy,
        reference_images=reference_images,
        current_images=current_images,
        reference_source=source,
    )


def _reference(settings: Settings, model_version: str, snapshot_id: str | None, accuracy: float | None) -> ModelReference:
    if snapshot_id and accuracy is not None:
        return ModelReference(snapshot_id, accuracy, None)
    registered = resolve_reference(settings, model_version)
    return ModelReference(
        snapshot_id or registered.snapshot_id,
        accuracy if accuracy is not None else registered.baseline_accuracy,
        registered.predicted_class_counts,
    )


def _write_report(store: ObjectStore, check_date: date, evaluation: DayEvaluation, rules: DriftSettings) -> str:
    from rakuten_ml.monitoring.evidently_report import data_drift_report, report_key, save_report

    snapshot = data_drift_report(
        evaluation.reference_features, evaluation.current_features, evaluation.tested_features,
        method="ks", threshold=rules.ks_p_value, drift_share=rules.feature_share,
    )
    return save_report(store, report_key(check_date), snapshot)
