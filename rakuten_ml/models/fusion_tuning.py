"""Choosing the late-fusion image weight on validation, as the seed did (50/50 ... 90/10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from rakuten_ml.models.fusion import fuse_probabilities

DEFAULT_GRID = tuple(round(w, 2) for w in np.arange(0.0, 1.0001, 0.1))


@dataclass(frozen=True)
class FusionSearch:
    best_weight: float
    scores: dict[float, float]  # image weight -> weighted F1 on validation


def search_image_weight(
    p_text: np.ndarray,
    p_image: np.ndarray,
    has_text: np.ndarray,
    has_image: np.ndarray,
    y_idx: np.ndarray,
    *,
    default: float,
    grid: tuple[float, ...] = DEFAULT_GRID,
) -> FusionSearch:
    """Weighted F1 for each image weight; ties go to the one closest to ``default`` (the seed's 0.6)."""
    scores: dict[float, float] = {}
    for weight in grid:
        fused, _ = fuse_probabilities(p_text, p_image, has_text, has_image, weight)
        scores[float(weight)] = float(f1_score(y_idx, fused.argmax(axis=1), average="weighted", zero_division=0))
    best = max(scores, key=lambda w: (round(scores[w], 6), -abs(w - default)))
    return FusionSearch(best, scores)
