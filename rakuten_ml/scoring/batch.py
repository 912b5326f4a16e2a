"""Batch scoring: run the registered classifier over a snapshot's products and store predictions.

Predictions are upserted keyed by (run id, product id), so rerunning a run overwrites its
rows instead of duplicating them; a Parquet copy per run goes to the object store.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import ObjectNotFoundError
from rakuten_ml.platform import Platform
from rakuten_ml.registry.resolve import ResolvedModel, load_classifier, resolve_model
from rakuten_ml.storage.database import predictions as predictions_table
from rakuten_ml.storage.database import upsert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    run_id: str
    snapshot_id: str
    model_version: str
    n_scored: int
    n_fused: int
    n_text_only: int
    n_image_only: int
    n_unscorable: int
    n_auto: int
    parquet_key: str

    def summary(self) -> dict[str, object]:
        return asdict(self)


def _load_images(platform: Platform, keys: pd.Series) -> list[bytes | None]:
    images: list[bytes | None] = []
    for key in keys:
        if not isinstance(key, str) or not key:
            images.append(None)
            continue
        try:
            images.append(platform.store.get_bytes(key))
        except ObjectNotFoundError:
            log.warning("image %s vanished from the store: scoring that product on text alone", key)
            images.append(None)
    return images


def score_products(
    platform: Platform,
    *,
    run_id: str,
    snapshot_id: str | None = None,
    model: ResolvedModel | None = None,
    variant: str = "champion",
    batch_size: int = 2048,
) -> ScoreResult:
    """Score every product of a snapshot (latest by default) with one pinned model version."""
    settings = platform.settings
    snapshot_id = snapshot_id or latest_snapshot_id(platform.engine)
    model = model or resolve_model(settings)
    classifier = load_classifier(settings, model)
    products = load_products(platform.store, snapshot_id)
    needs_images = "image" in classifier.modalities
    scored_at = datetime.now(UTC)
    frames: list[pd.DataFrame] = []
    for start in range(0, len(products), batch_size):
        chunk = products.iloc[start : start + batch_size]
        images = _load_images(platform, chunk["image_key"]) if needs_images else None
        result = classifier.predict(chunk[["designation", "description"]], images)
        frames.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "productid": chunk["productid"].astype("int64").to_numpy(),
                    "model_name": model.name,
                    "model_version": model.version,
                    "variant": variant,
                    "prdtypecode": result["prdtypecode"].astype("int64").to_numpy(),
                    "confidence": result["probability"].astype(float).to_numpy(),
                    "decision": result["decision"].to_numpy(),
                    "modality": result["modality"].to_numpy(),
                    "scored_at": scored_at,
                }
            )
        )
    scored = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c.name for c in predictions_table.columns])
    upsert(platform.engine, predictions_table, scored.to_dict("records"))
    parquet_key = f"predictions/{run_id.replace(':', '_').replace('+', '_')}/predictions.parquet"
    buffer = io.BytesIO()
    scored.to_parquet(buffer, index=False)
    platform.store.put_bytes(parquet_key, buffer.getvalue())
    counts = scored["modality"].value_counts()
    result = ScoreResult(
        run_id=run_id,
        snapshot_id=snapshot_id,
        model_version=model.version,
        n_scored=len(scored),
        n_fused=int(counts.get("fused", 0)),
        n_text_only=int(counts.get("text", 0)),
        n_image_only=int(counts.get("image", 0)),
        n_unscorable=int(counts.get("none", 0)),
        n_auto=int((scored["decision"] == "auto").sum()),
        parquet_key=parquet_key,
    )
    log.info("scored %d products with %s v%s: %s", len(scored), model.name, model.version, result.summary())
    return result
