"""The label mapping every model shares."""

from __future__ import annotations

import numpy as np
import pytest

from rakuten_ml.errors import UnknownLabelError
from rakuten_ml.labels import CLASS_CODES, DEFAULT_MAPPING, LabelMapping, class_prior, is_known_code


def test_27_classes_with_real_prior():
    assert len(CLASS_CODES) == 27 and len(set(CLASS_CODES)) == 27
    prior = class_prior()
    assert abs(sum(prior.values()) - 1) < 1e-9
    assert max(prior, key=prior.get) == 2583 and 0.11 < prior[2583] < 0.13
    assert min(prior, key=prior.get) == 1180 or prior[60] < 0.011


def test_mapping_round_trip_and_serialisation():
    codes = np.array([2583, 10, 2905])
    assert list(DEFAULT_MAPPING.decode(DEFAULT_MAPPING.encode(codes))) == list(codes)
    assert LabelMapping.from_json(DEFAULT_MAPPING.to_json()) == DEFAULT_MAPPING
    assert DEFAULT_MAPPING.name_of(2583).startswith("Piscine")


def test_unknown_label_is_an_error_never_a_remap():
    with pytest.raises(UnknownLabelError, match="1234"):
        DEFAULT_MAPPING.encode([10, 1234])
    with pytest.raises(UnknownLabelError):
        LabelMapping((10, 11))
    assert not is_known_code("12ab") and not is_known_code(10.5) and is_known_code("2583")
