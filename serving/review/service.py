"""The review queue's services for one app: the queue, its metrics, the champion's top-3 of a card, and images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from rakuten_ml.errors import ObjectStoreError
from rakuten_ml.labels import CLASS_NAMES
from rakuten_ml.models.fusion import class_probabilities
from rakuten_ml.storage.database import labelled_products_table
from serving.review.metrics import ReviewMetrics
from serving.review.queue import ReviewQueue
from serving.routes.deps import ServingState

log = logging.getLogger(__name__)

TOP_K = 3


@dataclass(frozen=True)
class ClassChoice:
    prdtypecode: int
    name: str
    probability: float


@dataclass
class ReviewService:
    state: ServingState
    queue: ReviewQueue
    metrics: ReviewMetrics
    labelled_table: sa.Table | None
    _labelled_ready: bool = False

    @classmethod
    def build(cls, state: ServingState, *, ttl_s: float = 10.0) -> ReviewService:
        metrics = ReviewMetrics(state.metrics.registry)
        queue = ReviewQueue(lambda: state.platform.prepare().engine, lambda: state.platform.store, state.settings.review,
                            ttl_s=ttl_s, on_backlog=metrics.backlog.set)
        name = state.settings.ingest.labelled_products_table
        return cls(state, queue, metrics, labelled_products_table(name) if name else None)

    def labelled(self) -> sa.Table | None:
        """The labelled-products table, created on first use (the ingest DAG's init task may not have run yet)."""
        if self.labelled_table is not None and not self._labelled_ready:
            self.state.platform.init_labelled_products()
            self._labelled_ready = True
        return self.labelled_table

    def product(self, productid: int) -> dict[str, Any]:
        return dict(self.queue.products().loc[productid])

    def image(self, product: dict[str, Any]) -> bytes | None:
        key = product.get("image_key")
        if not isinstance(key, str) or not key:
            return None
        try:
            return self.state.platform.store.get_bytes(key)
        except ObjectStoreError as exc:
            log.warning("review image %s unreadable: %s", key, exc)
            return None

    def top_classes(self, product: dict[str, Any]) -> tuple[list[ClassChoice], str | None]:
        """The served champion's top-3 for the product (text and image from the snapshot), and its version."""
        champion = self.state.manager.models.champion
        if champion is None:
            return [], None
        frame = pd.DataFrame({"designation": [product.get("designation") or ""], "description": [product.get("description") or ""]})
        result = self.state.batcher.predict(champion.classifier, frame, [self.image(product)])
        matrix, classes = class_probabilities(result)
        proba = matrix[0]
        best = np.argsort(-proba, kind="stable")[:TOP_K]
        codes = [classes[j] for j in best]
        return [ClassChoice(code, CLASS_NAMES.get(code, str(code)), float(proba[j])) for code, j in zip(codes, best, strict=True)], champion.version
