"""Fused CPU graphs are kept only for networks they reproduce; untraceable networks run as they are."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from rakuten_ml.models.vision import cpu_graphs
from rakuten_ml.models.vision.cpu_graphs import faster_cpu_graphs, fused_graph


class SmallCnn(nn.Module):
    """Conv + BatchNorm + ReLU + pooling: what the fusion passes rewrite."""

    output_dim = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        with torch.no_grad():  # non-trivial statistics, so that folding them really changes the weights
            self.features[1].running_mean.uniform_(-0.5, 0.5)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class DataDependent(SmallCnn):
    """Python control flow on a tensor value: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x).flatten(1)
        return out if out.sum() > 0 else -out


def test_fused_graph_gives_the_networks_outputs_and_keeps_its_output_dim() -> None:
    network = SmallCnn().eval()
    graph = fused_graph(network)
    assert graph is not None and graph.output_dim == 8
    assert not any(isinstance(m, nn.BatchNorm2d) for m in graph.modules())  # folded into the convolution
    assert any(isinstance(m, nn.BatchNorm2d) for m in network.modules())  # the original is untouched
    x = torch.randn(4, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(graph(x), network(x), rtol=1e-4, atol=1e-5)


def test_untraceable_network_runs_as_it_is(caplog) -> None:
    caplog.set_level(logging.INFO, logger=cpu_graphs.__name__)
    assert fused_graph(DataDependent().eval()) is None
    assert "cannot be traced" in caplog.text
    assert faster_cpu_graphs({"odd": DataDependent().eval()}, image_size=16, batch_size=2) == {}


def test_graph_kept_only_when_faster(monkeypatch) -> None:
    monkeypatch.setattr(cpu_graphs, "MIN_SPEEDUP", 0.0)
    kept = faster_cpu_graphs({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4)
    assert list(kept) == ["cnn"]
    monkeypatch.setattr(cpu_graphs, "MIN_SPEEDUP", float("inf"))
    assert faster_cpu_graphs({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4) == {}


def test_graph_with_other_outputs_is_never_kept(monkeypatch, caplog) -> None:
    class Shifted(nn.Module):
        output_dim = 8

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) + 1.0

    monkeypatch.setattr(cpu_graphs, "MIN_SPEEDUP", 0.0)
    monkeypatch.setattr(cpu_graphs, "fused_graph", lambda network: Shifted(network))
    caplog.set_level(logging.WARNING, logger=cpu_graphs.__name__)
    assert faster_cpu_graphs({"cnn": SmallCnn().eval()}, image_size=16, batch_size=4) == {}
    assert "differs from the network" in caplog.text


@pytest.mark.parametrize("image_size, expected", [(64, 64), (224, 16), (448, 4)])
def test_probe_batch_is_capped_by_pixels(monkeypatch, image_size: int, expected: int) -> None:
    seen: list[int] = []
    monkeypatch.setattr(cpu_graphs, "fused_graph", lambda network: seen.append(0) or None)
    monkeypatch.setattr(cpu_graphs, "normalize_batch", lambda batch: seen.append(len(batch)) or batch.float())
    faster_cpu_graphs({"cnn": SmallCnn().eval()}, image_size=image_size, batch_size=64)
    assert seen[0] == expected
