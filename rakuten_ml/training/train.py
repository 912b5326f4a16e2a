"""Training job: snapshot -> split -> text and/or vision models -> fusion weights -> evaluation
-> one MLflow run -> one registered pyfunc version.

Splits (all stratified, seed from settings): 80% train / 20% evaluation, as in the seed report.
With the image modality, 10% of the training rows are held out again ("tune") to early-stop the
vision members and pick the fusion weight, so the evaluation rows judge a model that never saw them.

The stages: :func:`split_snapshot` here, :func:`~rakuten_ml.training.fitting.fit_classifier`,
:func:`~rakuten_ml.training.assessment.assess`, then one MLflow run and version (:func:`_log_and_register`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import TrainingError
from rakuten_ml.evaluation.plots import confusion_matrix_figure, reliability_figure
from rakuten_ml.evaluation.report import markdown_report
from rakuten_ml.jsonsafe import json_safe
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.links import airflow_dag_run_url
from rakuten_ml.registry.contract import (
    CONFUSION_FIGURE,
    DAG_ID_TAG,
    DAG_RUN_TAG,
    DAG_RUN_URL_TAG,
    EVALUATION_MARKDOWN,
    EVALUATION_PRODUCTIDS,
    EVALUATION_REPORT,
    GIT_COMMIT_TAG,
    RELIABILITY_FIGURE,
    SNAPSHOT_TAG,
    TRIGGER_REASON_TAG,
)
from rakuten_ml.registry.errors import registry_errors
from rakuten_ml.registry.model_registry import HEADLINE_METRICS, RERUN_TRAINING, RegisteredModel, log_and_register
from rakuten_ml.registry.tracking import configure_mlflow, git_commit
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.training.assessment import Assessment, assess
from rakuten_ml.training.fitting import TEXT_COLUMNS, FittedClassifier, TrainingSplit, fit_classifier
from rakuten_ml.training.split import stratified_split

log = logging.getLogger(__name__)

SUPPORTED_MODALITIES = ("text", "image")
MIN_ROWS_PER_SPLIT = 10


@dataclass(frozen=True)
class TrainResult:
    snapshot_id: str
    run_id: str
    model_name: str
    model_version: str
    metrics: dict[str, float]
    experiment_id: str = ""  # with run_id, the run's page in the MLflow UI (rakuten_ml.links)

    def summary(self) -> dict[str, object]:
        """JSON-valid (an undefined metric, e.g. a class absent from the hold-out, is None): it is an XCom."""
        return json_safe(asdict(self))


def _check_modalities(modalities: Sequence[str]) -> None:
    unsupported = sorted(set(modalities) - set(SUPPORTED_MODALITIES))
    if unsupported or not modalities:
        raise TrainingError(f"modalities {unsupported or list(modalities)} are not trainable; choose among {list(SUPPORTED_MODALITIES)}")


def _check_inputs(products: pd.DataFrame, snapshot_id: str, modalities: Sequence[str]) -> None:
    if len(products) < 2 * MIN_ROWS_PER_SPLIT or products["prdtypecode"].nunique() < 2:
        raise TrainingError(
            f"snapshot {snapshot_id} has {len(products)} rows in {products['prdtypecode'].nunique()} classes; "
            "training needs at least 20 rows in 2 classes"
        )
    if "image" in modalities and products["image_key"].notna().sum() < 2 * MIN_ROWS_PER_SPLIT:
        raise TrainingError(
            f"snapshot {snapshot_id} has {int(products['image_key'].notna().sum())} products with an image; "
            "the image modality needs at least 20 (ingest images, or train text only: --modalities text)"
        )


def _end_run(status: str) -> None:
    """End the active MLflow run; MLflow unreachable here only leaves the run's status stale (the version, if
    registered, is complete), so it is logged: failing would make the caller retrain and register twice."""
    import mlflow
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    try:
        mlflow.end_run(status)
    except (MlflowException, OSError) as exc:
        # end_run pops the run before it calls MLflow: no run is left active in this process
        log.warning("MLflow run %s could not be marked %s (it stays RUNNING in the UI): %s", run.info.run_id if run else "?", status, exc)


def train_and_register(
    platform: Platform,
    *,
    snapshot_id: str | None = None,
    modalities: Sequence[str] = ("text",),
    dag_run_id: str | None = None,
    dag_id: str | None = None,
    reason: str = "manual",
) -> TrainResult:
    """Train the classifier on a snapshot (latest by default), evaluate it and register it in MLflow.

    From Airflow (``dag_id`` and ``dag_run_id``), the version's description and a tag link back to the
    DAG run in the Airflow UI (``RAKUTEN_AIRFLOW_BASE_URL``)."""
    settings = platform.settings
    modalities = tuple(dict.fromkeys(modalities))
    _check_modalities(modalities)
    split = split_snapshot(platform, snapshot_id or latest_snapshot_id(platform.engine), modalities)
    fitted = fit_classifier(split, modalities, settings, platform.store)
    assessment = assess(fitted.classifier, split.evaluation, platform.store, threshold=settings.training.confidence_threshold)
    metrics = assessment.metrics | fitted.timings
    dag_run_url = airflow_dag_run_url(settings.airflow.base_url, dag_id, dag_run_id) if dag_id and dag_run_id else None
    tags = _version_tags(split.snapshot_id, modalities, dag_run_id, dag_id, dag_run_url, reason)
    description = version_description(split, modalities, metrics, reason=reason, dag_id=dag_id, dag_run_id=dag_run_id,
                                      dag_run_url=dag_run_url)
    registered, run = _log_and_register(platform, split, modalities, fitted, assessment, metrics, tags=tags, description=description)
    log.info("trained %s on %s: weighted F1 %.4f, version %s", "+".join(modalities), split.snapshot_id, metrics["f1_weighted"],
             registered.version)
    return TrainResult(split.snapshot_id, run.run_id, registered.name, registered.version, metrics, run.experiment_id)


def split_snapshot(platform: Platform, snapshot_id: str, modalities: Sequence[str]) -> TrainingSplit:
    """Load the snapshot and split it (stratified, seeded): evaluation rows, then tune rows for the image modality."""
    settings = platform.settings
    products = load_products(platform.store, snapshot_id)
    _check_inputs(products, snapshot_id, modalities)
    train, evaluation = stratified_split(products, settings.training.validation_share, settings.random_seed)
    if "image" not in modalities:
        return TrainingSplit(snapshot_id, train, None, evaluation)
    fit_rows, tune_rows = stratified_split(train, settings.training.fusion_tune_share, settings.random_seed)
    return TrainingSplit(snapshot_id, fit_rows, tune_rows, evaluation)


def _version_tags(
    snapshot_id: str, modalities: Sequence[str], dag_run_id: str | None, dag_id: str | None, dag_run_url: str | None, reason: str
) -> dict[str, str]:
    tags = {
        SNAPSHOT_TAG: snapshot_id,
        GIT_COMMIT_TAG: git_commit(),
        DAG_RUN_TAG: dag_run_id or "",
        TRIGGER_REASON_TAG: reason,
        "modalities": ",".join(modalities),
    }
    if dag_id:
        tags[DAG_ID_TAG] = dag_id
    if dag_run_url:
        tags[DAG_RUN_URL_TAG] = dag_run_url
    return tags


def version_description(
    split: TrainingSplit, modalities: Sequence[str], metrics: dict[str, float], *, reason: str, dag_id: str | None,
    dag_run_id: str | None, dag_run_url: str | None,
) -> str:
    """The version's description in the registry (Markdown): where it comes from, why, and how good it is."""
    if dag_run_url:
        origin = f"Trained by the Airflow run [{dag_id} / {dag_run_id}]({dag_run_url})"
    else:
        origin = f"Trained by {f'the run {dag_run_id}' if dag_run_id else 'hand (`rakuten-ml train`)'}"
    scores = ", ".join(f"{name} {metrics[name]:.3f}" for name in HEADLINE_METRICS if metrics.get(name) is not None)
    return (
        f"{origin} on snapshot `{split.snapshot_id}` ({'+'.join(modalities)}).\n\n"
        f"- Why: {reason}\n"
        f"- Held-out evaluation ({len(split.evaluation)} products): {scores}\n"
        f"- Trained on {len(split.fit)} products" + (f", {len(split.tune)} more to tune the fusion" if split.tune is not None else "")
    )


def _run_params(split: TrainingSplit, modalities: Sequence[str], fitted: FittedClassifier, settings: Settings) -> dict[str, Any]:
    params: dict[str, Any] = {
        "snapshot_id": split.snapshot_id,
        "modalities": list(modalities),
        "n_train": len(split.fit),
        "n_tune": 0 if split.tune is None else len(split.tune),
        "n_eval": len(split.evaluation),
        "split_seed": settings.random_seed,
        "validation_share": settings.training.validation_share,
        "image_weight": fitted.classifier.image_weight,
        "confidence_threshold": settings.training.confidence_threshold,
    }
    if fitted.text_model is not None:
        params |= {f"text.{k}": v for k, v in fitted.text_model.get_params().items()}
    if fitted.image_model is not None:
        config = fitted.image_model.config
        params |= {"vision.profile": settings.vision.profile, "vision.backbones": config.backbones, "vision.weights": config.weights,
                   "vision.image_size": config.image_size, "vision.max_epochs": config.max_epochs}
    return params


def _log_and_register(
    platform: Platform, split: TrainingSplit, modalities: Sequence[str], fitted: FittedClassifier, assessment: Assessment,
    metrics: dict[str, float], *, tags: dict[str, str], description: str,
) -> tuple[RegisteredModel, Any]:
    """One MLflow run holding the params, metrics, reports and figures, and the version registered from it."""
    import mlflow

    settings = platform.settings
    classifier, report, evaluation, snapshot_id = fitted.classifier, assessment.report, split.evaluation, split.snapshot_id
    context = {"snapshot": snapshot_id, "modalities": ", ".join(modalities), "evaluation rows": len(evaluation),
               "image weight": classifier.image_weight}
    markdown = markdown_report(report, title=f"Evaluation of {settings.registered_model_name} on {snapshot_id}", context=context,
                               modality_reports=assessment.by_modality, robustness=assessment.robustness)
    configure_mlflow(settings)
    with registry_errors(settings.mlflow_tracking_uri, f"start the training run of {snapshot_id}", then=RERUN_TRAINING):
        run = mlflow.start_run(run_name=f"train-{snapshot_id}")
    try:
        registered = log_and_register(
            classifier,
            settings,
            example=evaluation[TEXT_COLUMNS].head(5).assign(image=""),
            params=_run_params(split, modalities, fitted, settings),
            metrics=metrics,
            tags=tags,
            json_artifacts={
                EVALUATION_REPORT: report.to_dict() | {"fusion_weight_scores": {str(k): v for k, v in fitted.fusion_scores.items()},
                                                       "robustness": assessment.robustness},
                EVALUATION_PRODUCTIDS: {"snapshot_id": snapshot_id, "productids": evaluation["productid"].astype(int).tolist()},
                "label_mapping.json": {"codes": list(DEFAULT_MAPPING.codes)},
            },
            text_artifacts={EVALUATION_MARKDOWN: markdown},
            figures={
                CONFUSION_FIGURE: confusion_matrix_figure(report.confusion, DEFAULT_MAPPING.codes),
                RELIABILITY_FIGURE: reliability_figure(assessment.proba, DEFAULT_MAPPING.encode(evaluation["prdtypecode"].to_numpy())),
            },
            description=description,
        )
    except BaseException:
        _end_run("FAILED")
        raise
    _end_run("FINISHED")
    return registered, run.info
