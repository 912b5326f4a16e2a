"""Seeded samples the drift features are computed on, so a rerun of the day sees the same rows."""

from __future__ import annotations

import pandas as pd

from rakuten_ml.monitoring.features import image_statistics
from rakuten_ml.storage.object_store import ObjectNotFoundError, ObjectStore

# Rows per side the features are computed on: bounds the TF-IDF cost, and keeps KS power where
# p < 0.05 means a visible shift (D ~ 0.014 at 20K) instead of any difference at all.
DEFAULT_MAX_ROWS = 20_000
# Images per side for the image statistics: object-store reads dominate, and a per-image mean needs
# only a few hundred values for KS to see a brightness or colour-cast change.
DEFAULT_IMAGE_SAMPLE = 300


def sample_rows(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` rows (seeded, so a rerun of the day sees the same sample); None = all."""
    return frame.sample(n=n, random_state=seed) if n is not None and len(frame) > n else frame


def load_image_statistics(store: ObjectStore, products: pd.DataFrame, n: int, seed: int) -> pd.DataFrame | None:
    """Image statistics of up to ``n`` products that have an image; None when there are none."""
    if "image_key" not in products:
        return None
    with_image = products[products["image_key"].notna() & (products["image_key"].astype(str) != "")]
    if with_image.empty:
        return None
    images: list[bytes | None] = []
    for key in sample_rows(with_image, n, seed)["image_key"]:
        try:
            images.append(store.get_bytes(str(key)))
        except ObjectNotFoundError:
            images.append(None)
    return image_statistics(images)
