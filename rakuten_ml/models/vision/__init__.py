"""The image model: three timm members (fine-tuned EfficientNet, ViT + MLP, ResNet + XGBoost) voting.

Modules from raw bytes to votes: ``preprocessing`` (decode, crop, normalise) -> ``dataset`` (lazy
loading) -> ``backbones`` (timm by name, local weights) -> ``features`` (frozen extraction, cache)
-> ``heads`` / ``finetune`` (training) -> ``ensemble`` (soft voting, the fusion ``ImageModel``);
``deployment`` runs a fitted ensemble on this machine's CPU (ONNX Runtime sessions from ``onnx_runtime``).
Importing this package loads torch and timm: DAG files must import it inside tasks only.
"""

from rakuten_ml.models.vision.backbones import load_backbone, select_device
from rakuten_ml.models.vision.ensemble import (
    DEFAULT_MEMBER_WEIGHTS,
    MEMBERS,
    VisionEnsemble,
    VisionEnsembleConfig,
    soft_vote,
)

__all__ = [
    "DEFAULT_MEMBER_WEIGHTS",
    "MEMBERS",
    "VisionEnsemble",
    "VisionEnsembleConfig",
    "load_backbone",
    "select_device",
    "soft_vote",
]
