"""ONNX Runtime for the vision networks on CPU: each network is exported when the model loads,
checked against itself, and kept only where it is faster on this machine; optionally in int8.

Eager PyTorch dispatches every operator from Python. At the batch sizes of online serving (one to
eight photos) that overhead is much of a forward pass, and ONNX Runtime's fused kernels run the same
small networks faster. On batches the gap narrows or reverses depending on the CPU, and torch's bf16
autocast wins on CPUs with native bf16 (figures: ``benchmarks/RESULTS.md``, section ``cpu_runtimes``). So each network is timed against its session at the batch size it will see, and
the session is kept only where it is at least :data:`MIN_SPEEDUP` times faster.

int8 (``RAKUTEN_VISION_CPU_INT8=on``): static quantization, weights per channel and activations
calibrated on labelled validation photos stored with the model. The CPU's VNNI instructions then run
ResNets several times faster than fp32 (``benchmarks/RESULTS.md``). x86 CPUs without VNNI saturate 8-bit products, so their weights
get 7 bits (:func:`rakuten_ml.cpus.int8_needs_reduced_range`). The caller's ``int8_check`` decides whether the quantized network
is still accurate enough on other held-out photos (``VisionEnsemble`` allows 2 points of accuracy);
where it is not, the exact fp32 session is used.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rakuten_ml.cpus import int8_needs_reduced_range
from rakuten_ml.models.vision.features import autocast, output_dim
from rakuten_ml.models.vision.onnx_cache import OnnxExportCache, network_digest, tensor_digest
from rakuten_ml.models.vision.preprocessing import normalize_batch

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime")
MIN_SPEEDUP = 1.1  # below this a session is noise, and one more thing that could differ
# The probe batch is the caller's batch size, capped at 16 images of 224 px (64 of 64 px, ...): a
# bigger probe costs seconds per network at load and tells nothing new.
MAX_PROBE_PIXELS = 16 * 224 * 224
PROBE_REPEATS = 3
PROBE_SEED = 0
# An fp32 export runs the same operators in another order: outputs move by ~1e-6 relative.
RTOL, ATOL_SHARE = 1e-3, 1e-4
CALIBRATION_BATCH = 16  # calibration images per session run while collecting activation ranges
INPUT_NAME, OUTPUT_NAME = "images", "outputs"
SPINNING_KEY = "session.intra_op.allow_spinning"

Int8Check = Callable[[str, nn.Module], bool]


class OnnxNetwork(nn.Module):
    """An exported network run by an ONNX Runtime session, called like the network: float (n, 3, H, W)
    in, float (n, output_dim) out. Never pickled: ``VisionEnsemble`` drops it and rebuilds it at load."""

    def __init__(self, model: bytes, *, output_dim: int, precision: str, threads: int) -> None:
        super().__init__()
        self.model = model
        self.output_dim = output_dim
        self.precision = precision
        self.set_threads(threads)
        self.eval()

    def set_threads(self, threads: int) -> None:
        """(Re)create the session with ``threads`` intra-op threads (ONNX Runtime fixes them per session)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # No spinning: by default a session's threads spin on the cores after each run, while the
        # ensemble's next session, its torch heads or the decoding threads need them. With two threads
        # that made a micro-batch of four photos slower (``benchmarks/RESULTS.md``, cpu_runtimes).
        options.add_session_config_entry(SPINNING_KEY, "0")
        self.session = ort.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])
        self.threads = max(1, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x.float().contiguous().numpy()  # channels-last batches become the NCHW the graph expects
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: inputs})[0])


def export_onnx(network: nn.Module, image_size: int) -> bytes:
    """The network as an ONNX model with a dynamic batch dimension (torch's ``torch.export`` exporter)."""
    network.eval()
    example = torch.zeros(2, 3, image_size, image_size)  # a batch of one would be specialised to 1
    for chatty in ("onnxscript", "onnx_ir"):  # dozens of INFO lines per export about their own passes
        logging.getLogger(chatty).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about timm internals it handles
        program = torch.onnx.export(
            network, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), verbose=False,
            optimize=True,  # folds BatchNorm into the convolutions and drops shape arithmetic: much faster
        )
    if program is None:  # only with dynamo=False, which is never asked for here
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto.SerializeToString()


class _CalibrationBatches:
    """``onnxruntime.quantization.CalibrationDataReader``: the calibration images, normalised, in batches."""

    def __init__(self, images: torch.Tensor) -> None:
        self._batches: Iterator[torch.Tensor] = iter(images.split(CALIBRATION_BATCH))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: normalize_batch(batch).contiguous().numpy()}


def quantize_int8(model: bytes, calibration_images: torch.Tensor, reduce_range: bool | None = None) -> bytes:
    """Static int8 quantization (QDQ: uint8 activations, int8 weights per channel) with activation
    ranges measured on ``calibration_images`` (uint8, (n, 3, H, W)). Weights get 7 bits where
    ``reduce_range`` (default: on x86 CPUs without VNNI, whose int8 products saturate at 8 bits)."""
    if reduce_range is None:
        reduce_range = int8_needs_reduced_range()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="rakuten-int8-") as tmp:
        source, prepared, quantized = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model)
        # ONNX shape inference and graph folding, as the quantizer expects; ORT's symbolic shape inference
        # cannot read the Constant nodes of torch's exporter (it has no dynamic shapes to resolve here anyway).
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), _CalibrationBatches(calibration_images),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range)
        return quantized.read_bytes()


def probe_batch_size(batch_size: int, image_size: int) -> int:
    """Images in a timing probe: ``batch_size``, capped at :data:`MAX_PROBE_PIXELS`."""
    return max(1, min(batch_size, MAX_PROBE_PIXELS // (image_size * image_size)))


def _seconds(network: nn.Module, probe: torch.Tensor, cpu_bf16: bool) -> float:
    started = time.perf_counter()
    with autocast(torch.device("cpu"), cpu_bf16):
        network(probe)
    return time.perf_counter() - started


def _max_difference(network: nn.Module, session: OnnxNetwork, probe: torch.Tensor) -> float | None:
    """``None`` when ``session`` computes what ``network`` does on ``probe``, else the largest difference."""
    expected, got = network(probe).float(), session(probe)
    scale = float(expected.abs().max()) or 1.0
    if got.shape == expected.shape and torch.allclose(expected, got, rtol=RTOL, atol=ATOL_SHARE * scale):
        return None
    return float((expected - got).abs().max()) if got.shape == expected.shape else float("inf")


def _cached_session(
    member: str, network: nn.Module, probe: torch.Tensor, cache: OnnxExportCache, key: str, *, precision: str,
    threads: int,
) -> tuple[bytes, OnnxNetwork] | None:
    """A session from the cache entry ``key``; an entry ONNX Runtime cannot load is removed. fp32
    entries are also checked against the network (int8 ones go through the caller's accuracy check)."""
    model = cache.get(key)
    if model is None:
        return None
    try:
        session = OnnxNetwork(model, output_dim=output_dim(network), precision=precision, threads=threads)
        difference = _max_difference(network, session, probe) if precision == "fp32" else None
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises many types on a damaged model
        log.warning("%s: the cached %s ONNX model cannot be loaded (%s: %s); exporting again", member, precision,
                    type(exc).__name__, exc)
        cache.discard(key)
        return None
    if difference is not None:
        log.warning("%s: the cached ONNX model differs from the network (max |diff| %.3g); exporting again", member,
                    difference)
        cache.discard(key)
        return None
    log.debug("%s: %s ONNX model read from the export cache", member, precision)
    return model, session


def _fp32_session(
    member: str, network: nn.Module, probe: torch.Tensor, *, image_size: int, threads: int,
    cache: OnnxExportCache | None,
) -> tuple[bytes, OnnxNetwork, str] | None:
    """``(model, session, cache key)`` of the network's fp32 export (from the cache where it holds it);
    ``None`` where the network does not export or its export computes something else."""
    key = network_digest(network, image_size) if cache is not None else ""
    if cache is not None and (hit := _cached_session(member, network, probe, cache, key, precision="fp32",
                                                     threads=threads)):
        return *hit, key
    try:
        model = export_onnx(network, image_size)
        session = OnnxNetwork(model, output_dim=output_dim(network), precision="fp32", threads=threads)
    except Exception as exc:  # noqa: BLE001 - torch.export and onnxruntime raise many types on unsupported code
        log.warning("%s cannot run in ONNX Runtime (%s: %s); it runs in torch", member, type(exc).__name__, exc)
        return None
    difference = _max_difference(network, session, probe)
    if difference is not None:
        log.warning("%s: the ONNX export differs from the network (max |diff| %.3g); it runs in torch", member,
                    difference)
        return None
    if cache is not None:
        cache.put(key, model)
    return model, session, key


def _int8_session(
    member: str, network: nn.Module, probe: torch.Tensor, model: bytes, calibration_images: torch.Tensor, *,
    threads: int, cache: OnnxExportCache | None, fp32_key: str,
) -> OnnxNetwork:
    """The quantized session (from the cache where it holds this network and calibration set); raises
    where the quantizer cannot handle the network."""
    reduce_range = int8_needs_reduced_range()
    # A 7-bit model is another model: a cache shared by CPUs with and without VNNI keeps both.
    key = f"{fp32_key}-int8{'-r7' if reduce_range else ''}-{tensor_digest(calibration_images)}" if cache is not None else ""
    if cache is not None and (hit := _cached_session(member, network, probe, cache, key, precision="int8",
                                                     threads=threads)):
        return hit[1]
    quantized = quantize_int8(model, calibration_images, reduce_range=reduce_range)
    session = OnnxNetwork(quantized, output_dim=output_dim(network), precision="int8", threads=threads)
    if cache is not None:
        cache.put(key, quantized)
    return session


def _candidate(
    member: str, network: nn.Module, probe: torch.Tensor, *, image_size: int, threads: int,
    calibration_images: torch.Tensor | None, int8_check: Int8Check | None, cache: OnnxExportCache | None = None,
) -> OnnxNetwork | None:
    """The int8 session where asked for and it passes ``int8_check``, else the fp32 one; ``None``
    where the network does not export or its export computes something else."""
    exported = _fp32_session(member, network, probe, image_size=image_size, threads=threads, cache=cache)
    if exported is None:
        return None
    model, fp32, key = exported
    if int8_check is None or calibration_images is None:
        return fp32
    try:
        int8 = _int8_session(member, network, probe, model, calibration_images, threads=threads, cache=cache,
                             fp32_key=key)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types on operators it does not know
        log.warning("%s cannot be quantized to int8 (%s: %s); trying fp32", member, type(exc).__name__, exc)
        return fp32
    return int8 if int8_check(member, int8) else fp32


def faster_onnx_networks(
    networks: Mapping[str, nn.Module],
    *,
    image_size: int,
    batch_size: int,
    runtime: str = "auto",
    cpu_bf16: bool = False,
    calibration_images: torch.Tensor | None = None,
    int8_check: Int8Check | None = None,
    cache: OnnxExportCache | None = None,
) -> dict[str, OnnxNetwork]:
    """member -> ONNX Runtime session, for the members that export with the same outputs and, with
    ``runtime="auto"``, run at least :data:`MIN_SPEEDUP` times faster than the network (in bf16 when
    ``cpu_bf16``) on a batch of ``batch_size`` random images; ``runtime="onnxruntime"`` keeps every one.

    With ``int8_check`` and ``calibration_images``, each network is tried in int8 first. With ``cache``,
    exports (and int8 models) are read from and written to it instead of being redone. Networks must
    already be on the CPU in eval mode (``VisionEnsemble.prepare`` places them).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}; choose among {RUNTIMES}")
    if runtime == "torch":
        return {}
    batch = probe_batch_size(batch_size, image_size)
    generator = torch.Generator().manual_seed(PROBE_SEED)
    probe = normalize_batch(torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8, generator=generator))
    threads = torch.get_num_threads()
    chosen: dict[str, OnnxNetwork] = {}
    with torch.inference_mode():
        for member, network in networks.items():
            session = _candidate(member, network, probe, image_size=image_size, threads=threads,
                                 calibration_images=calibration_images, int8_check=int8_check, cache=cache)
            if session is None:
                continue
            if runtime == "onnxruntime":
                chosen[member] = session
                continue
            _seconds(network, probe, cpu_bf16)  # warm-up: oneDNN picks its kernels on the first call
            eager = min(_seconds(network, probe, cpu_bf16) for _ in range(PROBE_REPEATS))
            onnx = min(_seconds(session, probe, False) for _ in range(PROBE_REPEATS))
            speedup = eager / onnx if onnx > 0 else 0.0
            kept = speedup >= MIN_SPEEDUP
            log.info("%s at batch %d: %.1f ms in torch (%s), %.1f ms in ONNX Runtime (%s, %.2fx)%s", member, batch,
                     eager * 1e3, "bf16" if cpu_bf16 else "fp32", onnx * 1e3, session.precision, speedup,
                     ": ONNX Runtime kept" if kept else ": torch kept")
            if kept:
                chosen[member] = session
    return chosen
