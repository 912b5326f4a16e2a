"""The typed settings object: embedded defaults, sections, their variables, and the generated table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rakuten_ml.settings import DriftSettings, RollbackSettings, Settings, variable_names
from rakuten_ml.settings_doc import DOC_PATH, render


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
    assert settings.training.image_weight == 0.7
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


def test_a_section_field_reads_its_section_variable_and_the_old_names_still_work(monkeypatch):
    monkeypatch.setenv("RAKUTEN_DRIFT_KS_P_VALUE", "0.01")
    monkeypatch.setenv("RAKUTEN_CONCEPT_MAX_DROP", "0.07")  # a variable that predates the sections
    monkeypatch.setenv("RAKUTEN_API_ADMIN_TOKEN", "s3cret")
    settings = Settings()
    assert (settings.drift.ks_p_value, settings.drift.concept_max_drop) == (0.01, 0.07)
    assert settings.serving.admin_token is not None and settings.serving.admin_token.get_secret_value() == "s3cret"
    assert settings.drift == DriftSettings()  # a section alone reads the same variables
    with pytest.raises(ValidationError):  # sections are frozen: a function handed one cannot change it
        settings.drift.ks_p_value = 0.5  # type: ignore[misc]


def test_flat_keywords_go_to_their_section_and_the_rest_of_it_still_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RAKUTEN_ROLLBACK_MIN_SAMPLES", "42")
    settings = Settings(home=tmp_path, rollback_window=150, rollback=RollbackSettings(tolerance=0.05))
    assert (settings.rollback.window, settings.rollback.tolerance, settings.rollback.min_samples) == (150, 0.05, 42)
    narrower = settings.replace(rollback_window=10, registered_model_name="other")
    assert (narrower.rollback.window, narrower.registered_model_name, settings.rollback.window) == (10, "other", 150)
    with pytest.raises(ValidationError):  # replace() checks the bounds the environment would
        settings.replace(rollback_window=0)
    with pytest.raises(TypeError, match="rollbak_window"):
        settings.replace(rollbak_window=3)
    with pytest.raises(ValidationError, match="rollbak_window"):  # a mistyped keyword is an error, not ignored
        Settings(home=tmp_path, rollbak_window=3)


def test_the_environment_of_a_child_process_reproduces_the_settings(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path, vision_profile="tiny", api_admin_token="t0k", drift_min_rows=7)
    env = settings.environment("home", "vision_profile", "api_admin_token", "drift_min_rows", "s3_endpoint_url")
    assert env == {"RAKUTEN_HOME": str(tmp_path.resolve()), "RAKUTEN_VISION_PROFILE": "tiny", "RAKUTEN_API_ADMIN_TOKEN": "t0k",
                   "RAKUTEN_DRIFT_MIN_ROWS": "7"}  # unset ones are left out
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert (child.vision.profile, child.drift.min_rows, child.home) == ("tiny", 7, tmp_path.resolve())


def test_every_setting_says_what_it_does_and_has_one_variable():
    rows = variable_names()
    assert [path for _, path, field in rows if not (field.description or "").strip()] == []
    variables = [variable for variable, _, _ in rows]
    assert len(variables) == len(set(variables)) and all(v.startswith("RAKUTEN_") for v in variables)


def test_the_settings_page_is_generated_from_the_code():
    assert DOC_PATH.read_text() == render(), "docs/settings.md is stale: run `python -m rakuten_ml.settings_doc`"
    assert all(f"`{variable}`" in DOC_PATH.read_text() for variable, _, _ in variable_names())
