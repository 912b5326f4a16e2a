"""Small torch networks for the ONNX export tests, and seeded random images to run them on."""

from __future__ import annotations

import torch
from torch import nn


class SmallCnn(nn.Module):
    """Conv + BatchNorm + ReLU + pooling, with non-trivial statistics so that folding them matters."""

    output_dim = 8

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        with torch.no_grad():
            self.features[1].running_mean.uniform_(-0.5, 0.5)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)


class DataDependent(SmallCnn):
    """Python control flow on a tensor value: torch.export cannot capture it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x).flatten(1)
        return out if out.sum() > 0 else -out


class Shifted(SmallCnn):
    """Same shapes as SmallCnn, other outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1) + 1.0


def random_images(n: int, size: int = 16) -> torch.Tensor:
    """``n`` seeded random uint8 RGB images of ``size`` x ``size`` (NCHW), the same on every call."""
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
