"""Inference placement: CUDA when present, and a batch size that fits the GPU's free memory."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch

from rakuten_ml.cpus import available_cpus
from rakuten_ml.models.vision.backbones import select_device
from rakuten_ml.models.vision.onnx_cache import OnnxExportCache
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)

CPU_BATCH_SIZE = 64
MIN_BATCH, MAX_BATCH = 8, 1024
# Activation memory of one 224 px image through the ensemble's three backbones in fp16 is
# ~20 MiB at peak (ResNet-50 dominates); keep half the free memory for the allocator's slack.
BYTES_PER_IMAGE_224 = 20 * 1024**2
MEMORY_SHARE = 0.5
MAX_GPU_DECODING_WORKERS = 8
# A decoding worker takes a core from the networks and contends for memory bandwidth: it must be
# expected to pay for that clearly (measured: an expected 1.13x was a 0.94x).
MIN_PIPELINE_GAIN = 1.15


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


def onnx_export_cache(settings: Settings) -> OnnxExportCache | None:
    """The settings' ONNX export cache (default ``<home>/cache/onnx``), or ``None`` where it is off
    (``vision_onnx_cache_mb=0``)."""
    if settings.vision.onnx_cache_mb == 0:
        return None
    directory = (settings.vision.onnx_cache_dir or settings.home / "cache" / "onnx").expanduser()
    return OnnxExportCache(directory, settings.vision.onnx_cache_mb * 1024**2)


def tune_image_model(
    image_model: Any, *, num_workers: int | None, cpu_bf16: str, cpu_runtime: str, cpu_int8: str,
    probe_batch: int | None = None, onnx_cache: OnnxExportCache | None = None,
) -> None:
    """Set the inference batch size, DataLoader workers and CPU precision of a loaded vision ensemble
    in place: what suits the machine that scores, not the one that trained. ``num_workers=None``
    chooses the decoding workers by measurement (:func:`decoding_workers`).

    On the CPU, ``cpu_runtime`` ``auto`` also runs each network in ONNX Runtime where that is faster
    at ``probe_batch`` images (default: the inference batch size), timed at load; ``cpu_int8="on"``
    quantizes them where the predictions survive it (:mod:`rakuten_ml.models.vision.onnx_runtime`);
    ``onnx_cache`` keeps the exports for the next load.
    """
    if image_model is None or not hasattr(image_model, "config"):
        return
    from rakuten_ml.models.vision.features import resolve_cpu_bf16

    if torch.get_num_threads() > available_cpus():  # torch counts the node's cores, not a container's CPU limit
        torch.set_num_threads(available_cpus())
    config = image_model.config
    batch = auto_batch_size(select_device(), config.image_size)
    image_model.config = dataclasses.replace(
        config, inference_batch_size=batch, num_workers=num_workers or 0, cpu_bf16=resolve_cpu_bf16(cpu_bf16)
    )
    if hasattr(image_model, "prepare"):
        image_model.prepare(runtime_batch=probe_batch or batch, runtime=cpu_runtime, int8=cpu_int8 == "on",
                            onnx_cache=onnx_cache)
    if num_workers is None:
        workers = decoding_workers(image_model, batch)
        image_model.config = dataclasses.replace(image_model.config, num_workers=workers)


def decoding_workers(image_model: Any, batch: int) -> int:
    """DataLoader worker processes for batch scoring: decoding in them overlaps the networks.

    On a GPU the networks are never the CPU's bottleneck: decode on all cores but one. On the CPU the
    networks and decoding share the cores. Between batches, on the main process's thread pool, a photo
    costs ``decode + networks``; in one worker beside networks given the other cores, about
    ``max(decode, networks * cores / (cores - 1))``. The worker is used where that is at least
    :data:`MIN_PIPELINE_GAIN` times faster: on 2 cores, int8 ResNet-18 at 64 px went from 548 to 748
    photos/s, while fp32 and bf16 backbones, which cost more than decoding, lost 7-20% that way.
    """
    cores = available_cpus()
    device = select_device(image_model.config.device)
    if device.type == "cuda":
        return max(1, min(cores - 1, MAX_GPU_DECODING_WORKERS))
    measured = image_model.seconds_per_image(batch) if hasattr(image_model, "seconds_per_image") else None
    if measured is None or cores < 2:
        return 0
    decode, networks = measured
    gain = (decode + networks) / max(decode, networks * cores / (cores - 1))
    if gain < MIN_PIPELINE_GAIN:
        log.info("decoding %.2f ms, networks %.2f ms per photo: a decoding worker would gain %.2fx; decoding "
                 "between batches, %d torch threads", decode * 1e3, networks * 1e3, gain, torch.get_num_threads())
        return 0
    threads = cores - 1
    torch.set_num_threads(threads)  # this process scores: its torch threads are the networks'
    image_model.set_cpu_threads(threads)
    log.info("decoding %.2f ms, networks %.2f ms per photo: 1 decoding worker beside %d inference thread(s) "
             "(%.2fx expected)", decode * 1e3, networks * 1e3, threads, gain)
    return 1


def halve_batch_size(image_model: Any) -> bool:
    """After a CUDA out-of-memory error: retry with half the batch; False when already minimal."""
    config = image_model.config
    if config.inference_batch_size <= MIN_BATCH:
        return False
    image_model.config = dataclasses.replace(config, inference_batch_size=config.inference_batch_size // 2)
    torch.cuda.empty_cache()
    log.warning("CUDA out of memory: retrying with batch size %d", image_model.config.inference_batch_size)
    return True
