"""Vision networks on CPU: eager torch (fp32, and bf16 where the CPU has it) vs ONNX Runtime (fp32,
int8), per backbone of both vision profiles, for single photos (online serving) and for batch
scoring's batches, same run; then the tiny ensemble's three sessions in turn, as a prediction runs
them, with ONNX Runtime's thread spinning on (its default) and off (what ``OnnxNetwork`` sets).
Random weights: speed does not depend on them, and int8 accuracy is
measured on trained models (``scoring_throughput``), not here.

    python -m benchmarks.cpu_runtimes [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from benchmarks.results import machine_line, write_section
from rakuten_ml.models.vision.backbones import load_backbone
from rakuten_ml.models.vision.ensemble import FULL_BACKBONES, FULL_IMAGE_SIZE, TINY_IMAGE_SIZE, VisionEnsembleConfig
from rakuten_ml.models.vision.features import autocast, cpu_has_native_bf16
from rakuten_ml.models.vision.onnx_runtime import INPUT_NAME, SPINNING_KEY, OnnxNetwork, export_onnx, quantize_int8
from rakuten_ml.models.vision.preprocessing import normalize_batch

# (profile, member, timm name, timm kwargs, image size, scoring batch)
CASES = [
    *(("tiny", member, name, VisionEnsembleConfig.tiny().backbone_kwargs.get(member, {}), TINY_IMAGE_SIZE, 64)
      for member, name in VisionEnsembleConfig.tiny().backbones.items()),
    *(("full", member, name, {}, FULL_IMAGE_SIZE, 16) for member, name in FULL_BACKBONES.items()),
]
CALIBRATION_IMAGES = 32


def per_image_ms(network: torch.nn.Module, batch: torch.Tensor, repeats: int, bf16: bool = False) -> float:
    """Best of ``repeats`` timed passes after one warm-up, in ms per image."""
    with torch.inference_mode(), autocast(torch.device("cpu"), bf16):
        network(batch)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            network(batch)
            best = min(best, time.perf_counter() - started)
    return best * 1000.0 / len(batch)


def images(n: int, size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def spinning_rows(threads: int, repeats: int) -> list[str]:
    """ms per image for the tiny ensemble's three sessions run one after the other on each batch (its
    images normalised by torch first, as a prediction does), sessions spinning vs not."""
    import onnxruntime as ort

    config = VisionEnsembleConfig.tiny()
    models = [export_onnx(load_backbone(name, seed=0, **config.backbone_kwargs.get(member, {})).eval(), TINY_IMAGE_SIZE)
              for member, name in config.backbones.items()]

    def sessions(spinning: bool) -> list[ort.InferenceSession]:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry(SPINNING_KEY, "1" if spinning else "0")
        return [ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]) for model in models]

    def ms_per_image(runs: list[ort.InferenceSession], batch: torch.Tensor) -> float:
        def once() -> None:
            x = normalize_batch(batch).contiguous().numpy()
            for session in runs:
                session.run(None, {INPUT_NAME: x})
        once()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            once()
            best = min(best, time.perf_counter() - started)
        return best * 1000.0 / len(batch)

    spinning, quiet = sessions(True), sessions(False)
    rows = []
    for batch_size in (1, 4, 64):
        batch = images(batch_size, TINY_IMAGE_SIZE, 0)
        on, off = ms_per_image(spinning, batch), ms_per_image(quiet, batch)
        rows.append(f"| {batch_size} | {on:.2f} | {off:.2f} | {on / off:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bf16 = cpu_has_native_bf16()
    threads = torch.get_num_threads()
    rows = []
    for profile, member, name, kwargs, size, batch_size in CASES:
        network = load_backbone(name, seed=0, **kwargs).eval().to(memory_format=torch.channels_last)
        model = export_onnx(network, size)
        runtimes = {
            "torch fp32": (network, False),
            **({"torch bf16": (network, True)} if bf16 else {}),
            "ORT fp32": (OnnxNetwork(model, output_dim=network.output_dim, precision="fp32", threads=threads), False),
            "ORT int8": (OnnxNetwork(quantize_int8(model, images(CALIBRATION_IMAGES, size, 1)),
                                     output_dim=network.output_dim, precision="int8", threads=threads), False),
        }
        for batch in (1, batch_size):
            x = normalize_batch(images(batch, size, 0))
            ms = {label: per_image_ms(runtime, x, args.repeats, in_bf16) for label, (runtime, in_bf16) in runtimes.items()}
            base = ms["torch fp32"]
            cells = " | ".join(f"{value:.2f} ({base / value:.1f}x)" for value in ms.values())
            rows.append(f"| {profile} | {member} | {name} | {size} px | {batch} | {cells} |")
    labels = ["torch fp32", *(["torch bf16"] if bf16 else []), "ORT fp32", "ORT int8"]
    table = "\n".join([
        "## Vision networks on CPU: torch vs ONNX Runtime (`RAKUTEN_VISION_CPU_RUNTIME`, `RAKUTEN_VISION_CPU_INT8`)",
        "",
        f"{machine_line()}, {threads} threads, CPU bf16 instructions: {'yes' if bf16 else 'no'}; ms per image, best "
        f"of {args.repeats} passes after a warm-up (speed-up vs torch fp32 in the same row). ORT = ONNX Runtime.",
        "At load, serving (batch 4) and batch scoring (their batch) time each network against its ONNX Runtime "
        "session and keep the session only where it is at least 1.1x faster. int8 is opt-in: weights per channel, "
        "activations calibrated on labelled validation photos, each member kept in int8 only where its accuracy on "
        "other held-out photos stays within 2 points of fp32's.",
        "",
        f"| profile | member | backbone | input | batch | {' | '.join(labels)} |",
        "| --- | --- | --- | --- | --- |" + " --- |" * len(labels),
        *rows,
        "",
        f"The tiny ensemble's three ONNX Runtime sessions run in turn on each batch ({threads} threads per session), "
        "ms per image, best of the same passes:",
        "",
        "| batch | threads spin (ORT default) | no spinning (what serving and scoring use) | no spinning is faster by |",
        "| --- | --- | --- | --- |",
        *spinning_rows(threads, args.repeats),
    ])
    print(table)
    write_section("cpu_runtimes", table)


if __name__ == "__main__":
    main()
