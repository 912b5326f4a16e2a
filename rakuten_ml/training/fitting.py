"""Fitting the classifier on a split snapshot: the text model, the vision ensemble, and the fusion
weight and fused rows' temperature chosen on the tune rows (never on the evaluation rows, which judge the result)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rakuten_ml.errors import TrainingError
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.calibration import fit_temperature
from rakuten_ml.models.fusion import MODALITY_FUSED, FusedClassifier, fuse_probabilities
from rakuten_ml.models.fusion_tuning import search_image_weight
from rakuten_ml.settings import Settings
from rakuten_ml.storage.object_store import ObjectStore

if TYPE_CHECKING:  # torch and sklearn load only when a modality is trained
    from rakuten_ml.models.text_model import TextClassifier
    from rakuten_ml.models.vision.ensemble import VisionEnsemble

log = logging.getLogger(__name__)

TEXT_COLUMNS = ["designation", "description"]
MIN_TEMPERATURE_ROWS = 50  # fewer fused tune rows: too few to fit a temperature on, the fused rows keep 1.0


@dataclass(frozen=True)
class TrainingSplit:
    """The rows of one training: ``fit`` trains, ``tune`` (image modality only) early-stops the vision
    members and picks the fusion weight, ``evaluation`` is held out for the report and the gate."""

    snapshot_id: str
    fit: pd.DataFrame
    tune: pd.DataFrame | None
    evaluation: pd.DataFrame


@dataclass(frozen=True)
class FittedClassifier:
    classifier: FusedClassifier
    text_model: TextClassifier | None
    image_model: VisionEnsemble | None
    fusion_scores: dict[float, float] = field(default_factory=dict)  # tune-set weighted F1 per image weight tried
    timings: dict[str, float] = field(default_factory=dict)


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
        kept: dict[str, Any] = {name: {m: v for m, v in getattr(config, name).items() if m in members}
                                for name in ("backbones", "weights", "weights_paths", "backbone_kwargs")}
        config = dataclasses.replace(config, **kept)
    config.validate()
    return config


def fit_classifier(split: TrainingSplit, modalities: Sequence[str], settings: Settings, store: ObjectStore) -> FittedClassifier:
    """Fit the requested modalities on ``split.fit``; with both, the image weight is searched on ``split.tune``."""
    fit_rows, tune_rows = split.fit, split.tune
    timings: dict[str, float] = {}
    text_model = _fit_text(fit_rows, settings, timings) if "text" in modalities else None
    image_model = None
    image_weight = settings.training.image_weight if text_model is not None else 1.0
    fusion_scores: dict[float, float] = {}
    if "image" in modalities:
        if tune_rows is None:
            raise TrainingError("the image modality needs tune rows to early-stop on: split the snapshot with tune rows")
        image_model = _fit_vision(split, tune_rows, settings, store, timings)
    classifier = FusedClassifier(
        text_model=text_model, image_model=image_model, image_weight=image_weight,
        confidence_threshold=settings.training.confidence_threshold, mapping=DEFAULT_MAPPING,
        metadata={"snapshot_id": split.snapshot_id, "modalities": list(modalities)},
    )
    if image_model is not None and text_model is not None:
        assert tune_rows is not None  # checked above
        _tune_fusion(classifier, tune_rows, settings, store, fusion_scores)
    return FittedClassifier(classifier, text_model, image_model, fusion_scores, timings)


def _fit_text(rows: pd.DataFrame, settings: Settings, timings: dict[str, float]) -> TextClassifier:
    from rakuten_ml.models.text_model import TextClassifier

    started = time.perf_counter()
    model = TextClassifier(random_state=settings.random_seed).fit(rows[TEXT_COLUMNS], rows["prdtypecode"].to_numpy())
    timings["train_seconds_text"] = time.perf_counter() - started
    return model


def _fit_vision(
    split: TrainingSplit, tune_rows: pd.DataFrame, settings: Settings, store: ObjectStore, timings: dict[str, float]
) -> VisionEnsemble:
    from rakuten_ml.models.vision.ensemble import VisionEnsemble

    fit_rows = split.fit
    started = time.perf_counter()
    model = VisionEnsemble(vision_config(settings)).fit(
        fit_rows["image_key"].tolist(), fit_rows["prdtypecode"].tolist(),
        tune_rows["image_key"].tolist(), tune_rows["prdtypecode"].tolist(),
        store=store, snapshot_id=split.snapshot_id,
        train_ids=fit_rows["productid"].tolist(), val_ids=tune_rows["productid"].tolist(),
    )
    timings["train_seconds_image"] = time.perf_counter() - started
    return model


def _tune_fusion(
    classifier: FusedClassifier, tune_rows: pd.DataFrame, settings: Settings, store: ObjectStore, scores: dict[float, float]
) -> None:
    """Set the image weight with the best weighted F1 on the tune rows (``scores`` gets every weight tried),
    then the temperature that calibrates the fused rows at that weight."""
    p_text, p_image, has_text, has_image = classifier.modality_probabilities(tune_rows[TEXT_COLUMNS], tune_rows["image_key"].tolist(), store)
    if p_text is None or p_image is None:
        raise TrainingError("the fusion weight needs both modalities' probabilities on the tune rows")
    y_idx = DEFAULT_MAPPING.encode(tune_rows["prdtypecode"])
    search = search_image_weight(p_text, p_image, has_text, has_image, y_idx, default=settings.training.image_weight)
    classifier.image_weight = search.best_weight
    scores.update(search.scores)
    proba, modality = fuse_probabilities(p_text, p_image, has_text, has_image, classifier.image_weight)
    fused = modality == MODALITY_FUSED
    if fused.sum() >= MIN_TEMPERATURE_ROWS:
        classifier.fused_temperature = fit_temperature(np.log(np.clip(proba[fused], 1e-12, None)), np.asarray(y_idx)[fused])
        log.info("fusion: image weight %.2f, fused rows' temperature %.3f", classifier.image_weight, classifier.fused_temperature)
