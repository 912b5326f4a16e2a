"""Frozen-backbone feature extraction in batches, and its cache in the object store.

Report 4.1: features computed once and stored as arrays let the heads be retrained in minutes
without passing the images through the network again. The cache is one ``.npz`` per (snapshot,
backbone, image size, weights), so a new snapshot, architecture or checkpoint never reads stale
features, and a later call on the same snapshot reads it instead of running the backbone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from rakuten_ml.models.vision.backbones import Backbone
from rakuten_ml.models.vision.dataset import ImageDataset, ImageItem, make_loader
from rakuten_ml.models.vision.preprocessing import normalize_batch
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

FEATURE_PREFIX = "features"
# Bump when preprocessing (crop, resize, normalisation) changes: cached features become stale.
PREPROCESSING_VERSION = 1
MISSING_IMAGE_ID = "none"
MIN_IMAGES_PER_WORKER_BATCHES = 2


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bfloat16 instructions (AVX-512 BF16 or AMX).

    oneDNN also *accepts* bf16 on plain AVX-512 (``mkldnn._is_mkldnn_bf16_supported()`` is true there),
    but emulates it: on such a CPU bf16 backbones run slower than fp32, so that is no test.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_cpu_bf16(choice: str) -> bool:
    """``auto`` -> bf16 where the CPU supports it natively; ``on``/``off`` force it."""
    if choice == "auto":
        return cpu_has_native_bf16()
    return choice == "on"


def autocast(device: torch.device, cpu_bf16: bool = False) -> contextlib.AbstractContextManager[None]:
    """fp16 autocast on CUDA (tensor cores, half the memory); on CPU bf16 when asked, else fp32.

    bf16 keeps fp32's range, so features need no scaling; on CPUs with native bf16 the backbones
    run about twice as fast (benchmarks/RESULTS.md gives the top-1 agreement with fp32).
    """
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cpu_bf16 and device.type == "cpu")


def precision_tag(device: torch.device, cpu_bf16: bool) -> str:
    """What the features were computed in: part of their cache key, so precisions never mix."""
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_bf16 else "fp32"


def usable_rows(x: torch.Tensor, ok: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The usable rows on ``device``; the whole (pinned) batch is copied first so the copy can be async."""
    return x.to(device, non_blocking=True)[ok.to(device)]


def model_input(x: torch.Tensor, ok: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The usable rows on ``device``; a uint8 image batch is normalised there, float inputs
    (frozen features for the heads) pass as they are."""
    rows = usable_rows(x, ok, device)
    return normalize_batch(rows) if rows.dtype == torch.uint8 else rows


def run_loader(
    modules: Mapping[str, nn.Module], loader: DataLoader, device: torch.device, cpu_bf16: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pass the usable rows of an unshuffled loader of ``(x, label, usable)`` through each module.

    Returns ``({name: float32 (n, module.output_dim)}, usable mask)``; unusable rows stay zero.
    """
    n = len(loader.dataset)  # type: ignore[arg-type]
    outputs = {name: np.zeros((n, output_dim(module)), dtype=np.float32) for name, module in modules.items()}
    usable = np.zeros(n, dtype=bool)
    for module in modules.values():
        if module.training:  # eval() walks every submodule: skip it when already in eval mode
            module.eval()
    start = 0
    with torch.inference_mode():
        for x, _labels, ok in loader:
            rows = start + np.flatnonzero(ok.numpy())
            start += len(ok)
            if rows.size == 0:
                continue
            usable[rows] = True
            x = model_input(x, ok, device)
            with autocast(device, cpu_bf16):
                for name, module in modules.items():
                    outputs[name][rows] = module(x).float().cpu().numpy()
    return outputs, usable


def output_dim(network: torch.nn.Module) -> int:
    """Width of a network's output: every network here (backbones, the fine-tuned member, ONNX sessions)
    says it in ``output_dim``, which torch's typing sees as a Tensor or Module attribute."""
    return int(cast(int, network.output_dim))


def run_batches(
    modules: Mapping[str, nn.Module],
    images: Sequence[ImageItem],
    *,
    image_size: int,
    device: torch.device,
    batch_size: int,
    store: ObjectStore | None = None,
    num_workers: int = 0,
    cpu_bf16: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`run_loader` over images: each one is decoded once for all modules."""
    dataset = ImageDataset(images, image_size=image_size, store=store)
    # A worker process overlaps decoding with the networks from the second batch on; for fewer images
    # (a nightly rerun's few new photos, a serving micro-batch) its start-up costs more than it overlaps.
    workers = num_workers if len(images) > MIN_IMAGES_PER_WORKER_BATCHES * batch_size else 0
    loader = make_loader(dataset, batch_size=batch_size, device=device, num_workers=workers)
    return run_loader(modules, loader, device, cpu_bf16)


@dataclass
class FeatureExtractor:
    """A frozen, headless backbone turning images into pooled feature vectors."""

    backbone: Backbone
    image_size: int
    batch_size: int = 64
    num_workers: int = 0
    cpu_bf16: bool = False

    def extract(
        self, images: Sequence[ImageItem], store: ObjectStore | None = None, device: torch.device | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(features float32 (n, num_features), usable mask)``."""
        device = device or torch.device("cpu")
        self.backbone.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack this overload
        started = time.perf_counter()
        outputs, usable = run_batches(
            {"features": self.backbone}, images, image_size=self.image_size, device=device,
            batch_size=self.batch_size, store=store, num_workers=self.num_workers, cpu_bf16=self.cpu_bf16,
        )
        log.info("%s: %d features of %d images in %.1fs", self.backbone.name, int(usable.sum()), len(images),
                 time.perf_counter() - started)
        return outputs["features"], usable


def feature_cache_key(snapshot_id: str, backbone_name: str, image_size: int, weights_tag: str, precision: str) -> str:
    """``features/<snapshot_id>/<backbone>-<size>-<weights_tag>-<precision>.npz`` (hub names' '/' made safe)."""
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", backbone_name)
    return f"{FEATURE_PREFIX}/{snapshot_id}/{safe_name}-{image_size}-{weights_tag}-{precision}.npz"


def image_row_ids(images: Sequence[ImageItem]) -> list[str]:
    """Cache row ids when the caller has no productids: the image's content hash (or its key).

    Features depend on the image only, so identical images share one row.
    """
    ids = []
    for item in images:
        if item is None:
            ids.append(MISSING_IMAGE_ID)
        elif isinstance(item, str):
            ids.append(f"key:{item}")
        else:
            ids.append(f"sha256:{hashlib.sha256(item).hexdigest()}")
    return ids


@dataclass(frozen=True)
class _CachedFeatures:
    row_ids: np.ndarray
    features: np.ndarray
    usable: np.ndarray

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, row_ids=self.row_ids, features=self.features, usable=self.usable,
                 preprocessing_version=np.int64(PREPROCESSING_VERSION))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> _CachedFeatures | None:
        """The cached arrays, or ``None`` when they were made by another preprocessing version."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as payload:
                if int(payload["preprocessing_version"]) != PREPROCESSING_VERSION:
                    return None
                return cls(payload["row_ids"].astype(str), payload["features"], payload["usable"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("unreadable feature cache (%s); it will be rebuilt", exc)
            return None


def cached_features(
    extractor: FeatureExtractor,
    images: Sequence[ImageItem],
    *,
    store: ObjectStore,
    snapshot_id: str,
    row_ids: Sequence[object] | None = None,
    device: torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``images`` read from the snapshot's cache; only rows it lacks are extracted and added.

    ``row_ids`` (the snapshot's productids) name the rows; without them rows are keyed by content.
    """
    ids = np.asarray([str(i) for i in row_ids] if row_ids is not None else image_row_ids(images), dtype=str)
    if len(ids) != len(images):
        raise ValueError(f"{len(images)} images but {len(ids)} row ids")
    backbone = extractor.backbone
    precision = precision_tag(device or torch.device("cpu"), extractor.cpu_bf16)
    key = feature_cache_key(snapshot_id, backbone.name, extractor.image_size, backbone.weights_tag, precision)
    cached = _CachedFeatures.from_bytes(store.get_bytes(key)) if store.exists(key) else None
    if cached is not None and cached.features.shape[1] != backbone.num_features:
        cached = None  # same name, other width (e.g. a kwarg changed): never mix
    known = {} if cached is None else {row_id: i for i, row_id in enumerate(cached.row_ids.tolist())}
    missing = [i for i, row_id in enumerate(ids.tolist()) if row_id not in known]
    if missing:
        first_of: dict[str, int] = {}
        for i in missing:  # duplicated ids (one image shared by products) are extracted once
            first_of.setdefault(str(ids[i]), i)
        first = list(first_of.values())
        features, usable = extractor.extract([images[i] for i in first], store=store, device=device)
        new = _CachedFeatures(ids[first], features, usable)
        cached = new if cached is None else _CachedFeatures(
            np.concatenate([cached.row_ids, new.row_ids]),
            np.concatenate([cached.features, new.features]),
            np.concatenate([cached.usable, new.usable]),
        )
        store.put_bytes(key, cached.to_bytes())
        known = {row_id: i for i, row_id in enumerate(cached.row_ids.tolist())}
        log.info("feature cache %s: %d rows extracted, %d in total", key, len(first), len(known))
    else:
        log.info("feature cache hit %s: %d rows", key, len(ids))
    assert cached is not None
    index = np.fromiter((known[row_id] for row_id in ids.tolist()), dtype=np.int64, count=len(ids))
    return cached.features[index], cached.usable[index]
