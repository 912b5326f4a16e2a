"""What a registered version is compared against: its training snapshot, validation accuracy and
validation class distribution, read from the registry (or given explicitly)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rakuten_ml.errors import ModelLoadError, RegistryError
from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.registry.contract import ACCURACY_TAG, EVALUATION_REPORT, SNAPSHOT_TAG
from rakuten_ml.registry.errors import registry_errors
from rakuten_ml.registry.gateway import ModelRegistry
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)

WITHOUT_REGISTRY = "pass the reference snapshot and baseline accuracy explicitly to check without the registry"


@dataclass(frozen=True)
class ModelReference:
    """What a model version was trained and validated on."""

    snapshot_id: str
    baseline_accuracy: float | None
    predicted_class_counts: np.ndarray | None  # column sums of the validation confusion matrix


def resolve_reference(settings: Settings, model_version: str) -> ModelReference:
    """Training snapshot, validation accuracy and validation class distribution of a registered version."""
    registry = ModelRegistry(settings)
    name = settings.registered_model_name
    with registry_errors(settings.mlflow_tracking_uri, f"read {name!r} version {model_version}", then=WITHOUT_REGISTRY,
                         error=ModelLoadError, not_found=None):
        version = registry.client.get_model_version(name, model_version)
    snapshot_id = version.tags.get(SNAPSHOT_TAG)
    if not snapshot_id:
        raise ModelLoadError(f"{name!r} version {model_version} has no snapshot_id tag: its training data is unknown")
    accuracy = version.tags.get(ACCURACY_TAG)
    counts = None
    try:
        report = registry.load_run_dict(version.run_id, EVALUATION_REPORT)
        confusion = np.asarray(report["confusion"], dtype=float)
        by_code = dict(zip((int(c) for c in report["codes"]), confusion.sum(axis=0), strict=True))
        counts = np.array([by_code.get(c, 0.0) for c in CLASS_CODES])
    except (RegistryError, OSError, KeyError, ValueError) as exc:
        log.warning("no validation report for version %s (%s): prediction drift uses the training labels", model_version, exc)
    return ModelReference(snapshot_id, float(accuracy) if accuracy else None, counts)


def reference_for(settings: Settings, model_version: str, snapshot_id: str | None, accuracy: float | None) -> ModelReference:
    """The given snapshot and accuracy, what is missing read from the registry."""
    if snapshot_id and accuracy is not None:
        return ModelReference(snapshot_id, accuracy, None)
    registered = resolve_reference(settings, model_version)
    return ModelReference(
        snapshot_id or registered.snapshot_id,
        accuracy if accuracy is not None else registered.baseline_accuracy,
        registered.predicted_class_counts,
    )
