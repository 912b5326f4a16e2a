"""Training job: snapshot -> split -> text and/or vision models -> fusion weights -> evaluation
-> one MLflow run -> one registered pyfunc version.

Splits (all stratified, seed from settings): 80% train / 20% evaluation, as in the seed report.
With the image modality, 10% of the training rows are held out again ("tune") to early-stop the
vision members and pick the fusion weight, so the evaluation rows judge a model that never saw them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import TrainingError
from rakuten_ml.evaluation.metrics import EvaluationReport, evaluate_proba
from rakuten_ml.evaluation.plots import confusion_matrix_figure, reliability_figure
from rakuten_ml.evaluation.report import markdown_report
from rakuten_ml.evaluation.robustness import PERTURBATIONS, perturb_images
from rakuten_ml.jsonsafe import json_safe
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.fusion import FusedClassifier, fuse_probabilities
from rakuten_ml.models.fusion_tuning import search_image_weight
from rakuten_ml.registry.contract import (
    CONFUSION_FIGURE,
    DAG_RUN_TAG,
    EVALUATION_MARKDOWN,
    EVALUATION_PRODUCTIDS,
    EVALUATION_REPORT,
    GIT_COMMIT_TAG,
    RELIABILITY_FIGURE,
    SNAPSHOT_TAG,
    TRIGGER_REASON_TAG,
)
from rakuten_ml.registry.errors import registry_errors
from rakuten_ml.registry.model_registry import RERUN_TRAINING, log_and_register
from rakuten_ml.registry.tracking import configure_mlflow, git_commit
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.training.split import stratified_split

log = logging.getLogger(__name__)

SUPPORTED_MODALITIES = ("text", "image")
MIN_ROWS_PER_SPLIT = 10
TEXT_COLUMNS = ["designation", "description"]


@dataclass(frozen=True)
class TrainResult:
    snapshot_id: str
    run_id: str
    model_name: str
    model_version: str
    metrics: dict[str, float]

    def summary(self) -> dict[str, object]:
        """JSON-valid (an undefined metric, e.g. a class absent from the hold-out, is None): it is an XCom."""
        return json_safe(asdict(self))


def vision_config(settings: Settings) -> Any:
    from rakuten_ml.models.vision.ensemble import VisionEnsembleConfig
    from rakuten_ml.models.vision.features import resolve_cpu_bf16

    overrides: dict[str, Any] = {
        "seed": settings.random_seed, "num_workers": settings.vision.num_workers or 0, "progress": False,
        "cpu_bf16": resolve_cpu_bf16(settings.vision.cpu_bf16),
        "checkpoint_dir": str(settings.home / "checkpoints"),
    }
    if settings.vision.max_epochs is not None:
        overrides["max_epochs"] = settings.vision.max_epochs
    if settings.vision.profile == "tiny":
        config = VisionEnsembleConfig.tiny(**overrides)
    else:
        config = VisionEnsembleConfig.full(dino_weights=settings.vision.dino_weights, **overrides)
    weights = dict(item.split("=", 1) for item in settings.vision.weights.split(",") if "=" in item)
    if weights:
        config = dataclasses.replace(config, weights_paths={**config.weights_paths, **{m.strip(): p.strip() for m, p in weights.items()}})
    members = [m.strip() for m in settings.vision.members.split(",") if m.strip()]
    if members:
        config = dataclasses.replace(
            config,
            **{name: {m: v for m, v in getattr(config, name).items() if m in members} for name in ("backbones", "weights", "weights_paths", "backbone_kwargs")},
        )
    config.validate()
    return config


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
            "the image modality needs at least 20 (ingest images, or train with --modalities text)"
        )


def _robustness(classifier: FusedClassifier, evaluation: pd.DataFrame, platform: Platform) -> dict[str, float]:
    """Weighted F1 of the image path under the seed's crash tests (rotation, noise, brightness)."""
    from sklearn.metrics import f1_score

    with_image = evaluation[evaluation["image_key"].notna()]
    if with_image.empty or classifier.image_model is None:
        return {}
    images = [platform.store.get_bytes(key) for key in with_image["image_key"]]
    y_idx = DEFAULT_MAPPING.encode(with_image["prdtypecode"])
    scores = {}
    for name, perturbation in {"none": None, **PERTURBATIONS}.items():
        batch = images if perturbation is None else perturb_images(images, perturbation)
        proba, _ = classifier.image_model.predict_proba_images(batch)
        scores[name] = float(f1_score(y_idx, proba.argmax(axis=1), average="weighted", zero_division=0))
    return scores


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
    reason: str = "manual",
) -> TrainResult:
    """Train the classifier on a snapshot (latest by default), evaluate it and register it in MLflow."""
    import mlflow

    settings = platform.settings
    modalities = tuple(dict.fromkeys(modalities))
    _check_modalities(modalities)
    snapshot_id = snapshot_id or latest_snapshot_id(platform.engine)
    products = load_products(platform.store, snapshot_id)
    _check_inputs(products, snapshot_id, modalities)
    train, evaluation = stratified_split(products, settings.training.validation_share, settings.random_seed)
    use_image = "image" in modalities
    fit_rows, tune_rows = stratified_split(train, settings.training.fusion_tune_share, settings.random_seed) if use_image else (train, None)

    timings: dict[str, float] = {}
    text_model = image_model = None
    if "text" in modalities:
        from rakuten_ml.models.text_model import TextClassifier

        started = time.perf_counter()
        text_model = TextClassifier(random_state=settings.random_seed).fit(fit_rows[TEXT_COLUMNS], fit_rows["prdtypecode"].to_numpy())
        timings["train_seconds_text"] = time.perf_counter() - started
    image_weight = settings.training.image_weight if "text" in modalities else 1.0
    fusion_scores: dict[float, float] = {}
    if use_image:
        from rakuten_ml.models.vision.ensemble import VisionEnsemble

        started = time.perf_counter()
        image_model = VisionEnsemble(vision_config(settings)).fit(
            fit_rows["image_key"].tolist(), fit_rows["prdtypecode"].tolist(),
            tune_rows["image_key"].tolist(), tune_rows["prdtypecode"].tolist(),
            store=platform.store, snapshot_id=snapshot_id,
            train_ids=fit_rows["productid"].tolist(), val_ids=tune_rows["productid"].tolist(),
        )
        timings["train_seconds_image"] = time.perf_counter() - started
        if text_model is not None:
            tuner = FusedClassifier(
                text_model=text_model, image_model=image_model, image_weight=image_weight,
                confidence_threshold=settings.training.confidence_threshold,
            )
            p_text, p_image, has_text, has_image = tuner.modality_probabilities(tune_rows[TEXT_COLUMNS], tune_rows["image_key"].tolist(), platform.store)
            search = search_image_weight(p_text, p_image, has_text, has_image, DEFAULT_MAPPING.encode(tune_rows["prdtypecode"]), default=settings.training.image_weight)
            image_weight, fusion_scores = search.best_weight, search.scores
    classifier = FusedClassifier(
        text_model=text_model, image_model=image_model, image_weight=image_weight,
        confidence_threshold=settings.training.confidence_threshold, mapping=DEFAULT_MAPPING,
        metadata={"snapshot_id": snapshot_id, "modalities": list(modalities)},
    )

    y_eval = evaluation["prdtypecode"].to_numpy()
    images = evaluation["image_key"].tolist() if use_image else None
    p_text, p_image, has_text, has_image = classifier.modality_probabilities(evaluation[TEXT_COLUMNS], images, platform.store)
    proba, modality = fuse_probabilities(p_text, p_image, has_text, has_image, image_weight)
    report = evaluate_proba(y_eval, proba, DEFAULT_MAPPING, settings.training.confidence_threshold)
    by_modality: dict[str, EvaluationReport] = {}
    if p_text is not None and p_image is not None:
        by_modality = {
            "text only": evaluate_proba(y_eval, p_text, DEFAULT_MAPPING, settings.training.confidence_threshold),
            "image only (soft vote)": evaluate_proba(y_eval, p_image, DEFAULT_MAPPING, settings.training.confidence_threshold),
            f"fused (w_img={image_weight:.1f})": report,
        }
    robustness = _robustness(classifier, evaluation, platform) if use_image else {}
    metrics = dict(report.metrics) | timings
    metrics |= {f"{name.split(' ')[0]}_f1_weighted": sub.metrics["f1_weighted"] for name, sub in by_modality.items()}
    metrics |= {f"robustness_f1_{name}": value for name, value in robustness.items()}
    if image_model is not None:
        metrics |= {f"vision_val_f1_{member}": value for member, value in image_model.member_metrics_.items()}
    metrics["share_fused"] = float(np.mean(modality == "fused"))

    configure_mlflow(settings)
    tags = {
        SNAPSHOT_TAG: snapshot_id,
        GIT_COMMIT_TAG: git_commit(),
        DAG_RUN_TAG: dag_run_id or "",
        TRIGGER_REASON_TAG: reason,
        "modalities": ",".join(modalities),
    }
    params: dict[str, Any] = {
        "snapshot_id": snapshot_id,
        "modalities": list(modalities),
        "n_train": len(fit_rows),
        "n_tune": 0 if tune_rows is None else len(tune_rows),
        "n_eval": len(evaluation),
        "split_seed": settings.random_seed,
        "validation_share": settings.training.validation_share,
        "image_weight": image_weight,
        "confidence_threshold": settings.training.confidence_threshold,
    }
    if text_model is not None:
        params |= {f"text.{k}": v for k, v in text_model.get_params().items()}
    if image_model is not None:
        config = image_model.config
        params |= {"vision.profile": settings.vision.profile, "vision.backbones": config.backbones, "vision.weights": config.weights,
                   "vision.image_size": config.image_size, "vision.max_epochs": config.max_epochs}
    context = {"snapshot": snapshot_id, "modalities": ", ".join(modalities), "evaluation rows": len(evaluation), "image weight": image_weight}
    with registry_errors(settings.mlflow_tracking_uri, f"start the training run of {snapshot_id}", then=RERUN_TRAINING):
        run = mlflow.start_run(run_name=f"train-{snapshot_id}")
    try:
        registered = log_and_register(
            classifier,
            settings,
            example=evaluation[TEXT_COLUMNS].head(5).assign(image=""),
            params=params,
            metrics=metrics,
            tags=tags,
            json_artifacts={
                EVALUATION_REPORT: report.to_dict() | {"fusion_weight_scores": {str(k): v for k, v in fusion_scores.items()}, "robustness": robustness},
                EVALUATION_PRODUCTIDS: {"snapshot_id": snapshot_id, "productids": evaluation["productid"].astype(int).tolist()},
                "label_mapping.json": {"codes": list(DEFAULT_MAPPING.codes)},
            },
            text_artifacts={EVALUATION_MARKDOWN: markdown_report(report, title=f"Evaluation of {settings.registered_model_name} on {snapshot_id}", context=context, modality_reports=by_modality, robustness=robustness)},
            figures={
                CONFUSION_FIGURE: confusion_matrix_figure(report.confusion, DEFAULT_MAPPING.codes),
                RELIABILITY_FIGURE: reliability_figure(proba, DEFAULT_MAPPING.encode(y_eval)),
            },
        )
    except BaseException:
        _end_run("FAILED")
        raise
    _end_run("FINISHED")
    log.info("trained %s on %s: weighted F1 %.4f, version %s", "+".join(modalities), snapshot_id, metrics["f1_weighted"], registered.version)
    return TrainResult(snapshot_id, run.info.run_id, registered.name, registered.version, metrics)
