"""Judging a fitted classifier on the held-out evaluation rows: the fused report, one report per
modality, the seed's crash tests on the image path, and the flat metrics logged with the version."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rakuten_ml.evaluation.metrics import EvaluationReport, evaluate_proba
from rakuten_ml.evaluation.robustness import PERTURBATIONS, perturb_images
from rakuten_ml.labels import DEFAULT_MAPPING
from rakuten_ml.models.fusion import FusedClassifier
from rakuten_ml.storage.object_store import ObjectStore
from rakuten_ml.training.fitting import TEXT_COLUMNS


@dataclass(frozen=True)
class Assessment:
    report: EvaluationReport  # the fused model's
    by_modality: dict[str, EvaluationReport]  # text only, image only, fused (when both modalities are there)
    robustness: dict[str, float]  # weighted F1 of the image path per perturbation
    proba: np.ndarray  # fused probabilities of the evaluation rows, for the reliability figure
    metrics: dict[str, float]


def assess(classifier: FusedClassifier, evaluation: pd.DataFrame, store: ObjectStore, *, threshold: float) -> Assessment:
    """Score ``evaluation`` (its images too when the classifier has an image model) and summarise it."""
    use_image = classifier.image_model is not None
    y_eval = evaluation["prdtypecode"].to_numpy()
    images = evaluation["image_key"].tolist() if use_image else None
    p_text, p_image, has_text, has_image = classifier.modality_probabilities(evaluation[TEXT_COLUMNS], images, store)
    proba, modality = classifier.fuse(p_text, p_image, has_text, has_image)
    report = evaluate_proba(y_eval, proba, DEFAULT_MAPPING, threshold)
    by_modality: dict[str, EvaluationReport] = {}
    if p_text is not None and p_image is not None:
        by_modality = {
            "text only": evaluate_proba(y_eval, p_text, DEFAULT_MAPPING, threshold),
            "image only (soft vote)": evaluate_proba(y_eval, p_image, DEFAULT_MAPPING, threshold),
            f"fused (w_img={classifier.image_weight:.1f})": report,
        }
    robustness = _robustness(classifier, evaluation, store) if use_image else {}
    metrics = dict(report.metrics)
    metrics |= {f"{name.split(' ')[0]}_f1_weighted": sub.metrics["f1_weighted"] for name, sub in by_modality.items()}
    metrics |= {f"robustness_f1_{name}": value for name, value in robustness.items()}
    member_metrics: dict[str, float] = getattr(classifier.image_model, "member_metrics_", {})  # an ensemble's members
    metrics |= {f"vision_val_f1_{member}": value for member, value in member_metrics.items()}
    metrics["share_fused"] = float(np.mean(modality == "fused"))
    return Assessment(report, by_modality, robustness, proba, metrics)


def _robustness(classifier: FusedClassifier, evaluation: pd.DataFrame, store: ObjectStore) -> dict[str, float]:
    """Weighted F1 of the image path under the seed's crash tests (rotation, noise, brightness)."""
    from sklearn.metrics import f1_score

    with_image = evaluation[evaluation["image_key"].notna()]
    if with_image.empty or classifier.image_model is None:
        return {}
    images = [store.get_bytes(key) for key in with_image["image_key"]]
    y_idx = DEFAULT_MAPPING.encode(with_image["prdtypecode"])
    scores = {}
    for name, perturbation in {"none": None, **PERTURBATIONS}.items():
        batch = images if perturbation is None else perturb_images(images, perturbation)
        proba, _ = classifier.image_model.predict_proba_images(batch)
        scores[name] = float(f1_score(y_idx, proba.argmax(axis=1), average="weighted", zero_division=0))
    return scores
