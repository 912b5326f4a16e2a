"""The review queue's order: which unlabelled product a reviewer's label is worth most on (a pure function).

Disagreements first (champion and challenger split: a label there decides between them), then
uncertainty ``1 - confidence`` times a rarity boost: a class the models rarely predict has few true
labels, so each one there teaches the retraining and the per-class checks more. The boost of class
``c`` is ``1 / (n_classes * share_c)`` (1 at the uniform share), floored at 1 and capped at
``boost_cap`` (``RAKUTEN_REVIEW_RARE_CLASS_BOOST_CAP``): without the cap one product of a class
predicted once would outrank every uncertain product of the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rakuten_ml.labels import CLASS_CODES


@dataclass(frozen=True)
class QueueItem:
    """One product waiting for a label, with the prediction that queued it."""

    productid: int
    predicted_code: int
    confidence: float
    model_version: str | None
    disagreement: bool = False
    challenger_code: int | None = None


@dataclass(frozen=True)
class RankedItem:
    item: QueueItem
    priority: float  # (1 - confidence) * rarity boost; disagreements come first whatever their priority


def rarity_boost(share: float, *, boost_cap: float, n_classes: int = len(CLASS_CODES)) -> float:
    """Inverse frequency of a predicted class relative to the uniform share, in [1, boost_cap]."""
    if share <= 0.0:
        return boost_cap
    return min(boost_cap, max(1.0, 1.0 / (n_classes * share)))


def review_order(
    items: Iterable[QueueItem], class_share: Mapping[int, float], *, boost_cap: float, n_classes: int = len(CLASS_CODES)
) -> list[RankedItem]:
    """``items`` most valuable first: disagreements, then ``(1 - confidence) * boost``, then productid (stable)."""
    ranked = [
        RankedItem(
            item,
            (1.0 - min(1.0, max(0.0, item.confidence)))
            * rarity_boost(class_share.get(item.predicted_code, 0.0), boost_cap=boost_cap, n_classes=n_classes),
        )
        for item in items
    ]
    return sorted(ranked, key=lambda r: (not r.item.disagreement, -r.priority, r.item.productid))
