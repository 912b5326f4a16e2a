"""A torch ``Dataset`` over product images given as bytes or object-store keys, loaded lazily.

Snapshots hold tens of thousands of images: reading them when a batch needs them (in DataLoader
workers) keeps memory flat. A missing or corrupt image yields a zero tensor flagged unusable, so
one bad row never fails an epoch and callers mask it out.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rakuten_ml.cpus import available_cpus
from rakuten_ml.errors import ConfigurationError, ObjectNotFoundError
from rakuten_ml.models.vision.preprocessing import build_transform, preprocess
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

ImageItem = bytes | str | None
"""Encoded image bytes, an object-store key of them, or ``None`` when the product has no image."""

NO_LABEL = -1
# libjpeg's reduced-scale decoding goes down to 1/8; keep twice the input side so the resize still
# averages several source pixels per output pixel.
DRAFT_FACTOR = 2

_POOL_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}  # per process id: a forked DataLoader worker gets its own


def decode_pool() -> ThreadPoolExecutor:
    """This process's threads for image preprocessing: libjpeg decoding and PIL's crops and resizes
    release the GIL, so a batch is decoded on every core instead of one."""
    pid = os.getpid()
    with _POOL_LOCK:
        if pid not in _POOLS:
            _POOLS[pid] = ThreadPoolExecutor(max_workers=available_cpus(), thread_name_prefix="image-decode")
        return _POOLS[pid]


def check_items(items: Sequence[ImageItem], store: ObjectStore | None) -> None:
    """Fail early (not inside a worker) when keys are given without a store to read them from."""
    if store is None and any(isinstance(item, str) for item in items):
        raise ConfigurationError(
            "images were given as object-store keys but no store was passed; pass store=... or give the image bytes"
        )


def load_image_bytes(item: ImageItem, store: ObjectStore | None) -> bytes | None:
    """The encoded bytes of one item; ``None`` for an absent image or a key the store does not hold.

    Other store errors (unreachable endpoint, missing bucket) propagate: they are infrastructure
    failures, not one bad product.
    """
    if item is None or isinstance(item, bytes):
        return item
    if store is None:
        raise ConfigurationError(f"image key {item!r} needs an object store; pass store=...")
    try:
        return store.get_bytes(item)
    except ObjectNotFoundError:
        log.warning("image %s not found in %s; row marked unusable", item, store.url)
        return None


class ImageDataset(Dataset[tuple[torch.Tensor, int, bool]]):
    """Items -> ``(uint8 tensor (3, size, size), label index or -1, usable)``; see ``normalize_batch``."""

    def __init__(
        self,
        items: Sequence[ImageItem],
        labels: Sequence[int] | np.ndarray | None = None,
        *,
        image_size: int,
        train: bool = False,
        store: ObjectStore | None = None,
    ) -> None:
        if labels is not None and len(labels) != len(items):
            raise ConfigurationError(f"{len(items)} images but {len(labels)} labels; pass one label per image")
        check_items(items, store)
        self.items = items
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.image_size = image_size
        self.store = store
        self.transform = build_transform(image_size, train=train)

    def __len__(self) -> int:
        return len(self.items)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int, bool]]:
        """A whole batch at once (the DataLoader's batched fetch), preprocessed on a thread pool."""
        if len(indices) < 2:
            return [self[i] for i in indices]
        return list(decode_pool().map(self.__getitem__, indices))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, bool]:
        tensor = self.decode(load_image_bytes(self.items[index], self.store))
        label = NO_LABEL if self.labels is None else int(self.labels[index])
        if tensor is None:
            return torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8), label, False
        return tensor, label, True

    def decode(self, data: bytes | None) -> torch.Tensor | None:
        """Encoded bytes -> uint8 tensor (3, size, size) as this dataset preprocesses them; ``None`` when unusable."""
        return preprocess(data, self.transform, draft_size=DRAFT_FACTOR * self.image_size)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    device: torch.device,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """DataLoader with pinned memory on CUDA (faster host->GPU copies) and a seeded shuffle."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        generator=generator,
        drop_last=drop_last,
    )


def balanced_class_weights(y_idx: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (k * count_c)`` for the k classes present, 0 for absent ones (they have no examples).

    The catalogue is imbalanced 1:13 (report 1.2); without weights the rare classes are never predicted.
    """
    counts = np.bincount(np.asarray(y_idx, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
