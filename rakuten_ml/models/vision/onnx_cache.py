"""A folder of ONNX exports keyed by the network's weights, so a restarted worker skips the export.

Each serving worker and each batch-scoring run exports every vision network to ONNX when the model
loads (:mod:`rakuten_ml.models.vision.onnx_runtime`): seconds per network, tens of seconds for the
full profile, on every pod restart, scale-out and hot swap. The export is a pure function of the
network's class and weights, the image size and the exporter's version, so it is stored under a
hash of exactly those (int8 models also hash their calibration photos) and read back next time.

An entry is only ever a candidate: the caller still checks a session built from it against the
network before using it, an unreadable entry is deleted and re-exported, and the folder is pruned,
least recently used first, to a size bound. Writes are atomic (temporary file, then rename), so
workers loading the same model at once never read half a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# Bump when export settings change (opset, optimisation, quantization recipe): old entries then miss.
EXPORT_RECIPE = "dynamo-optimize-qdq-u8s8-per-channel-v1"
SUFFIX = ".onnx"


def _versions() -> str:
    import onnx
    import onnxruntime

    try:
        import onnxscript

        onnxscript_version = onnxscript.__version__
    except ImportError:  # pragma: no cover - a dependency of torch.onnx's exporter
        onnxscript_version = "none"
    return f"torch={torch.__version__};onnx={onnx.__version__};onnxscript={onnxscript_version};ort={onnxruntime.__version__}"


def network_digest(network: nn.Module, image_size: int) -> str:
    """Hash of what an export depends on: class, weights and buffers, input size, exporter versions."""
    digest = hashlib.sha256()
    digest.update(f"{EXPORT_RECIPE}|{_versions()}|{type(network).__module__}.{type(network).__qualname__}|"
                  f"{image_size}|{getattr(network, 'output_dim', '')}".encode())
    for name, tensor in network.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"|{name}:{value.dtype}:{tuple(value.shape)}|".encode())
        digest.update(_raw_bytes(value))
    return digest.hexdigest()


def tensor_digest(tensor: torch.Tensor) -> str:
    """Hash of a tensor's values (int8 calibration photos): another set makes another int8 model."""
    value = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{value.dtype}:{tuple(value.shape)}|".encode())
    digest.update(_raw_bytes(value))
    return digest.hexdigest()


def _raw_bytes(value: torch.Tensor) -> memoryview:
    """A contiguous CPU tensor's memory, any dtype (bf16 included), without a copy."""
    return value.reshape(-1).view(torch.uint8).numpy().data


class OnnxExportCache:
    """``get(key)`` / ``put(key, model)`` of serialized ONNX models in ``directory``, at most ``max_bytes``."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max(0, max_bytes)

    def _path(self, key: str) -> Path:
        if not key.replace("-", "").isalnum():
            raise ValueError(f"cache key {key!r} must be letters, digits and '-'")
        return self.directory / f"{key}{SUFFIX}"

    def get(self, key: str) -> bytes | None:
        """The stored model, or ``None``; a hit is marked used now (pruning removes the oldest-used)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
            os.utime(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ONNX export cache: cannot read %s (%s); exporting again", path, exc)
            return None
        return data or None

    def put(self, key: str, model: bytes) -> None:
        """Store ``model`` (atomically), then prune. A cache that cannot be written only logs why."""
        if len(model) > self.max_bytes:
            return
        path = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".tmp-", suffix=SUFFIX, delete=False) as tmp:
                tmp.write(model)
            os.chmod(tmp.name, 0o644)  # readable by the other workers' users on a shared volume
            os.replace(tmp.name, path)
        except OSError as exc:
            log.warning("ONNX export cache: cannot write %s (%s); the next load exports again", path, exc)
            return
        self.prune()

    def discard(self, key: str) -> None:
        """Remove an entry that turned out unusable (ONNX Runtime could not load it)."""
        self._path(key).unlink(missing_ok=True)

    def prune(self) -> None:
        """Delete the least recently used entries until the folder holds at most ``max_bytes``."""
        entries = []
        for entry in self.directory.glob(f"*{SUFFIX}"):
            try:
                stat = entry.stat()
            except OSError:  # another worker pruned it meanwhile
                continue
            if not entry.name.startswith(".tmp-"):
                entries.append((stat.st_mtime, stat.st_size, entry))
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries, key=lambda item: item[0]):
            if total <= self.max_bytes:
                break
            try:
                entry.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("ONNX export cache: cannot remove %s (%s)", entry, exc)
                continue
            total -= size
