"""The label mapping every model shares, and the typed settings object."""

from __future__ import annotations

import numpy as np
import pytest

from rakuten_ml.errors import UnknownLabelError
from rakuten_ml.labels import CLASS_CODES, DEFAULT_MAPPING, LabelMapping, class_prior, is_known_code
from rakuten_ml.settings import Settings


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


def test_settings_embedded_defaults_and_env(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'rakuten.db'}"
    assert settings.object_store_url == str(tmp_path / "object-store")
    assert settings.mlflow_tracking_uri.startswith("sqlite:///")
    monkeypatch.setenv("RAKUTEN_DATABASE_URL", "postgresql+psycopg2://u@h/db")
    monkeypatch.setenv("RAKUTEN_OBJECT_STORE_URL", "s3://bucket/prefix")
    monkeypatch.setenv("RAKUTEN_IMAGE_WEIGHT", "0.7")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg2://u@h/db"
    assert settings.catalogue_url == "s3://bucket/prefix/raw/catalogue"
    assert settings.image_weight == 0.7
    monkeypatch.setenv("RAKUTEN_IMAGE_WEIGHT", "1.5")
    with pytest.raises(ValueError):
        Settings()


def test_a_mistyped_variable_is_warned_about_with_the_setting_it_resembles(monkeypatch, caplog):
    from rakuten_ml.settings import warn_unknown_variables

    monkeypatch.setenv("RAKUTEN_DATABSE_URL", "postgresql://db/rakuten")
    monkeypatch.setenv("RAKUTEN_TEST_PG_DSN", "host=x")  # the test suite's own variable: not a setting, not warned
    Settings()
    assert "RAKUTEN_DATABSE_URL is set but no setting reads it; did you mean RAKUTEN_DATABASE_URL?" in caplog.text
    assert "RAKUTEN_TEST_PG_DSN" not in caplog.text
    assert warn_unknown_variables(("RAKUTEN_HOME", "RAKUTEN_SCORING_QUEUE")) == []
