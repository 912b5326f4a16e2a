"""The training loop of the vision members, and end-to-end fine-tuning of the EfficientNet member.

Report 4.1 (phase 2) and 4.4: EfficientNet-B0 fine-tuned on catalogue images captures domain
details. The seed's fine-tuned ResNet "Phoenix" reached 91 % train but ~65 % validation accuracy,
so every run keeps the state with the best validation weighted F1 and stops after ``patience``
epochs without progress. The same loop trains the MLP head on frozen features.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from rakuten_ml.errors import ConfigurationError, TrainingError
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.vision.backbones import load_backbone
from rakuten_ml.models.vision.dataset import ImageDataset, ImageItem, balanced_class_weights, make_loader
from rakuten_ml.models.vision.features import autocast, model_input, run_loader, usable_rows
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

# Logit of classes absent from training: exp() underflows to exactly 0 in fp32 and fp16, yet the
# value is finite (no NaN in the loss) and fits fp16's range under autocast.
ABSENT_CLASS_LOGIT = -1e4
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# BatchNorm cannot normalise a batch of one row in training mode.
MIN_BATCH_ROWS = 2


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; validated on creation."""

    max_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 1e-2
    optimizer: str = "adamw"
    patience: int = 3
    seed: int = 42
    num_workers: int = 0
    progress: bool | None = None  # None: a tqdm bar only when stderr is a terminal (not in Airflow logs)
    checkpoint_dir: str | Path | None = None
    name: str = "model"  # checkpoint file stem and progress-bar label

    def __post_init__(self) -> None:
        for key in ("max_epochs", "batch_size", "patience"):
            if getattr(self, key) < 1:
                raise ConfigurationError(f"training setting {key}={getattr(self, key)!r} must be >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigurationError(f"optimizer {self.optimizer!r} is unknown; use one of {sorted(OPTIMIZERS)}")
        if not self.learning_rate > 0:
            raise ConfigurationError(f"learning_rate must be > 0, got {self.learning_rate}")

    @property
    def show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else self.progress


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_weighted_f1: float
    seconds: float


@dataclass
class TrainResult:
    best_f1: float = -1.0
    best_epoch: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    checkpoint: Path | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history)


class MaskedClassifier(nn.Module):
    """A network with one logit per mapped class; classes absent from training are masked to zero mass.

    Keeps every output ``n_classes`` wide in ``DEFAULT_MAPPING`` order whatever the training set held.
    """

    absent: torch.Tensor  # a buffer: moves with the module

    def __init__(self, network: nn.Module, present: np.ndarray) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("absent", torch.as_tensor(~np.asarray(present, dtype=bool)))

    @property
    def output_dim(self) -> int:
        return int(self.absent.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).masked_fill(self.absent, ABSENT_CLASS_LOGIT)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def present_classes(y_idx: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(y_idx, dtype=np.int64), minlength=n_classes) > 0


def weighted_f1(y_idx: np.ndarray, scores: np.ndarray, usable: np.ndarray | None = None) -> float:
    """Support-weighted F1 of ``argmax(scores)`` over the usable rows (the seed's headline metric)."""
    rows = slice(None) if usable is None else np.asarray(usable, dtype=bool)
    y, predicted = np.asarray(y_idx)[rows], np.asarray(scores)[rows].argmax(axis=1)
    if len(y) == 0:
        raise TrainingError("no usable validation image: weighted F1 is undefined; check the validation images")
    return float(f1_score(y, predicted, average="weighted", zero_division=0))


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _save_checkpoint(config: TrainConfig, state: dict[str, torch.Tensor], epoch: int, f1: float) -> Path | None:
    if config.checkpoint_dir is None:
        return None
    folder = Path(config.checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.name}-best.pt"
    torch.save({"state_dict": state, "epoch": epoch, "val_weighted_f1": f1}, path)
    return path


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    class_weights: torch.Tensor,
    device: torch.device,
    bar_label: str | None,
) -> float:
    """One pass over the training rows; returns the mean class-weighted loss."""
    model.train()
    total, rows = torch.zeros((), device=device), 0
    for x, y, ok in tqdm(loader, desc=bar_label, disable=bar_label is None, leave=False):
        if int(ok.sum()) < MIN_BATCH_ROWS:
            continue
        x, y = model_input(x, ok, device), usable_rows(y, ok, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=class_weights)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach() * len(y)
        rows += len(y)
    if rows == 0:
        raise TrainingError("no usable training image in an epoch; check that the images decode")
    return float(total) / rows


def train_classifier(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    val_labels: np.ndarray,
    *,
    class_weights: np.ndarray,
    config: TrainConfig,
    device: torch.device,
) -> TrainResult:
    """Train ``model`` (batches of ``(x, y, usable)``) and leave it holding its best validation state.

    Class-weighted cross-entropy, Adam/AdamW, fp16 autocast with gradient scaling on CUDA, early
    stopping on validation weighted F1.
    """
    model.to(device)
    weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    result, best_state, stale = TrainResult(), _state_copy(model), 0
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        label = f"{config.name} {epoch}/{config.max_epochs}" if config.show_progress else None
        loss = _train_epoch(model, train_loader, optimizer, scaler, weights, device, label)
        outputs, usable = run_loader({"logits": model}, val_loader, device)
        f1 = weighted_f1(val_labels, outputs["logits"], usable)
        record = EpochRecord(epoch, loss, f1, time.perf_counter() - started)
        result.history.append(record)
        log.info("%s epoch %d: loss %.4f, val weighted F1 %.4f (%.1fs)", config.name, epoch, loss, f1, record.seconds)
        if f1 > result.best_f1:
            result.best_f1, result.best_epoch, stale = f1, epoch, 0
            best_state = _state_copy(model)
            result.checkpoint = _save_checkpoint(config, best_state, epoch, f1)
        else:
            stale += 1
            if stale >= config.patience:
                log.info("%s: no progress for %d epochs, stopping at epoch %d", config.name, stale, epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    return result


def fine_tune(
    backbone_name: str,
    train_images: Sequence[ImageItem],
    train_y: np.ndarray,
    val_images: Sequence[ImageItem],
    val_y: np.ndarray,
    *,
    image_size: int,
    config: TrainConfig,
    device: torch.device,
    store: ObjectStore | None = None,
    weights_path: str | Path | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    n_classes: int = DEFAULT_MAPPING.n_classes,
) -> tuple[MaskedClassifier, TrainResult]:
    """Fine-tune timm ``backbone_name`` end to end on labelled images (label indices, not codes).

    Training images get the white-border crop, augmentation and ImageNet normalisation; rows whose
    image cannot be used are left out of the loss.
    """
    seed_everything(config.seed)
    backbone = load_backbone(backbone_name, weights_path, num_classes=n_classes, seed=config.seed, **(backbone_kwargs or {}))
    model = MaskedClassifier(backbone, present_classes(train_y, n_classes))
    train_set = ImageDataset(train_images, train_y, image_size=image_size, train=True, store=store)
    val_set = ImageDataset(val_images, val_y, image_size=image_size, store=store)
    common: dict[str, Any] = {"device": device, "num_workers": config.num_workers}
    train_loader = make_loader(train_set, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                               drop_last=len(train_set) > config.batch_size, **common)
    val_loader = make_loader(val_set, batch_size=2 * config.batch_size, **common)  # no gradients: twice the rows fit
    result = train_classifier(model, train_loader, val_loader, np.asarray(val_y), config=config, device=device,
                              class_weights=balanced_class_weights(train_y, n_classes))
    log.info("%s fine-tuned: best val weighted F1 %.4f at epoch %d of %d", backbone_name, result.best_f1,
             result.best_epoch, result.epochs_run)
    return model, result
