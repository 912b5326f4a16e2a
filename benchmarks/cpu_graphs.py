"""Fused CPU graphs (BatchNorm folded, oneDNN layouts) vs the same networks as they are, per backbone
of both vision profiles, at batch scoring's batch sizes, same run. Random weights: speed does not
depend on them.

    python -m benchmarks.cpu_graphs [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from benchmarks.results import machine_line, write_section
from rakuten_ml.models.vision.backbones import load_backbone
from rakuten_ml.models.vision.cpu_graphs import fused_graph
from rakuten_ml.models.vision.ensemble import FULL_BACKBONES, FULL_IMAGE_SIZE, TINY_IMAGE_SIZE, VisionEnsembleConfig
from rakuten_ml.models.vision.preprocessing import normalize_batch

# (profile, member, timm name, timm kwargs, image size, batch)
CASES = [
    *(("tiny", member, name, VisionEnsembleConfig.tiny().backbone_kwargs.get(member, {}), TINY_IMAGE_SIZE, 64)
      for member, name in VisionEnsembleConfig.tiny().backbones.items()),
    *(("full", member, name, {}, FULL_IMAGE_SIZE, 16) for member, name in FULL_BACKBONES.items()),
]


def per_image_ms(network: torch.nn.Module, batch: torch.Tensor, repeats: int) -> float:
    """Best of ``repeats`` timed passes after one warm-up, in ms per image."""
    with torch.inference_mode():
        network(batch)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            network(batch)
            best = min(best, time.perf_counter() - started)
    return best * 1000.0 / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for profile, member, name, kwargs, size, batch_size in CASES:
        network = load_backbone(name, seed=0, **kwargs).eval().to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(0)
        batch = normalize_batch(torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator))
        graph = fused_graph(network)
        plain = per_image_ms(network, batch, args.repeats)
        if graph is None:
            rows.append(f"| {profile} | {member} | {name} | {size} px, batch {batch_size} | {plain:.2f} | not traceable | - |")
            continue
        fused = per_image_ms(graph, batch, args.repeats)
        rows.append(f"| {profile} | {member} | {name} | {size} px, batch {batch_size} | {plain:.2f} | {fused:.2f} | {plain / fused:.2f}x |")
    table = "\n".join([
        "## Fused CPU graphs per backbone (`RAKUTEN_VISION_CPU_GRAPHS`)",
        "",
        f"{machine_line()}, fp32, {torch.get_num_threads()} torch threads; best of {args.repeats} passes after a warm-up.",
        "Batch scoring times each network against its fused graph when the model loads and keeps the graph only "
        "where it is at least 1.1x faster, so a row under that threshold costs nothing in production.",
        "",
        "| profile | member | backbone | input | as is, ms/image | fused graph, ms/image | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
    ])
    print(table)
    write_section("cpu_graphs", table)


if __name__ == "__main__":
    main()
