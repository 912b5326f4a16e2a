"""How a fitted vision ensemble runs on this machine's CPU: the ONNX Runtime sessions (fp32 or int8)
chosen when the model loads, their threads, the precision they compute in, and the speed probe batch
scoring weighs.

Kept apart from the estimator (:mod:`rakuten_ml.models.vision.ensemble`) because none of it is part
of the model: sessions belong to one machine, are never pickled, and ``VisionEnsemble.prepare``
rebuilds them after each load. The export, timing and quantization themselves are in
:mod:`rakuten_ml.models.vision.onnx_runtime`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import nn

from rakuten_ml.models.vision.dataset import ImageDataset
from rakuten_ml.models.vision.features import autocast, precision_tag
from rakuten_ml.models.vision.onnx_cache import OnnxExportCache
from rakuten_ml.models.vision.onnx_runtime import CALIBRATION_BATCH, OnnxNetwork, faster_onnx_networks, probe_batch_size
from rakuten_ml.models.vision.preprocessing import normalize_batch

log = logging.getLogger(__name__)

DECODE_PROBE_IMAGES = 16  # calibration photos decoded to time decoding: enough for a stable mean


class Head(Protocol):
    """What the int8 check needs of a member's head: class probabilities from backbone features."""

    def predict_proba(self, x: np.ndarray, device: torch.device | None = None) -> np.ndarray: ...


def calibration_tensors(images: Sequence[bytes], image_size: int, limit: int | None = None) -> torch.Tensor | None:
    """The first ``limit`` (default: all) encoded calibration photos preprocessed (uint8 (n, 3, H, W));
    ``None`` when there are none (a model fitted before they were kept with it)."""
    images = list(images)[:limit]
    if not images:
        return None
    dataset = ImageDataset(images, image_size=image_size)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def _member_codes(network: nn.Module, head: Head | None, images: torch.Tensor) -> np.ndarray:
    """The member's predicted class indices for uint8 ``images``, through ``network`` then its head
    (a member without a head, the fine-tuned one, outputs logits)."""
    x = normalize_batch(images)
    outputs = torch.cat([network(chunk).float() for chunk in x.split(CALIBRATION_BATCH)]).numpy()
    if head is None:
        return outputs.argmax(axis=1)
    return head.predict_proba(outputs, torch.device("cpu")).argmax(axis=1)


def _int8_check(
    networks: Mapping[str, nn.Module], heads: Mapping[str, Head], held_out: torch.Tensor, truth: np.ndarray,
    max_accuracy_drop: float, member: str, quantized: nn.Module,
) -> bool:
    """Whether the quantized member's accuracy on the held-out calibration photos is within
    ``max_accuracy_drop`` of its fp32 network's: int8 is kept only where predictions survive it."""
    head = heads.get(member)
    fp32 = _member_codes(networks[member], head, held_out)
    int8 = _member_codes(quantized, head, held_out)
    accuracy32, accuracy8 = float((fp32 == truth).mean()), float((int8 == truth).mean())
    kept = accuracy8 >= accuracy32 - max_accuracy_drop
    log.log(logging.INFO if kept else logging.WARNING,
            "%s on %d held-out validation photos: accuracy %.1f%% in int8 vs %.1f%% in fp32 (top-1 agreement "
            "%.1f%%, at most %.0f points lost): %s", member, len(truth), 100 * accuracy8, 100 * accuracy32,
            100 * float((int8 == fp32).mean()), 100 * max_accuracy_drop, "int8 kept" if kept else "fp32 kept")
    return kept


class CpuDeployment:
    """member -> ONNX Runtime session run instead of the member's network on the CPU.

    Empty means every network runs in torch: what a model has before :meth:`build`, on a GPU, or with
    ``runtime="torch"``. Holds sessions of this machine only: never pickle it.
    """

    def __init__(self, sessions: Mapping[str, OnnxNetwork] | None = None) -> None:
        self.sessions: dict[str, OnnxNetwork] = dict(sessions or {})

    @classmethod
    def build(
        cls, networks: Mapping[str, nn.Module], heads: Mapping[str, Head], *, device: torch.device,
        batch_size: int | None, runtime: str, image_size: int, cpu_bf16: bool, int8: bool,
        calibration_images: Sequence[bytes], calibration_codes: np.ndarray | None, max_accuracy_drop: float,
        cache: OnnxExportCache | None = None,
    ) -> CpuDeployment:
        """Export the (placed, eval-mode) networks to ONNX Runtime on the CPU when ``batch_size`` is
        given, keeping each session where it is faster at that batch (``runtime="auto"``) or always
        (``"onnxruntime"``); with ``int8``, quantized first on the even calibration photos where the
        odd ones lose at most ``max_accuracy_drop`` accuracy."""
        if not batch_size or device.type != "cpu" or runtime == "torch":
            return cls()
        calibration = calibration_tensors(calibration_images, image_size) if int8 else None
        if calibration is not None and len(calibration) < 2:  # one photo cannot both calibrate and check
            calibration = None
        if int8 and calibration is None:
            log.warning("int8 asked for, but this model was fitted before labelled calibration photos were kept with "
                        "it; it runs in fp32 (retrain it to run in int8)")
        check = None
        if calibration is not None:
            truth = np.asarray(calibration_codes)[1::2]
            check = functools.partial(_int8_check, networks, heads, calibration[1::2], truth, max_accuracy_drop)
        return cls(faster_onnx_networks(
            networks, image_size=image_size, batch_size=batch_size, runtime=runtime, cpu_bf16=cpu_bf16,
            calibration_images=None if calibration is None else calibration[0::2], int8_check=check, cache=cache,
        ))

    def networks(self, networks: Mapping[str, nn.Module], device: torch.device) -> dict[str, nn.Module]:
        """``networks`` with the sessions in place of theirs on the CPU (elsewhere the networks run)."""
        chosen = dict(networks)
        if device.type == "cpu":
            chosen.update(self.sessions)
        return chosen

    def precision(self, device: torch.device, cpu_bf16: bool) -> str:
        """``fp32``, ``bf16`` or ``fp16``, with ``+int8`` when a member runs quantized on this CPU."""
        tag = precision_tag(device, cpu_bf16)
        if device.type == "cpu" and any(s.precision == "int8" for s in self.sessions.values()):
            tag += "+int8"
        return tag

    def set_threads(self, threads: int) -> None:
        """Give every session ``threads`` intra-op threads (ONNX Runtime fixes them per session)."""
        for session in self.sessions.values():
            session.set_threads(threads)


def seconds_per_image(
    calibration_images: Sequence[bytes], networks: Mapping[str, nn.Module], *, image_size: int,
    device: torch.device, batch_size: int, cpu_bf16: bool,
) -> tuple[float, float] | None:
    """(decoding, networks) seconds per photo here: decoding up to :data:`DECODE_PROBE_IMAGES`
    calibration photos on one thread, then the (placed) ``networks`` on a batch of up to
    ``batch_size`` of them. ``None`` without calibration photos."""
    started = time.perf_counter()
    decoded = calibration_tensors(calibration_images, image_size, DECODE_PROBE_IMAGES)
    if decoded is None:
        return None
    decode = (time.perf_counter() - started) / len(decoded)
    n = probe_batch_size(batch_size, image_size)
    x = normalize_batch(decoded.repeat((n + len(decoded) - 1) // len(decoded), 1, 1, 1)[:n].to(device))
    with torch.inference_mode(), autocast(device, cpu_bf16):
        for network in networks.values():  # warm-up: kernels are picked on the first call
            network(x)
        started = time.perf_counter()
        for network in networks.values():
            network(x).float().cpu()
    return decode, (time.perf_counter() - started) / n
