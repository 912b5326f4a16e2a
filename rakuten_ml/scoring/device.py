"""Inference placement: CUDA when present, and a batch size that fits the GPU's free memory."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch

from rakuten_ml.models.vision.backbones import select_device

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 64
MIN_BATCH, MAX_BATCH = 8, 1024
# Activation memory of one 224 px image through the ensemble's three backbones in fp16 is
# ~20 MiB at peak (ResNet-50 dominates); keep half the free memory for the allocator's slack.
BYTES_PER_IMAGE_224 = 20 * 1024**2
MEMORY_SHARE = 0.5


def auto_batch_size(device: torch.device, image_size: int) -> int:
    """Largest power of two whose estimated activations fit in half the free GPU memory."""
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    free, _total = torch.cuda.mem_get_info(device)
    per_image = BYTES_PER_IMAGE_224 * (image_size / 224) ** 2
    fitting = int(free * MEMORY_SHARE / per_image)
    size = MIN_BATCH
    while size * 2 <= min(fitting, MAX_BATCH):
        size *= 2
    log.info("GPU has %.1f GiB free: batch size %d at %d px", free / 1024**3, size, image_size)
    return size


def tune_image_model(image_model: Any, *, num_workers: int, cpu_bf16: str, cpu_graphs: str) -> None:
    """Set the inference batch size, DataLoader workers and CPU precision of a loaded vision ensemble
    in place: what suits the machine that scores, not the one that trained.

    ``cpu_graphs="auto"`` also builds fused CPU graphs where they are faster at that batch size
    (:mod:`rakuten_ml.models.vision.cpu_graphs`): worth it for batch scoring, not for the small
    micro-batches of online serving, where they mostly lose.
    """
    if image_model is None or not hasattr(image_model, "config"):
        return
    from rakuten_ml.models.vision.features import resolve_cpu_bf16

    config = image_model.config
    batch = auto_batch_size(select_device(), config.image_size)
    image_model.config = dataclasses.replace(
        config, inference_batch_size=batch, num_workers=num_workers, cpu_bf16=resolve_cpu_bf16(cpu_bf16)
    )
    if hasattr(image_model, "prepare"):
        image_model.prepare(cpu_graph_batch=batch if cpu_graphs == "auto" else None)


def halve_batch_size(image_model: Any) -> bool:
    """After a CUDA out-of-memory error: retry with half the batch; False when already minimal."""
    config = image_model.config
    if config.inference_batch_size <= MIN_BATCH:
        return False
    image_model.config = dataclasses.replace(config, inference_batch_size=config.inference_batch_size // 2)
    torch.cuda.empty_cache()
    log.warning("CUDA out of memory: retrying with batch size %d", image_model.config.inference_batch_size)
    return True
