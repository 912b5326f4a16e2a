"""The seed's image model: three architecturally different members combined by weighted soft voting.

Report 4.4-4.5: a ViT (DINO) with an MLP head sees global structure, XGBoost on ResNet features sees
local textures, a fine-tuned EfficientNet-B0 sees domain details; their errors correlate below 0.45,
and voting their probabilities (weights 4/7, 1/7, 2/7) reached 92 % accuracy where the best member
alone had 91.4 % F1. :class:`VisionEnsemble` implements the fusion ``ImageModel`` protocol; how a
fitted one runs on this machine's CPU (ONNX Runtime, int8) is :mod:`rakuten_ml.models.vision.deployment`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rakuten_ml.errors import ConfigurationError, TrainingError
from rakuten_ml.labels import DEFAULT_MAPPING, LabelMapping
from rakuten_ml.models.calibration import softmax
from rakuten_ml.models.vision.backbones import Backbone, check_backbone_name, load_backbone, select_device
from rakuten_ml.models.vision.dataset import ImageDataset, ImageItem, check_items, load_image_bytes
from rakuten_ml.models.vision.deployment import CpuDeployment
from rakuten_ml.models.vision.deployment import seconds_per_image as measure_seconds_per_image
from rakuten_ml.models.vision.features import FeatureExtractor, cached_features, run_batches
from rakuten_ml.models.vision.finetune import MaskedClassifier, TrainConfig, fine_tune, seed_everything, weighted_f1
from rakuten_ml.models.vision.heads import MLPHead, XGBoostHead
from rakuten_ml.models.vision.onnx_cache import OnnxExportCache
from rakuten_ml.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

MEMBER_EFFICIENTNET = "efficientnet"  # fine-tuned end to end
MEMBER_VIT_MLP = "vit-mlp"  # frozen ViT/DINO features + MLP head
MEMBER_CNN_XGB = "cnn-xgb"  # frozen ResNet features + XGBoost head
MEMBERS: tuple[str, ...] = (MEMBER_EFFICIENTNET, MEMBER_VIT_MLP, MEMBER_CNN_XGB)
ENSEMBLE_METRIC = "ensemble"
# Settings a fitted ensemble may change (see VisionEnsemble.with_config); the rest shaped its members.
INFERENCE_SETTINGS: tuple[str, ...] = ("weights", "device", "inference_batch_size", "num_workers", "cpu_bf16")

# Report 4.5.2: the DINO+MLP member is the most accurate and most confident ("patron du vote"),
# EfficientNet stabilises, XGBoost corrects; weights fixed by the seed on its validation set.
DEFAULT_MEMBER_WEIGHTS: dict[str, float] = {MEMBER_EFFICIENTNET: 2 / 7, MEMBER_VIT_MLP: 4 / 7, MEMBER_CNN_XGB: 1 / 7}
FULL_BACKBONES: dict[str, str] = {
    MEMBER_EFFICIENTNET: "efficientnet_b0",
    MEMBER_VIT_MLP: "vit_small_patch16_224",
    MEMBER_CNN_XGB: "resnet50",
}
# The seed's ViT member (report 4.4): DINOv3 ViT-L/16, self-supervised. Needs local weights (random
# init is no DINO); pass dino_backbone="vit_small_patch16_dinov3" for a 20x lighter one.
DINO_BACKBONE = "vit_large_patch16_dinov3"
FULL_IMAGE_SIZE = 224
TINY_IMAGE_SIZE = 64
# Labelled validation photos kept (encoded) with a fitted ensemble for int8 quantization: even rows
# calibrate the activation ranges, odd rows check each quantized member's accuracy against fp32's.
CALIBRATION_IMAGES = 256
# The accuracy a member may lose in int8 on those held-out photos: promotion's rollback tolerance.
MAX_INT8_ACCURACY_DROP = 0.02


_PLACEMENT_LOCK = threading.Lock()


def _is_placed(network: torch.nn.Module, device: torch.device) -> bool:
    """Whether ``.to(device, channels_last)`` already ran: its first weight is on ``device`` and its
    first 4-D weight is channels-last (``.to`` moves a network whole; checking every weight on
    every request cost milliseconds)."""
    params = network.parameters()
    first = next(params, None)
    if first is None:
        return True
    if first.device.type != device.type or (device.index is not None and first.device.index != device.index):
        return False
    for param in itertools.chain([first], params):
        if param.dim() == 4:
            return param.is_contiguous(memory_format=torch.channels_last)
    return True


def soft_vote(
    members: Mapping[str, tuple[np.ndarray, np.ndarray]], weights: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of member probabilities, per row over the members that could use its image.

    ``members``: name -> (proba (n, k), usable mask). Weights are renormalised over the members
    present (and usable on the row); members without a weight do not vote. Rows no member could
    use get a uniform distribution and ``False`` in the returned mask.
    """
    voting = {name: value for name, value in members.items() if weights.get(name, 0.0) > 0}
    if not voting:
        raise ConfigurationError(f"no member with a positive weight among {sorted(members)}; weights: {dict(weights)}")
    first = next(iter(voting.values()))[0]
    total = np.zeros(first.shape, dtype=np.float64)
    weight_sum = np.zeros(len(first), dtype=np.float64)
    for name, (proba, usable) in voting.items():
        row_weight = weights[name] * np.asarray(usable, dtype=np.float64)
        total += row_weight[:, None] * np.asarray(proba, dtype=np.float64)
        weight_sum += row_weight
    mask = weight_sum > 0
    proba = np.full(first.shape, 1.0 / first.shape[1])
    proba[mask] = total[mask] / weight_sum[mask, None]
    return proba, mask


@dataclass(frozen=True)
class VisionEnsembleConfig:
    """Members (member name -> timm architecture), voting weights and training settings.

    The default is the full profile (EfficientNet-B0, ViT-S/16, ResNet-50 at 224 px); :meth:`tiny`
    is a CPU-minutes profile for tests and the demo; :meth:`full` can point the ViT at DINO weights.
    """

    backbones: dict[str, str] = field(default_factory=lambda: dict(FULL_BACKBONES))
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MEMBER_WEIGHTS))
    weights_paths: dict[str, str] = field(default_factory=dict)  # member -> local state_dict file
    backbone_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # member -> timm.create_model kwargs
    image_size: int = FULL_IMAGE_SIZE
    # EfficientNet fine-tuning
    max_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 1e-2
    patience: int = 3
    # MLP head
    mlp_hidden: tuple[int, ...] = (1024, 512)
    mlp_dropout: float = 0.2
    head_max_epochs: int = 100
    head_batch_size: int = 256
    head_learning_rate: float = 1e-3
    head_patience: int = 10
    # XGBoost head (modest: the seed's 300 x depth-10 "heavy" run bought 4 F1 points for 6 hours)
    xgb_params: dict[str, Any] = field(
        default_factory=lambda: {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "subsample": 0.8,
                                 "colsample_bytree": 0.5}
    )
    sharpen_power: float = 3.0
    # Execution
    device: str = "auto"  # resolved at fit and again at each predict: a CPU-trained model uses a GPU when present
    inference_batch_size: int = 128
    num_workers: int = 0
    cpu_bf16: bool = False  # bf16 autocast for backbones on CPU (features and inference); CUDA always uses fp16
    n_jobs: int | None = None  # XGBoost threads; None = every core
    seed: int = 42
    progress: bool | None = None
    checkpoint_dir: str | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(self.backbones)

    @classmethod
    def tiny(cls, **overrides: Any) -> VisionEnsembleConfig:
        """The seed's three members, each at its smallest timm size, 64 px, a few epochs: CPU-friendly."""
        settings: dict[str, Any] = {
            "backbones": {MEMBER_EFFICIENTNET: "efficientnet_b0", MEMBER_VIT_MLP: "vit_tiny_patch16_224",
                          MEMBER_CNN_XGB: "resnet18"},
            "backbone_kwargs": {MEMBER_VIT_MLP: {"img_size": TINY_IMAGE_SIZE}},
            "image_size": TINY_IMAGE_SIZE,
            # From random init: small batches and a large step learn in a few epochs (3e-4 stays at chance).
            "max_epochs": 3,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "patience": 2,
            "mlp_hidden": (256,),
            "head_max_epochs": 60,
            "head_batch_size": 64,
            "head_patience": 10,
            "xgb_params": {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.2, "subsample": 0.8,
                           "colsample_bytree": 0.5},
            "inference_batch_size": 64,
        }
        return cls(**{**settings, **overrides})

    @classmethod
    def full(
        cls, dino_weights: str | Path | None = None, dino_backbone: str = DINO_BACKBONE, **overrides: Any
    ) -> VisionEnsembleConfig:
        """The production profile; with local ``dino_weights`` the ViT member is ``dino_backbone`` at 224 px."""
        settings: dict[str, Any] = {}
        if dino_weights is not None:
            settings = {
                "backbones": {**FULL_BACKBONES, MEMBER_VIT_MLP: dino_backbone},
                "backbone_kwargs": {MEMBER_VIT_MLP: {"img_size": FULL_IMAGE_SIZE}},
                "weights_paths": {MEMBER_VIT_MLP: str(dino_weights)},
            }
        return cls(**{**settings, **overrides})

    def validate(self) -> None:
        """Raise a :class:`ConfigurationError` saying what to fix; called by ``fit``."""
        unknown = sorted(set(self.backbones) - set(MEMBERS))
        if unknown or not self.backbones:
            raise ConfigurationError(f"unknown ensemble members {unknown}; choose among {list(MEMBERS)}")
        for mapping_name in ("weights", "weights_paths", "backbone_kwargs"):
            extra = sorted(set(getattr(self, mapping_name)) - set(self.backbones))
            if extra:
                raise ConfigurationError(f"{mapping_name} names members {extra} that are not in backbones {self.members}")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.get(m, 0) > 0 for m in self.members):
            raise ConfigurationError(f"voting weights must be >= 0 with one member > 0, got {self.weights}")
        if self.image_size < 32:
            raise ConfigurationError(f"image_size={self.image_size} is too small for the backbones' strides; use >= 32")
        for name in self.backbones.values():
            check_backbone_name(name)

    def train_config(self) -> TrainConfig:
        return TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           weight_decay=self.weight_decay, optimizer="adamw", patience=self.patience, seed=self.seed,
                           num_workers=self.num_workers, progress=self.progress, checkpoint_dir=self.checkpoint_dir,
                           name=MEMBER_EFFICIENTNET)

    def head(self, member: str) -> MLPHead | XGBoostHead:
        if member == MEMBER_VIT_MLP:
            return MLPHead(self.mlp_hidden, self.mlp_dropout, learning_rate=self.head_learning_rate,
                           max_epochs=self.head_max_epochs, batch_size=self.head_batch_size,
                           patience=self.head_patience, seed=self.seed, progress=self.progress)
        return XGBoostHead(**self.xgb_params, sharpen_power=self.sharpen_power, n_jobs=self.n_jobs, seed=self.seed)


@dataclass(frozen=True)
class _FeatureSource:
    """Where a fit gets frozen features: the snapshot's cache when it has a store and a snapshot id."""

    store: ObjectStore | None
    snapshot_id: str | None
    row_ids: Sequence[object] | None

    def features(
        self, extractor: FeatureExtractor, images: Sequence[ImageItem], device: torch.device
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.store is None or self.snapshot_id is None:
            return extractor.extract(images, store=self.store, device=device)
        return cached_features(extractor, images, store=self.store, snapshot_id=self.snapshot_id,
                               row_ids=self.row_ids, device=device)


class VisionEnsemble:
    """Fit the configured members on images + prdtypecodes; predict by weighted soft voting.

    Picklable with joblib: networks pickle as CPU state_dicts (see ``Backbone``), so a model saved on
    a GPU worker loads on a CPU-only server; the device is chosen again at each predict.
    """

    def __init__(self, config: VisionEnsembleConfig | None = None, mapping: LabelMapping = DEFAULT_MAPPING) -> None:
        self.config = config or VisionEnsembleConfig()
        self.mapping = mapping

    # ----------------------------------------------------------------- training
    def fit(
        self,
        train_images: Sequence[ImageItem],
        train_codes: Sequence[int],
        val_images: Sequence[ImageItem],
        val_codes: Sequence[int],
        store: ObjectStore | None = None,
        snapshot_id: str | None = None,
        *,
        train_ids: Sequence[object] | None = None,
        val_ids: Sequence[object] | None = None,
    ) -> VisionEnsemble:
        """Train every member; images are bytes, object-store keys (with ``store``) or ``None``.

        With ``store`` and ``snapshot_id``, frozen features go through the snapshot's feature cache,
        rows keyed by ``train_ids``/``val_ids`` (productids) or else by image content.
        """
        config = self.config
        config.validate()
        if (train_ids is None) != (val_ids is None):
            raise ConfigurationError("pass both train_ids and val_ids (productids) or neither")
        for images, codes, what in ((train_images, train_codes, "train"), (val_images, val_codes, "validation")):
            if len(images) != len(codes):
                raise TrainingError(f"{len(images)} {what} images but {len(codes)} codes; pass one code per image")
            check_items(images, store)
        y_train, y_val = self.mapping.encode(train_codes), self.mapping.encode(val_codes)
        device = select_device(config.device)
        seed_everything(config.seed)
        started = time.perf_counter()
        self.backbones_: dict[str, Backbone] = {}
        self.heads_: dict[str, MLPHead | XGBoostHead] = {}
        self.finetuned_: MaskedClassifier | None = None
        self.fit_seconds_: dict[str, float] = {}
        cache = _FeatureSource(store, snapshot_id, None if train_ids is None else [*train_ids, *val_ids])  # type: ignore[misc]
        val_proba: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for member in config.members:
            member_started = time.perf_counter()
            if member == MEMBER_EFFICIENTNET:
                val_proba[member] = self._fit_finetuned(train_images, y_train, val_images, y_val, store, device)
            else:
                val_proba[member] = self._fit_on_features(member, train_images, y_train, val_images, y_val, cache, device)
            self.fit_seconds_[member] = time.perf_counter() - member_started

        self.calibration_images_, self.calibration_codes_ = self._calibration_set(val_images, y_val, store)
        self.member_metrics_ = {m: weighted_f1(y_val, proba, ok) for m, (proba, ok) in val_proba.items()}
        vote, ok_vote = soft_vote(val_proba, config.weights)
        self.member_metrics_[ENSEMBLE_METRIC] = weighted_f1(y_val, vote, ok_vote)
        self.fit_seconds_[ENSEMBLE_METRIC] = time.perf_counter() - started
        log.info("vision ensemble fitted in %.1fs on %s; validation weighted F1: %s", self.fit_seconds_[ENSEMBLE_METRIC],
                 device, {k: round(v, 4) for k, v in self.member_metrics_.items()})
        return self

    def _fit_on_features(
        self, member: str, train_images: Sequence[ImageItem], y_train: np.ndarray, val_images: Sequence[ImageItem],
        y_val: np.ndarray, source: _FeatureSource, device: torch.device,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frozen backbone -> features (through the cache) -> head; returns its validation probabilities."""
        config = self.config
        backbone = load_backbone(config.backbones[member], config.weights_paths.get(member), seed=config.seed,
                                 **config.backbone_kwargs.get(member, {}))
        extractor = FeatureExtractor(backbone, config.image_size, config.inference_batch_size, config.num_workers,
                                     config.cpu_bf16)
        features, usable = source.features(extractor, [*train_images, *val_images], device)
        n = len(train_images)
        ok_train, ok_val = usable[:n], usable[n:]
        head = config.head(member)
        head.fit(features[:n][ok_train], y_train[ok_train], features[n:][ok_val], y_val[ok_val], device=device)
        self.backbones_[member], self.heads_[member] = backbone.cpu(), head  # GPU memory back for the next member
        return self._head_proba(head, features[n:], ok_val), ok_val

    def _fit_finetuned(
        self, train_images: Sequence[ImageItem], y_train: np.ndarray, val_images: Sequence[ImageItem],
        y_val: np.ndarray, store: ObjectStore | None, device: torch.device,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fine-tune the EfficientNet member; returns its validation probabilities."""
        config = self.config
        self.finetuned_, self.finetune_result_ = fine_tune(
            config.backbones[MEMBER_EFFICIENTNET], train_images, y_train, val_images, y_val,
            image_size=config.image_size, config=config.train_config(), device=device, store=store,
            weights_path=config.weights_paths.get(MEMBER_EFFICIENTNET),
            backbone_kwargs=config.backbone_kwargs.get(MEMBER_EFFICIENTNET), n_classes=self.mapping.n_classes,
        )
        outputs, ok_val = self._run({MEMBER_EFFICIENTNET: self.finetuned_}, val_images, store, device)
        return self._logit_proba(outputs[MEMBER_EFFICIENTNET], ok_val), ok_val

    # ----------------------------------------------------------------- prediction
    def predict_proba_members(
        self, images: Sequence[ImageItem], store: ObjectStore | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """member name -> ``(proba (n, 27) in mapping order, usable mask)``; unusable rows are uniform."""
        self._check_fitted()
        device = select_device(self.config.device)
        outputs, usable = self._run(self._inference_networks(device), images, store, device)
        members = {}
        for member in self.config.members:
            if member == MEMBER_EFFICIENTNET:
                proba = self._logit_proba(outputs[member], usable)
            else:
                proba = self._head_proba(self.heads_[member], outputs[member], usable, device)
            members[member] = (proba, usable)
        return members

    def predict_proba_images(
        self, images: Sequence[ImageItem], store: ObjectStore | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Soft vote of the members with the configured weights: the fusion ``ImageModel`` protocol."""
        return soft_vote(self.predict_proba_members(images, store), self.config.weights)

    def with_config(self, **changes: Any) -> VisionEnsemble:
        """A copy sharing the fitted members with other inference settings (weights, device, batching)."""
        fixed = sorted(set(changes) - set(INFERENCE_SETTINGS))
        if fixed:
            raise ConfigurationError(f"{fixed} are fixed once fitted; only {list(INFERENCE_SETTINGS)} can change")
        clone = object.__new__(VisionEnsemble)
        clone.__dict__.update(self.__dict__)
        clone.config = dataclasses.replace(self.config, **changes)
        clone.config.validate()
        return clone

    def _run(
        self, networks: Mapping[str, torch.nn.Module], images: Sequence[ImageItem], store: ObjectStore | None,
        device: torch.device,
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        self._place(device)
        return run_batches(networks, images, image_size=self.config.image_size, device=device,
                           batch_size=self.config.inference_batch_size, store=store, num_workers=self.config.num_workers,
                           cpu_bf16=self.config.cpu_bf16)

    def prepare(
        self, device: torch.device | None = None, *, runtime_batch: int | None = None, runtime: str = "auto",
        int8: bool = False, onnx_cache: OnnxExportCache | None = None,
    ) -> None:
        """Place the networks for inference now (servers call it once at load): predictions then only
        read the weights, so concurrent requests never see a network half-moved.

        With ``runtime_batch``, on the CPU, each network is also exported to ONNX Runtime and the
        session kept where it is faster at that batch size on this machine (``runtime="auto"``) or
        always (``"onnxruntime"``); ``int8`` quantizes it first where the member's predictions
        survive it (:mod:`rakuten_ml.models.vision.onnx_runtime`); ``onnx_cache`` saves redoing exports.
        """
        self._check_fitted()
        device = device or select_device(self.config.device)
        self._place(device)
        self._deployment = CpuDeployment()  # torch until the new sessions exist, even if their export fails
        self._deployment = CpuDeployment.build(
            self._networks(), self.heads_, device=device, batch_size=runtime_batch, runtime=runtime,
            image_size=self.config.image_size, cpu_bf16=self.config.cpu_bf16, int8=int8,
            calibration_images=self.__dict__.get("calibration_images_") or [],
            calibration_codes=self.__dict__.get("calibration_codes_"), max_accuracy_drop=MAX_INT8_ACCURACY_DROP,
            cache=onnx_cache,
        )

    def precision(self, device: torch.device) -> str:
        """What the image outputs are computed in here (``fp32``, ``bf16``, ``fp16``, with ``+int8`` when a
        member runs quantized): part of the key of stored outputs, so precisions never mix."""
        return self._cpu_deployment().precision(device, self.config.cpu_bf16)

    def seconds_per_image(self, batch_size: int) -> tuple[float, float] | None:
        """(decoding, networks) seconds per photo on this machine, measured on the calibration photos
        (one decoding thread; the networks as :meth:`prepare` left them, on a batch of up to
        ``batch_size``): batch scoring decides from them whether to decode beside the networks
        (``rakuten_ml.scoring.device``). ``None`` for a model fitted without calibration photos."""
        images = self.__dict__.get("calibration_images_") or []
        if not images:
            return None
        device = select_device(self.config.device)
        self._place(device)
        return measure_seconds_per_image(images, self._inference_networks(device), image_size=self.config.image_size,
                                         device=device, batch_size=batch_size, cpu_bf16=self.config.cpu_bf16)

    def set_cpu_threads(self, threads: int) -> None:
        """Give the ONNX Runtime sessions ``threads`` threads (torch's own are set with ``torch.set_num_threads``)."""
        self._cpu_deployment().set_threads(threads)

    def _calibration_set(
        self, images: Sequence[ImageItem], y_idx: np.ndarray, store: ObjectStore | None
    ) -> tuple[list[bytes], np.ndarray]:
        """Up to :data:`CALIBRATION_IMAGES` decodable validation photos (encoded bytes: a tenth of their
        tensors' size) and their class indices, in a seeded order."""
        kept: list[bytes] = []
        codes: list[int] = []
        dataset = ImageDataset(images, image_size=self.config.image_size, store=store)
        for i in np.random.default_rng(self.config.seed).permutation(len(images)):
            data = load_image_bytes(images[i], store)
            if data is not None and dataset.decode(data) is not None:  # a missing or undecodable photo is left out
                kept.append(data)
                codes.append(int(y_idx[i]))
            if len(kept) == CALIBRATION_IMAGES:
                break
        return kept, np.asarray(codes, dtype=np.int64)

    def _networks(self) -> dict[str, torch.nn.Module]:
        networks: dict[str, torch.nn.Module] = dict(self.backbones_)
        if self.finetuned_ is not None:
            networks[MEMBER_EFFICIENTNET] = self.finetuned_
        return networks

    def _inference_networks(self, device: torch.device) -> dict[str, torch.nn.Module]:
        """The networks, with the ONNX Runtime sessions :meth:`prepare` kept on the CPU."""
        return self._cpu_deployment().networks(self._networks(), device)

    def _cpu_deployment(self) -> CpuDeployment:
        """What :meth:`prepare` built on this machine; an empty one (torch everywhere) before it runs,
        and after unpickling, which never carries it."""
        deployment = self.__dict__.get("_deployment")
        return deployment if deployment is not None else CpuDeployment()

    def _place(self, device: torch.device) -> None:
        """Move the networks to ``device`` in channels-last layout, only those not there yet: moving
        rewrites weights in place, which must not happen under a concurrent forward pass. Copies made
        by :meth:`with_config` share the networks, so where they are is checked, never cached."""
        networks = list(self._networks().values())
        if all(_is_placed(network, device) for network in networks):
            return
        with _PLACEMENT_LOCK:  # a thread that finds them placed only reads; the first ones move them in turn
            for network in networks:
                if not _is_placed(network, device):
                    # normalize_batch's layout; torch's stubs lack the (device, memory_format) overload
                    network.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _logit_proba(self, logits: np.ndarray, usable: np.ndarray) -> np.ndarray:
        proba = np.full(logits.shape, 1.0 / logits.shape[1])
        if usable.any():
            proba[usable] = softmax(logits[usable])
        return proba

    def _head_proba(
        self, head: MLPHead | XGBoostHead, features: np.ndarray, usable: np.ndarray, device: torch.device | None = None
    ) -> np.ndarray:
        proba = np.full((len(features), self.mapping.n_classes), 1.0 / self.mapping.n_classes)
        if usable.any():
            proba[usable] = head.predict_proba(features[usable], device)
        return proba

    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise TrainingError("this VisionEnsemble is not fitted; call fit(...) before predicting")

    # ----------------------------------------------------------------- persistence
    def __getstate__(self) -> dict[str, Any]:
        """Networks go to CPU before pickling: the file then loads on machines without a GPU."""
        if getattr(self, "heads_", None) is not None:
            self._place(torch.device("cpu"))
        state = self.__dict__.copy()
        state.pop("_deployment", None)  # ONNX Runtime sessions of this machine: prepare() rebuilds them
        return state
