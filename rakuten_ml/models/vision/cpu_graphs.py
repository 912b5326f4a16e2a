"""Fused CPU inference graphs for the frozen networks: BatchNorm folded into the convolutions and
oneDNN (MKLDNN) layouts between them, through ``torch.fx``'s ``optimize_for_inference``.

On a 2-core AVX-512 machine this made ResNet-18 1.7x and EfficientNet-B0 1.2x faster on batches of 64
at 64 px, ViT (no convolutions) gained nothing, and batches of one to four could lose. So
each network's fused graph is timed against the network itself on this machine, at the batch size
it will see, and kept only where it is faster and gives the same outputs.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from rakuten_ml.models.vision.preprocessing import normalize_batch

log = logging.getLogger(__name__)

MIN_SPEEDUP = 1.1  # below this a fused graph is noise, and one more thing that could differ
# The probe batch is the caller's batch size, capped at 16 images of 224 px (64 of 64 px, ...): at
# 224 px a bigger probe costs seconds per network at load and tells nothing new.
MAX_PROBE_PIXELS = 16 * 224 * 224
PROBE_REPEATS = 3
PROBE_SEED = 0
# Folding BatchNorm into the convolution reorders float sums: outputs move by ~1e-7 relative.
RTOL, ATOL_SHARE = 1e-3, 1e-4


def fused_graph(network: nn.Module) -> nn.Module | None:
    """The network traced and fused for CPU inference, or ``None`` where it cannot be traced (the
    network then runs as it is). The original is left untouched: the passes work on a copy."""
    if network.training:
        network.eval()
    try:
        with warnings.catch_warnings():  # torch.utils.mkldnn's modules are TorchScript ones, deprecated in torch
            warnings.filterwarnings("ignore", message=".*torch.jit.script_method.*", category=FutureWarning)
            from torch.fx.experimental.optimization import optimize_for_inference
        graph = optimize_for_inference(network)
    except Exception as exc:  # noqa: BLE001 - fx raises many types on untraceable Python control flow
        log.info("%s cannot be traced for a fused CPU graph (%s: %s); it runs as it is", _name(network),
                 type(exc).__name__, exc)
        return None
    graph.output_dim = int(network.output_dim)  # what run_loader sizes its outputs with
    return graph


def _name(network: nn.Module) -> str:
    return str(getattr(network, "name", type(network).__name__))


def _seconds(network: nn.Module, probe: torch.Tensor) -> float:
    started = time.perf_counter()
    network(probe)
    return time.perf_counter() - started


def faster_cpu_graphs(
    networks: Mapping[str, nn.Module], *, image_size: int, batch_size: int
) -> dict[str, nn.Module]:
    """member -> fused graph, for the members whose fused graph is at least :data:`MIN_SPEEDUP` times
    faster than the network on a batch of ``batch_size`` random images, with the same outputs.

    Networks must already be on the CPU in eval mode (``VisionEnsemble.prepare`` places them).
    """
    batch = max(1, min(batch_size, MAX_PROBE_PIXELS // (image_size * image_size)))
    generator = torch.Generator().manual_seed(PROBE_SEED)
    probe = normalize_batch(torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8, generator=generator))
    chosen: dict[str, nn.Module] = {}
    with torch.inference_mode():
        for member, network in networks.items():
            graph = fused_graph(network)
            if graph is None:
                continue
            expected, got = network(probe), graph(probe)  # warm-up: oneDNN picks its kernels on first call
            scale = float(expected.abs().max()) or 1.0
            if not torch.allclose(expected, got, rtol=RTOL, atol=ATOL_SHARE * scale):
                log.warning("%s: fused CPU graph differs from the network (max |diff| %.3g); it runs as it is",
                            member, float((expected - got).abs().max()))
                continue
            eager = min(_seconds(network, probe) for _ in range(PROBE_REPEATS))
            fused = min(_seconds(graph, probe) for _ in range(PROBE_REPEATS))
            speedup = eager / fused if fused > 0 else 0.0
            log.info("%s at batch %d: %.1f ms as is, %.1f ms fused (%.2fx)%s", member, batch, eager * 1e3, fused * 1e3,
                     speedup, ": fused graph kept" if speedup >= MIN_SPEEDUP else "")
            if speedup >= MIN_SPEEDUP:
                chosen[member] = graph
    return chosen
