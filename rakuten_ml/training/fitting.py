"""Fitting the classifier on a split snapshot: the text model, the vision ensemble, and the fusion
weight chosen on the tune rows (never on the evaluation rows, which judge the result)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from rakuten_ml.errors import TrainingError
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.fusion import FusedClassifier
from rakuten_ml.models.fusion_tuning import search_image_weight
from rakuten_ml.settings import Settings
from rakuten_ml.storage.object_store import ObjectStore

if TYPE_CHECKING:  # torch and sklearn load only when a modality is trained
    from rakuten_ml.models.text_model import TextClassifier
    from rakuten_ml.models.vision.ensemble import VisionEnsemble

TEXT_COLUMNS = ["designation", "description"]


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
        if text_model is not None:
            image_weight, fusion_scores = _tune_image_weight(text_model, image_model, tune_rows, settings, store)
    classifier = FusedClassifier(
        text_model=text_model, image_model=image_model, image_weight=image_weight,
        confidence_threshold=settings.training.confidence_threshold, mapping=DEFAULT_MAPPING,
        metadata={"snapshot_id": split.snapshot_id, "modalities": list(modalities)},
    )
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


def _tune_image_weight(
    text_model: TextClassifier, image_model: VisionEnsemble, tune_rows: pd.DataFrame, settings: Settings, store: ObjectStore
) -> tuple[float, dict[float, float]]:
    """The image weight with the best weighted F1 on the tune rows, and the score of every weight tried."""
    tuner = FusedClassifier(
        text_model=text_model, image_model=image_model, image_weight=settings.training.image_weight,
        confidence_threshold=settings.training.confidence_threshold,
    )
    p_text, p_image, has_text, has_image = tuner.modality_probabilities(tune_rows[TEXT_COLUMNS], tune_rows["image_key"].tolist(), store)
    if p_text is None or p_image is None:
        raise TrainingError("the fusion weight needs both modalities' probabilities on the tune rows")
    search = search_image_weight(p_text, p_image, has_text, has_image, DEFAULT_MAPPING.encode(tune_rows["prdtypecode"]),
                                 default=settings.training.image_weight)
    return search.best_weight, search.scores
