"""Classification metrics on probability matrices whose columns follow the label mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, precision_recall_fscore_support

from rakuten_ml.labels import LabelMapping
from rakuten_ml.models.calibration import expected_calibration_error


@dataclass(frozen=True)
class EvaluationReport:
    metrics: dict[str, float]
    per_class: dict[int, dict[str, float]]
    confusion: np.ndarray
    codes: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "per_class": {str(k): v for k, v in self.per_class.items()},
            "codes": list(self.codes),
            "confusion": self.confusion.tolist(),
        }


def evaluate_proba(y_codes: np.ndarray, proba: np.ndarray, mapping: LabelMapping, threshold: float) -> EvaluationReport:
    """Accuracy, weighted/macro F1, log-loss, ECE, auto/review split and per-class scores."""
    y_idx = mapping.encode(y_codes)
    pred_idx = proba.argmax(axis=1)
    labels = np.arange(mapping.n_classes)
    precision, recall, f1, support = precision_recall_fscore_support(y_idx, pred_idx, labels=labels, zero_division=0)
    confidence = proba.max(axis=1)
    auto = confidence >= threshold
    clipped = np.clip(proba, 1e-15, 1.0)
    metrics = {
        "accuracy": float(accuracy_score(y_idx, pred_idx)),
        "f1_weighted": float(f1_score(y_idx, pred_idx, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(y_idx, pred_idx, labels=np.unique(y_idx), average="macro", zero_division=0)),
        "log_loss": float(log_loss(y_idx, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)),
        "ece": expected_calibration_error(proba, y_idx),
        "automation_rate": float(auto.mean()),
        "accuracy_auto": float((pred_idx[auto] == y_idx[auto]).mean()) if auto.any() else float("nan"),
        "accuracy_review": float((pred_idx[~auto] == y_idx[~auto]).mean()) if (~auto).any() else float("nan"),
        "n_eval": float(len(y_idx)),
    }
    per_class = {
        code: {"precision": float(p), "recall": float(r), "f1": float(f), "support": float(s)}
        for code, p, r, f, s in zip(mapping.codes, precision, recall, f1, support, strict=True)
    }
    return EvaluationReport(metrics, per_class, confusion_matrix(y_idx, pred_idx, labels=labels), mapping.codes)
