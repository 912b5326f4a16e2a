"""Late fusion of the text and image models into one classifier with one label mapping.

P = w_img * P_image + (1 - w_img) * P_text (seed: w_img = 0.6). A product without an image
(or whose image cannot be decoded) is decided by text alone, one without usable text by the
image alone, so a missing modality never blocks a prediction. Fused rows are then recalibrated by
one temperature fitted on the tune rows (:func:`recalibrate_fused`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from rakuten_ml.labels import DEFAULT_MAPPING, LabelMapping
from rakuten_ml.models.calibration import softmax

log = logging.getLogger(__name__)

MODALITY_FUSED = "fused"
MODALITY_TEXT = "text"
MODALITY_IMAGE = "image"
MODALITY_NONE = "none"
DECISION_AUTO = "auto"
DECISION_REVIEW = "review"
PROBA_PREFIX = "proba_"  # predict()'s per-class probability columns: proba_<prdtypecode>


class TextModel(Protocol):
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


ImageItem = bytes | str | None  # encoded image, an object-store key of one, or no image


class ImageModel(Protocol):
    def predict_proba_images(self, images: Sequence[ImageItem], store: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (n, n_classes), mask of rows whose image could be used); keys are read from ``store``."""
        ...


def fuse_probabilities(
    p_text: np.ndarray | None,
    p_image: np.ndarray | None,
    has_text: np.ndarray,
    has_image: np.ndarray,
    image_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted late fusion with per-row fallback to the modality that is present.

    Returns (probabilities, modality per row). Rows with neither modality get a uniform
    distribution and modality ``none`` so callers can flag them for review.
    """
    n = len(has_text)
    n_classes = (p_text if p_text is not None else p_image).shape[1]  # type: ignore[union-attr]
    use_text = has_text & (p_text is not None)
    use_image = has_image & (p_image is not None)
    fused = np.full((n, n_classes), 1.0 / n_classes)
    modality = np.full(n, MODALITY_NONE, dtype=object)
    both = use_text & use_image
    if both.any():
        fused[both] = image_weight * p_image[both] + (1.0 - image_weight) * p_text[both]  # type: ignore[index]
        modality[both] = MODALITY_FUSED
    text_only = use_text & ~use_image
    if text_only.any():
        fused[text_only] = p_text[text_only]  # type: ignore[index]
        modality[text_only] = MODALITY_TEXT
    image_only = use_image & ~use_text
    if image_only.any():
        fused[image_only] = p_image[image_only]  # type: ignore[index]
        modality[image_only] = MODALITY_IMAGE
    return fused, modality


def recalibrate_fused(proba: np.ndarray, modality: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` on the fused rows (single-modality rows keep their own calibration); argmax unchanged."""
    fused = modality == MODALITY_FUSED
    if temperature == 1.0 or not fused.any():
        return proba
    out = proba.copy()
    out[fused] = softmax(np.log(np.clip(proba[fused], 1e-12, None)), temperature)
    return out


def class_probabilities(result: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """The ``proba_<code>`` columns of a :meth:`FusedClassifier.predict` frame: (n, classes) matrix, their class codes."""
    columns = [c for c in result.columns if str(c).startswith(PROBA_PREFIX)]
    return result[columns].to_numpy(dtype=float), [int(str(c)[len(PROBA_PREFIX):]) for c in columns]


def has_usable_text(frame: pd.DataFrame) -> np.ndarray:
    designation = frame.get("designation", pd.Series([""] * len(frame), index=frame.index)).fillna("").astype(str)
    description = frame.get("description", pd.Series([""] * len(frame), index=frame.index)).fillna("").astype(str)
    return ((designation.str.strip() != "") | (description.str.strip() != "")).to_numpy()


@dataclass(kw_only=True)
class FusedClassifier:
    """The whole product classifier: what is registered, scored and served (its weight and threshold come
    from ``Settings.training`` when it is trained, and travel with it)."""

    text_model: TextModel | None = None
    image_model: ImageModel | None = None
    image_weight: float
    confidence_threshold: float
    mapping: LabelMapping = DEFAULT_MAPPING
    metadata: dict[str, Any] = field(default_factory=dict)
    # Averaging a sure text model with a hesitant image model leaves fused rows underconfident; one temperature
    # fitted on the tune rows makes their confidence an accuracy again (the label-free estimate relies on it).
    # 1.0 = none, the value of every version pickled before it existed.
    fused_temperature: float = 1.0

    @property
    def modalities(self) -> list[str]:
        return [name for name, m in (("text", self.text_model), ("image", self.image_model)) if m is not None]

    def modality_probabilities(
        self, frame: pd.DataFrame, images: Sequence[ImageItem] | None = None, store: Any = None
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
        """(P_text, P_image, has_text, has_image) before fusion: what tuning and reports compare."""
        has_text = has_usable_text(frame)
        p_text = self.text_model.predict_proba(frame) if self.text_model is not None else None
        p_image = None
        has_image = np.zeros(len(frame), dtype=bool)
        if self.image_model is not None and images is not None:
            p_image, has_image = self.image_model.predict_proba_images(images, store=store)
        return p_text, p_image, has_text, has_image

    def fuse(
        self, p_text: np.ndarray | None, p_image: np.ndarray | None, has_text: np.ndarray, has_image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`fuse_probabilities` at this model's weight, fused rows recalibrated by its temperature."""
        proba, modality = fuse_probabilities(p_text, p_image, has_text, has_image, self.image_weight)
        return recalibrate_fused(proba, modality, self.fused_temperature), modality

    def predict_proba(
        self, frame: pd.DataFrame, images: Sequence[ImageItem] | None = None, store: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.fuse(*self.modality_probabilities(frame, images, store))

    def predict(self, frame: pd.DataFrame, images: Sequence[ImageItem] | None = None, store: Any = None) -> pd.DataFrame:
        """One row per product: code, confidence, auto/review decision, modality and class probabilities."""
        proba, modality = self.predict_proba(frame, images, store)
        return self.result_frame(proba, modality, frame.index)

    def result_frame(self, proba: np.ndarray, modality: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """:meth:`predict`'s output from fused probabilities (batch scoring fuses stored image outputs too)."""
        best = proba.argmax(axis=1)
        confidence = proba[np.arange(len(proba)), best]
        decision = np.where((confidence >= self.confidence_threshold) & (modality != MODALITY_NONE), DECISION_AUTO, DECISION_REVIEW)
        out = pd.DataFrame(
            {
                "prdtypecode": self.mapping.decode(best),
                "probability": confidence.astype(float),
                "decision": decision,
                "modality": modality.astype(str),
            },
            index=index,
        )
        probabilities = pd.DataFrame(proba, columns=[f"{PROBA_PREFIX}{c}" for c in self.mapping.codes], index=index)
        return pd.concat([out, probabilities], axis=1)
