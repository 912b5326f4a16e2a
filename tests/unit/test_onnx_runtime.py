"""ONNX Runtime sessions are kept only for networks they reproduce (and, in auto, speed up); int8
sessions only where the caller's check accepts them; networks that do not export run in torch."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
from torch import nn

from rakuten_ml.models.vision import onnx_runtime
from rakuten_ml.models.vision.onnx_runtime import OnnxNetwork, export_onnx, faster_onnx_networks, quantize_int8
from tests.support.onnx_models import DataDependent, Shifted, SmallCnn, random_images


def test_export_runs_any_batch_size_with_the_networks_outputs() -> None:
    network = SmallCnn().eval()
    session = OnnxNetwork(export_onnx(network, 16), output_dim=8, precision="fp32", threads=1)
    for batch in (1, 3, 17):
        x = torch.randn(batch, 3, 16, 16).contiguous(memory_format=torch.channels_last)  # what normalize_batch gives
        with torch.inference_mode():
            torch.testing.assert_close(session(x), network(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError):
        pickle.dumps(session)  # a session never travels: VisionEnsemble drops it before pickling


def test_sessions_take_the_thread_count_and_never_spin() -> None:
    """Spinning threads would hold the cores while the ensemble's next network or torch heads run."""
    session = OnnxNetwork(export_onnx(SmallCnn().eval(), 16), output_dim=8, precision="fp32", threads=1)
    for threads in (1, 3):
        session.set_threads(threads)
        options = session.session.get_session_options()
        assert options.intra_op_num_threads == threads
        assert options.get_session_config_entry(onnx_runtime.SPINNING_KEY) == "0"


def test_network_that_does_not_export_runs_in_torch(caplog) -> None:
    caplog.set_level(logging.WARNING, logger=onnx_runtime.__name__)
    assert faster_onnx_networks({"odd": DataDependent().eval()}, image_size=16, batch_size=2, runtime="onnxruntime") == {}
    assert "cannot run in ONNX Runtime" in caplog.text


def test_session_kept_only_when_faster_in_auto(monkeypatch) -> None:
    monkeypatch.setattr(onnx_runtime, "MIN_SPEEDUP", 0.0)
    assert list(faster_onnx_networks({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4)) == ["cnn"]
    monkeypatch.setattr(onnx_runtime, "MIN_SPEEDUP", float("inf"))
    assert faster_onnx_networks({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4) == {}
    # "onnxruntime" keeps it whatever its speed, "torch" never exports
    assert list(faster_onnx_networks({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4, runtime="onnxruntime")) == ["cnn"]
    assert faster_onnx_networks({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4, runtime="torch") == {}
    with pytest.raises(ValueError, match="runtime"):
        faster_onnx_networks({}, image_size=16, batch_size=4, runtime="tensorrt")


def test_export_with_other_outputs_is_never_kept(monkeypatch, caplog) -> None:
    other = export_onnx(Shifted(), 16)
    monkeypatch.setattr(onnx_runtime, "export_onnx", lambda network, image_size: other)
    caplog.set_level(logging.WARNING, logger=onnx_runtime.__name__)
    assert faster_onnx_networks({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4, runtime="onnxruntime") == {}
    assert "differs from the network" in caplog.text


def test_int8_session_is_close_to_fp32_and_used_only_when_the_check_accepts_it() -> None:
    network = SmallCnn().eval()
    calibration = random_images(32)
    int8 = OnnxNetwork(quantize_int8(export_onnx(network, 16), calibration), output_dim=8, precision="int8", threads=1)
    x = onnx_runtime.normalize_batch(random_images(8))
    with torch.inference_mode():
        expected = network(x)
    assert (int8(x) - expected).abs().max() < 0.05 * expected.abs().max()  # 8-bit ranges: ~1% error, not garbage

    checked: list[str] = []

    def accept(member: str, session: nn.Module) -> bool:
        checked.append(member)
        return True

    kept = faster_onnx_networks({"cnn": network}, image_size=16, batch_size=4, runtime="onnxruntime",
                                calibration_images=calibration, int8_check=accept)
    assert checked == ["cnn"] and kept["cnn"].precision == "int8"
    kept = faster_onnx_networks({"cnn": network}, image_size=16, batch_size=4, runtime="onnxruntime",
                                calibration_images=calibration, int8_check=lambda member, session: False)
    assert kept["cnn"].precision == "fp32"  # rejected int8 falls back to the exact fp32 session


@pytest.mark.parametrize("image_size, expected", [(64, 64), (224, 16), (448, 4)])
def test_probe_batch_is_capped_by_pixels(monkeypatch, image_size: int, expected: int) -> None:
    seen: list[int] = []
    monkeypatch.setattr(onnx_runtime, "_candidate", lambda *args, **kwargs: None)
    monkeypatch.setattr(onnx_runtime, "normalize_batch", lambda batch: seen.append(len(batch)) or batch.float())
    faster_onnx_networks({"cnn": SmallCnn().eval()}, image_size=image_size, batch_size=64)
    assert seen[0] == expected
