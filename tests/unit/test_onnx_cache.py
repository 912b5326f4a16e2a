"""The ONNX export cache: a second load of the same weights skips the export (and the int8
quantization), other weights miss, a damaged or wrong entry is replaced, the folder stays bounded."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import torch

from rakuten_ml.models.vision import onnx_runtime
from rakuten_ml.models.vision.onnx_cache import OnnxExportCache, network_digest
from rakuten_ml.models.vision.onnx_runtime import export_onnx, faster_onnx_networks
from rakuten_ml.scoring.device import onnx_export_cache
from rakuten_ml.settings import Settings
from tests.support.onnx_models import Shifted, SmallCnn, random_images


@pytest.fixture
def exports(monkeypatch) -> list[str]:
    """Counts real exports (and quantizations), by the name of the network class."""
    calls: list[str] = []
    real_export, real_quantize = onnx_runtime.export_onnx, onnx_runtime.quantize_int8

    def export(network: torch.nn.Module, image_size: int) -> bytes:
        calls.append(type(network).__name__)
        return real_export(network, image_size)

    def quantize(model: bytes, calibration: torch.Tensor, reduce_range: bool | None = None) -> bytes:
        calls.append("int8")
        return real_quantize(model, calibration, reduce_range)

    monkeypatch.setattr(onnx_runtime, "export_onnx", export)
    monkeypatch.setattr(onnx_runtime, "quantize_int8", quantize)
    return calls


def _sessions(network: torch.nn.Module, cache: OnnxExportCache, **kwargs) -> dict:
    return faster_onnx_networks({"cnn": network}, image_size=16, batch_size=4, runtime="onnxruntime", cache=cache, **kwargs)


def _outputs(session: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return session(onnx_runtime.normalize_batch(random_images(3)))


def test_second_load_reads_the_export_and_computes_the_same(tmp_path: Path, exports: list[str]) -> None:
    cache = OnnxExportCache(tmp_path, max_bytes=10**8)
    first = _sessions(SmallCnn().eval(), cache)["cnn"]
    second = _sessions(SmallCnn().eval(), cache)["cnn"]  # another process loading the same weights
    assert exports == ["SmallCnn"]
    assert len(list(tmp_path.glob("*.onnx"))) == 1
    torch.testing.assert_close(_outputs(first), _outputs(second), rtol=0, atol=0)

    retrained = SmallCnn().eval()
    with torch.no_grad():
        retrained.features[0].weight.add_(0.1)
    assert network_digest(retrained, 16) != network_digest(SmallCnn().eval(), 16)
    assert network_digest(SmallCnn().eval(), 32) != network_digest(SmallCnn().eval(), 16)
    _sessions(retrained, cache)
    assert exports == ["SmallCnn", "SmallCnn"]  # other weights: exported, not served from the old entry


def test_int8_models_are_cached_per_calibration_set(tmp_path: Path, exports: list[str]) -> None:
    cache = OnnxExportCache(tmp_path, max_bytes=10**8)
    accept = {"int8_check": lambda member, session: True}
    for _ in range(2):
        assert _sessions(SmallCnn().eval(), cache, calibration_images=random_images(16), **accept)["cnn"].precision == "int8"
    assert exports == ["SmallCnn", "int8"]
    other_photos = random_images(16, size=16) // 2
    _sessions(SmallCnn().eval(), cache, calibration_images=other_photos, **accept)
    assert exports == ["SmallCnn", "int8", "int8"]
    # the accuracy check still runs on a cached int8 model, and can still refuse it
    assert _sessions(SmallCnn().eval(), cache, calibration_images=random_images(16),
                     int8_check=lambda member, session: False)["cnn"].precision == "fp32"


def test_int8_entries_of_cpus_with_and_without_vnni_are_kept_apart(tmp_path: Path, exports: list[str], monkeypatch) -> None:
    """A cache folder shared by several nodes: a CPU without VNNI needs its own 7-bit model."""
    cache = OnnxExportCache(tmp_path, max_bytes=10**8)
    accept = {"int8_check": lambda member, session: True}
    for reduced in (False, True, False, True):
        monkeypatch.setattr(onnx_runtime, "int8_needs_reduced_range", lambda reduced=reduced: reduced)
        _sessions(SmallCnn().eval(), cache, calibration_images=random_images(16), **accept)
    assert exports == ["SmallCnn", "int8", "int8"]  # one quantization per kind of CPU, then both read back


def test_damaged_entry_is_exported_again(tmp_path: Path, exports: list[str], caplog) -> None:
    cache = OnnxExportCache(tmp_path, max_bytes=10**8)
    _sessions(SmallCnn().eval(), cache)
    (entry,) = tmp_path.glob("*.onnx")
    entry.write_bytes(b"not an onnx model")
    caplog.set_level(logging.WARNING, logger=onnx_runtime.__name__)
    session = _sessions(SmallCnn().eval(), cache)["cnn"]
    assert exports == ["SmallCnn", "SmallCnn"] and "cannot be loaded" in caplog.text
    assert entry.read_bytes() != b"not an onnx model"  # replaced by the fresh export
    with torch.inference_mode():
        expected = SmallCnn().eval()(onnx_runtime.normalize_batch(random_images(3)))
    torch.testing.assert_close(_outputs(session), expected, rtol=1e-4, atol=1e-5)


def test_entry_computing_something_else_is_never_used(tmp_path: Path, exports: list[str], caplog) -> None:
    cache = OnnxExportCache(tmp_path, max_bytes=10**8)
    network = SmallCnn().eval()
    cache.put(network_digest(network, 16), export_onnx(Shifted(), 16))  # e.g. written by another exporter
    caplog.set_level(logging.WARNING, logger=onnx_runtime.__name__)
    session = _sessions(network, cache)["cnn"]
    assert exports == ["SmallCnn"] and "cached ONNX model differs" in caplog.text
    with torch.inference_mode():
        expected = network(onnx_runtime.normalize_batch(random_images(3)))
    torch.testing.assert_close(_outputs(session), expected, rtol=1e-4, atol=1e-5)


def test_folder_is_pruned_least_recently_used_first(tmp_path: Path) -> None:
    cache = OnnxExportCache(tmp_path, max_bytes=250)
    for i, key in enumerate(["a1", "b2", "c3"]):
        cache.put(key, bytes(100))
        os.utime(tmp_path / f"{key}.onnx", (time.time() - 100 + i, time.time() - 100 + i))
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["b2.onnx", "c3.onnx"]  # a1 was the oldest
    assert cache.get("b2") is not None  # read: now the most recently used
    cache.put("d4", bytes(100))
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["b2.onnx", "d4.onnx"]
    cache.put("huge", bytes(1000))  # larger than the bound: never stored
    assert cache.get("huge") is None
    with pytest.raises(ValueError, match="letters"):
        cache.get("../escape")


def test_cache_folder_follows_the_settings(tmp_path: Path) -> None:
    cache = onnx_export_cache(Settings(home=tmp_path))
    assert cache is not None and cache.directory == tmp_path / "cache" / "onnx" and cache.max_bytes == 4096 * 1024**2
    assert onnx_export_cache(Settings(home=tmp_path, vision_onnx_cache_dir=tmp_path / "shared")).directory == tmp_path / "shared"
    assert onnx_export_cache(Settings(home=tmp_path, vision_onnx_cache_mb=0)) is None
