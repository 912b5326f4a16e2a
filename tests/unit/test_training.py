"""Training on a snapshot registers one pyfunc model in MLflow that scoring can load and use (embedded defaults:
SQLite, a local MLflow store and object store; the same round trip on the services is in
``tests/integration/test_training_on_services.py``)."""

from __future__ import annotations

import pytest

from rakuten_ml.errors import ModelLoadError, TrainingError
from rakuten_ml.registry.resolve import load_classifier, resolve_model
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.training.train import train_and_register
from tests.support.platforms import build_platform, check_training_round_trip


def test_train_register_score_on_embedded_defaults(settings):
    platform, snapshot_id = build_platform(settings)
    check_training_round_trip(platform, snapshot_id)


def test_too_small_snapshot_is_a_clear_error(settings):
    platform, snapshot_id = build_platform(settings, rows=12)
    with pytest.raises(TrainingError, match="at least 20 rows"):
        train_and_register(platform, snapshot_id=snapshot_id)


def test_unsupported_modality_is_a_clear_error(settings):
    with pytest.raises(TrainingError, match="not trainable"):
        train_and_register(Platform(settings).prepare(), modalities=("text", "audio"))


def test_no_registered_model_is_a_clear_error(settings):
    with pytest.raises(ModelLoadError, match="no registered version|cannot resolve"):
        resolve_model(settings)


def test_unloadable_model_is_a_clear_error(settings, tmp_path):
    from rakuten_ml.registry.resolve import ResolvedModel

    with pytest.raises(ModelLoadError, match="cannot load"):
        load_classifier(settings, ResolvedModel("does-not-exist", "7", None))


def test_vision_config_from_settings(tmp_path):
    from rakuten_ml.errors import ConfigurationError
    from rakuten_ml.training.fitting import vision_config

    config = vision_config(Settings(home=tmp_path, vision_profile="tiny", vision_members="cnn-xgb,vit-mlp", vision_weights="cnn-xgb=/w/r.pth"))
    assert set(config.backbones) == {"cnn-xgb", "vit-mlp"} and set(config.weights) == {"cnn-xgb", "vit-mlp"}
    assert config.weights_paths == {"cnn-xgb": "/w/r.pth"} and config.image_size == 64
    assert config.checkpoint_dir == str(tmp_path.resolve() / "checkpoints")
    full = vision_config(Settings(home=tmp_path))
    assert full.image_size == 224 and set(full.backbones) == {"efficientnet", "vit-mlp", "cnn-xgb"}
    with pytest.raises(ConfigurationError):
        vision_config(Settings(home=tmp_path, vision_weights="resnet=/w.pth"))


def test_a_snapshot_too_small_for_a_stratified_split_says_what_to_do():
    import pandas as pd

    from rakuten_ml.training.split import stratified_split

    products = pd.DataFrame({"productid": range(60), "prdtypecode": [i % 25 for i in range(60)]})
    with pytest.raises(TrainingError, match="too few for a stratified 10% split .* ingest more products, or train text only"):
        stratified_split(products, 0.1, 42)
    train, held_out = stratified_split(products, 0.5, 42)
    assert len(held_out) == 30 and set(held_out["prdtypecode"]) == set(range(25))
