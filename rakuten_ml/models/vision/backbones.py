"""Backbones by name through timm's registry, local weights only, and the device they run on.

Production machines have no internet access: weights are never downloaded (``pretrained=False``),
a local state_dict is loaded when given. A :class:`Backbone` pickles as (name, kwargs, CPU
state_dict), so a saved model loads on a CPU-only machine without pickling timm's classes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import timm
import torch
from torch import nn

from rakuten_ml.errors import ConfigurationError, ModelLoadError

log = logging.getLogger(__name__)

RANDOM_INIT = "random-init"
WEIGHTS_HASH_CHARS = 16
_HASH_CHUNK = 1 << 20


def check_backbone_name(name: str) -> None:
    """Raise a :class:`ConfigurationError` naming close matches when timm has no such architecture."""
    if not timm.is_model(name):
        stem = name.split(".")[0].split("_")[0]
        close = timm.list_models(f"*{stem}*")[:10]
        raise ConfigurationError(f"timm has no architecture {name!r}; close names: {close}")


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA when a GPU is visible, else CPU; an explicit device must exist."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, ValueError) as exc:
        raise ConfigurationError(f"device {preference!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("device 'cuda' was requested but no CUDA GPU is visible; use device='auto' or 'cpu'")
    return device


def weights_tag(weights_path: str | Path | None, seed: int | None = None) -> str:
    """Content hash of a weights file, or ``random-init`` (with its seed: another seed is another net)."""
    if weights_path is None:
        return RANDOM_INIT if seed is None else f"{RANDOM_INIT}-s{seed}"
    digest = hashlib.sha256()
    with _weights_file(weights_path).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:WEIGHTS_HASH_CHARS]


def _weights_file(weights_path: str | Path) -> Path:
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise ModelLoadError(
            f"weights file {path} does not exist; pass the path of a local state_dict (.pth, .pt or "
            ".safetensors) or weights_path=None for a randomly initialised backbone"
        )
    return path


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's RNG for one block without disturbing the caller's stream."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{name}." for name in names)


def _load_weights(model: nn.Module, name: str, weights_path: str | Path) -> None:
    """Load a local checkpoint into ``model``; only its classification head may differ or be absent."""
    path = _weights_file(weights_path)
    try:
        state = timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch/safetensors raise many types for a bad file
        raise ModelLoadError(
            f"cannot read weights file {path}: {exc}; it must be a torch state_dict (.pth/.pt) or a .safetensors file"
        ) from exc
    # timm's own converters (DINOv2/CLIP key layouts, position-embedding resampling to img_size)
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, model)
    own = model.state_dict()
    heads = _head_prefixes(model)

    def is_head(key: str) -> bool:
        return bool(heads) and key.startswith(heads)

    # An ImageNet 1000-class head cannot serve a 27-class or headless model: keep the model's own.
    foreign_head = [k for k, v in state.items() if is_head(k) and (k not in own or own[k].shape != v.shape)]
    state = {k: v for k, v in state.items() if k not in foreign_head}
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ModelLoadError(
            f"weights {path} do not fit {name!r}: shape mismatch on {mismatched[:5]}; "
            "they were saved for another architecture, width or image size"
        )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_head(k)]
    if missing or result.unexpected_keys:
        raise ModelLoadError(
            f"weights {path} do not fit {name!r}: missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}; "
            "check that the file was saved from this architecture"
        )
    if foreign_head:
        log.info("weights %s: classification head %s not loaded (it does not match the model's)", path.name, foreign_head)


class Backbone(nn.Module):
    """A timm model plus what rebuilds it; forward is the model's."""

    def __init__(self, name: str, model: nn.Module, *, num_classes: int, kwargs: dict[str, Any], tag: str) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.num_classes = num_classes
        self.kwargs = dict(kwargs)
        self.weights_tag = tag

    @property
    def num_features(self) -> int:
        return int(cast(int, self.model.num_features))  # timm sets it on every model; torch types attributes as Tensor | Module

    @property
    def output_dim(self) -> int:
        """Width of the forward output: pooled features when headless, else logits."""
        return self.num_classes or self.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return _restore_backbone, (self.name, self.num_classes, self.kwargs, self.weights_tag, state, self.training)


def _restore_backbone(
    name: str, num_classes: int, kwargs: dict[str, Any], tag: str, state: dict[str, torch.Tensor], training: bool
) -> Backbone:
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    model.load_state_dict(state)
    backbone = Backbone(name, model, num_classes=num_classes, kwargs=kwargs, tag=tag)
    return backbone.train(training)


def load_backbone(
    name: str,
    weights_path: str | Path | None = None,
    num_classes: int = 0,
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> Backbone:
    """timm architecture ``name`` (``num_classes=0``: pooled features), with local weights when given.

    ``seed`` makes a random initialisation reproducible (feature caches key on it); ``kwargs`` go to
    ``timm.create_model`` (e.g. ``img_size=64`` for a ViT at a non-default input size).
    """
    check_backbone_name(name)
    with _seeded(seed):
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    if weights_path is not None:
        _load_weights(model, name, weights_path)
    tag = weights_tag(weights_path, seed)
    log.info("backbone %s (%d features, %s, num_classes=%d)", name, model.num_features, tag, num_classes)
    return Backbone(name, model, num_classes=num_classes, kwargs=kwargs, tag=tag)
