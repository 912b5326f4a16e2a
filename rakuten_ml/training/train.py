"""Training job: snapshot -> split -> models -> evaluation -> MLflow run -> registered version."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import TrainingError
from rakuten_ml.evaluation.metrics import evaluate_proba
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.fusion import FusedClassifier
from rakuten_ml.platform import Platform
from rakuten_ml.registry.model_registry import log_and_register
from rakuten_ml.registry.tracking import configure_mlflow, git_commit
from rakuten_ml.training.split import stratified_split

log = logging.getLogger(__name__)

SUPPORTED_MODALITIES = ("text",)
MIN_ROWS_PER_SPLIT = 10


@dataclass(frozen=True)
class TrainResult:
    snapshot_id: str
    run_id: str
    model_name: str
    model_version: str
    metrics: dict[str, float]

    def summary(self) -> dict[str, object]:
        return asdict(self)


def train_and_register(
    platform: Platform,
    *,
    snapshot_id: str | None = None,
    modalities: Sequence[str] = ("text",),
    dag_run_id: str | None = None,
    reason: str = "manual",
) -> TrainResult:
    """Train the classifier on a snapshot (latest by default), evaluate it and register it in MLflow."""
    import mlflow

    unsupported = sorted(set(modalities) - set(SUPPORTED_MODALITIES))
    if unsupported:
        raise TrainingError(f"modalities {unsupported} are not trainable yet; supported: {list(SUPPORTED_MODALITIES)}")
    settings = platform.settings
    snapshot_id = snapshot_id or latest_snapshot_id(platform.engine)
    products = load_products(platform.store, snapshot_id)
    if len(products) < 2 * MIN_ROWS_PER_SPLIT or products["prdtypecode"].nunique() < 2:
        raise TrainingError(
            f"snapshot {snapshot_id} has {len(products)} rows in {products['prdtypecode'].nunique()} classes; "
            "training needs at least 20 rows in 2 classes"
        )
    train, evaluation = stratified_split(products, settings.validation_share, settings.random_seed)
    from rakuten_ml.models.text_model import TextClassifier

    text_model = TextClassifier(random_state=settings.random_seed)
    started = time.perf_counter()
    text_model.fit(train[["designation", "description"]], train["prdtypecode"].to_numpy())
    train_seconds = time.perf_counter() - started
    classifier = FusedClassifier(
        text_model=text_model,
        image_weight=settings.image_weight,
        confidence_threshold=settings.confidence_threshold,
        mapping=DEFAULT_MAPPING,
        metadata={"snapshot_id": snapshot_id},
    )
    proba, _modality = classifier.predict_proba(evaluation[["designation", "description"]])
    report = evaluate_proba(evaluation["prdtypecode"].to_numpy(), proba, DEFAULT_MAPPING, settings.confidence_threshold)
    metrics = dict(report.metrics) | {"train_seconds": train_seconds}
    configure_mlflow(settings)
    tags = {
        "snapshot_id": snapshot_id,
        "git_commit": git_commit(),
        "dag_run_id": dag_run_id or "",
        "trigger_reason": reason,
        "modalities": ",".join(modalities),
    }
    params = {
        "snapshot_id": snapshot_id,
        "modalities": list(modalities),
        "n_train": len(train),
        "n_eval": len(evaluation),
        "split_seed": settings.random_seed,
        "validation_share": settings.validation_share,
        "image_weight": settings.image_weight,
        "confidence_threshold": settings.confidence_threshold,
        **{f"text.{k}": v for k, v in text_model.get_params().items()},
    }
    with mlflow.start_run(run_name=f"train-{snapshot_id}") as run:
        registered = log_and_register(
            classifier,
            settings,
            example=evaluation[["designation", "description"]].head(5).assign(image=""),
            params=params,
            metrics=metrics,
            tags=tags,
            json_artifacts={
                "evaluation/report.json": report.to_dict(),
                "evaluation/eval_productids.json": {"snapshot_id": snapshot_id, "productids": evaluation["productid"].astype(int).tolist()},
                "label_mapping.json": {"codes": list(DEFAULT_MAPPING.codes)},
            },
        )
    log.info("trained on %s: weighted F1 %.4f, version %s", snapshot_id, metrics["f1_weighted"], registered.version)
    return TrainResult(snapshot_id, run.info.run_id, registered.name, registered.version, metrics)
