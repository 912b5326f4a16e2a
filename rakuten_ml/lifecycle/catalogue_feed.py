"""The catalogue as it grows day after day: each day's new products are appended to the export files.

The upstream export rewrites ``X_train_update.csv`` / ``Y_train_CVw08PX.csv`` with every product so far
and adds the new photos; each batch is a :class:`CatalogueSpec` of its own (its own seed, so disjoint
ids), and the generator is deterministic, so the files are rebuilt from the specs instead of re-read.
Held-out products (live traffic) are drawn the same way but never published.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from rakuten_ml.catalogue.generator import IMAGE_DIR, X_FILE, Y_FILE, CatalogueSpec, generate_catalogue, generate_frames, image_key
from rakuten_ml.storage.object_store import ObjectStore


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(lineterminator="\n").encode("utf-8")


def publish(store: ObjectStore, prefix: str, batches: Sequence[CatalogueSpec]) -> int:
    """Write the newest batch's photos, then export files holding every batch; returns the product count."""
    generate_catalogue(store, prefix, batches[-1])
    frames = [generate_frames(spec) for spec in batches]
    x = pd.concat([f[0] for f in frames], ignore_index=True)
    y = pd.concat([f[1] for f in frames], ignore_index=True)
    base = prefix.strip("/")
    store.put_bytes(f"{base}/{X_FILE}" if base else X_FILE, _csv(x))
    store.put_bytes(f"{base}/{Y_FILE}" if base else Y_FILE, _csv(y))
    return len(x)


def held_out(store: ObjectStore, prefix: str, spec: CatalogueSpec) -> tuple[pd.DataFrame, dict[int, bytes]]:
    """Products the platform has never seen (rows with their true class) and their photos' bytes."""
    generate_catalogue(store, prefix, spec)
    x, y = generate_frames(spec)
    products = x.assign(prdtypecode=y["prdtypecode"].to_numpy())
    images = {int(r.productid): store.get_bytes(image_key(prefix, int(r.imageid), int(r.productid))) for r in x.itertuples()}
    return products, images


def relabel(store: ObjectStore, source_prefix: str, target_prefix: str, noisy: Sequence[CatalogueSpec]) -> None:
    """A bad export: the same products and photos under ``target_prefix``, with the specs' (noisy) labels."""
    frames = [generate_frames(spec) for spec in noisy]
    x = pd.concat([f[0] for f in frames], ignore_index=True)
    y = pd.concat([f[1] for f in frames], ignore_index=True)
    src, dst = source_prefix.strip("/"), target_prefix.strip("/")
    for info in store.list(f"{src}/{IMAGE_DIR}/"):
        store.put_bytes(dst + info.key[len(src):], store.get_bytes(info.key))
    store.put_bytes(f"{dst}/{X_FILE}", _csv(x))
    store.put_bytes(f"{dst}/{Y_FILE}", _csv(y))
