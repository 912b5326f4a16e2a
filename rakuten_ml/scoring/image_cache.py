"""Image-model outputs of earlier scoring runs, reused when neither the photo nor the model changed.

The nightly run re-scores the whole catalogue with the champion, but most photos are the ones it saw
the night before, and the vision backbones are nearly all of a fused run's cost. Their output is a
function of (model version, inference precision and preprocessing, image bytes), so it is stored in
``image_scores`` under exactly that key (the bytes by their SHA-256, recorded at ingestion) and read
back instead of recomputed. Text, fusion, decisions and the written predictions are computed afresh
every run. A new model version, another precision (CUDA fp16, CPU bf16, int8) or a new preprocessing
version starts from an empty cache; unusable images are never stored, so they are retried each run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.models.vision.backbones import select_device
from rakuten_ml.models.vision.features import PREPROCESSING_VERSION
from rakuten_ml.storage.database import image_scores, upsert

log = logging.getLogger(__name__)

LOOKUP_CHUNK = 5_000  # digests per SELECT ... IN: bounded statement size on any database


def output_tag(image_model: Any) -> str | None:
    """What an image model's outputs depend on besides its version and the image: the precision it
    runs in here and the preprocessing code version. ``None`` for a model that does not say its precision."""
    config = getattr(image_model, "config", None)
    if config is None or not hasattr(image_model, "precision"):
        return None
    return f"{image_model.precision(select_device(config.device))}-p{PREPROCESSING_VERSION}"


@dataclass
class ImageScoreCache:
    """The stored image probabilities of one model version at one output tag."""

    engine: Engine
    model_name: str
    model_version: str
    tag: str
    hits: int = 0  # products scored with a stored output, counted by the caller once its prediction succeeded

    def lookup(self, digests: Sequence[str | None], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """``(found mask (n,), proba (n, n_classes))`` for the images' SHA-256 digests; rows without a
        digest or not stored yet are not found (their proba rows are zero)."""
        found = np.zeros(len(digests), dtype=bool)
        proba = np.zeros((len(digests), n_classes), dtype=np.float64)
        wanted = sorted({d for d in digests if isinstance(d, str) and d})
        stored: dict[str, bytes] = {}
        stmt = sa.select(image_scores.c.image_sha256, image_scores.c.proba).where(
            image_scores.c.model_name == sa.bindparam("name"),
            image_scores.c.model_version == sa.bindparam("version"),
            image_scores.c.precision == sa.bindparam("tag"),
            image_scores.c.image_sha256.in_(sa.bindparam("digests", expanding=True)),
        )
        params = {"name": self.model_name, "version": self.model_version, "tag": self.tag}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                rows = conn.execute(stmt, {**params, "digests": wanted[start : start + LOOKUP_CHUNK]})
                stored.update((digest, bytes(blob)) for digest, blob in rows)
        for i, digest in enumerate(digests):
            blob = stored.get(digest) if isinstance(digest, str) else None
            if blob is not None and len(blob) == 4 * n_classes:
                found[i] = True
                proba[i] = np.frombuffer(blob, dtype="<f4")
        return found, proba

    def save(self, digests: Sequence[str | None], proba: np.ndarray, usable: np.ndarray) -> int:
        """Store the usable rows that have a digest (upsert: concurrent partitions may meet the same photo)."""
        now = datetime.now(UTC)
        rows = {
            digest: {
                "model_name": self.model_name, "model_version": self.model_version, "precision": self.tag,
                "image_sha256": digest, "proba": np.asarray(row, dtype="<f4").tobytes(), "created_at": now,
            }
            for digest, row, ok in zip(digests, proba, usable, strict=True)
            if ok and isinstance(digest, str) and digest
        }
        return upsert(self.engine, image_scores, list(rows.values()))


def prune_image_scores(engine: Engine, model_name: str, keep_versions: Sequence[str]) -> int:
    """Drop the stored outputs of ``model_name``'s versions other than ``keep_versions`` (the ones a
    run pins): a retired version's photos would never be read again."""
    stmt = sa.delete(image_scores).where(
        image_scores.c.model_name == sa.bindparam("name"),
        image_scores.c.model_version.not_in(sa.bindparam("keep", expanding=True)),
    )
    with engine.begin() as conn:
        deleted = conn.execute(stmt, {"name": model_name, "keep": list(keep_versions)}).rowcount or 0
    if deleted:
        log.info("dropped %d stored image outputs of retired versions of %s", deleted, model_name)
    return int(deleted)
