"""Offline gate: the pure verdict on crafted reports (trained models against the MLflow server are in
``tests/integration/test_promotion_gate_trained_models.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from rakuten_ml.errors import GateError
from rakuten_ml.evaluation.metrics import evaluate_proba
from rakuten_ml.labels import CLASS_CODES, DEFAULT_MAPPING
from rakuten_ml.promotion.gate import gate_verdict
from rakuten_ml.settings import GateSettings, TrainingSettings


def one_hot_report(y: np.ndarray, predicted: np.ndarray):
    proba = np.zeros((len(y), DEFAULT_MAPPING.n_classes))
    proba[np.arange(len(y)), DEFAULT_MAPPING.encode(predicted)] = 1.0
    return evaluate_proba(y, proba, DEFAULT_MAPPING, TrainingSettings().confidence_threshold)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """2,000 rows: 100 of class 2583, 20 of weak class 10, 6 of 1940, the rest spread over the others."""
    rng = np.random.default_rng(0)
    others = [c for c in CLASS_CODES if c not in (10, 1940)]
    y = np.concatenate([np.full(20, 10), np.full(6, 1940), rng.choice(others, 2000 - 26)])
    return y


def flip(y: np.ndarray, code: int, count: int, to: int = 2583) -> np.ndarray:
    out = y.copy()
    out[np.flatnonzero(y == code)[:count]] = to
    return out


def test_identical_models_pass(labels):
    verdict = gate_verdict(one_hot_report(labels, labels), one_hot_report(labels, labels), GateSettings())
    assert verdict.passed and verdict.f1_delta == 0.0 and not verdict.breaches
    assert {c.code for c in verdict.weak} == {10, 40, 1180, 1281, 2705}  # weak classes always reported


def test_weak_class_guardrail_breach_fails_even_within_the_f1_tolerance(labels):
    champion = one_hot_report(labels, labels)
    candidate = one_hot_report(labels, flip(labels, 10, 5))  # 5 of 20 used books lost: class F1 1.0 -> 0.86
    verdict = gate_verdict(candidate, champion, GateSettings(f1_tolerance=0.01, class_guardrail=0.05))
    assert verdict.f1_delta > -0.01  # overall F1 barely moves...
    assert not verdict.passed  # ...but the per-class guardrail catches it
    assert [c.code for c in verdict.breaches] == [10]
    assert "class 10 (Livres occasion, weak)" in verdict.reasons[0]
    weak10 = verdict.as_dict()["weak_classes"]["10"]
    assert weak10["champion_f1"] == 1.0 and weak10["delta"] < -0.05 and weak10["breach"]
    assert verdict.metrics()["gate.class_10.f1_delta"] == pytest.approx(weak10["delta"])


def test_small_classes_are_reported_not_judged(labels):
    verdict = gate_verdict(one_hot_report(labels, flip(labels, 1940, 3)), one_hot_report(labels, labels), GateSettings(min_class_support=10))
    grocery = next(c for c in verdict.classes if c.code == 1940)
    assert grocery.delta < -0.05 and grocery.support == 6 and not grocery.judged and not grocery.breach
    assert verdict.passed


def test_weighted_f1_tolerance(labels):
    champion = one_hot_report(labels, labels)
    worse = labels.copy()
    worse[:60] = np.where(worse[:60] == 2583, 2522, 2583)  # 3% of rows wrong, spread over many classes
    verdict = gate_verdict(one_hot_report(labels, worse), champion, GateSettings(f1_tolerance=0.01, class_guardrail=1.0))
    assert not verdict.passed and verdict.reasons[0].startswith("weighted F1")
    assert gate_verdict(one_hot_report(labels, worse), champion, GateSettings(f1_tolerance=0.05, class_guardrail=1.0)).passed


def test_reports_on_different_rows_are_refused(labels):
    with pytest.raises(GateError, match="same evaluation set"):
        gate_verdict(one_hot_report(labels[:100], labels[:100]), one_hot_report(labels, labels), GateSettings())
