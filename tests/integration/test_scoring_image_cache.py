"""Stored image-model outputs: exact round trip on PostgreSQL (COPY, bytea) and SQLite, keyed by model
version and precision, unusable images never stored, retired versions pruned; and a nightly rerun of a
real text+image model that sends only the photos it has no output for through the backbones."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient

from rakuten_ml.data.snapshot import load_products
from rakuten_ml.models.vision import ensemble as ensemble_module
from rakuten_ml.registry.resolve import resolve_model
from rakuten_ml.scoring import batch
from rakuten_ml.scoring.batch import score_products
from rakuten_ml.scoring.image_cache import ImageScoreCache, output_tag, prune_image_scores
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import COPY_MIN_ROWS, image_scores, init_db, predictions
from rakuten_ml.training.train import train_and_register
from tests.support.platforms import build_platform

N_CLASSES = 27


def _engine(kind: str, pg_url: str, tmp_path) -> sa.Engine:  # noqa: ANN001
    engine = sa.create_engine(pg_url if kind == "postgresql" else f"sqlite:///{tmp_path / 'cache.db'}")
    init_db(engine)
    return engine


def _digest(i: int) -> str:
    return f"{i:064x}"


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_stored_outputs_round_trip_exactly_per_version_and_precision(kind, pg_url, tmp_path) -> None:  # noqa: ANN001
    engine = _engine(kind, pg_url, tmp_path)
    n = COPY_MIN_ROWS + 100  # the COPY path on PostgreSQL
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(N_CLASSES), size=n).astype(np.float32)
    usable = np.ones(n, dtype=bool)
    usable[:10] = False  # an undecodable photo is never stored: it is retried next run
    digests = [_digest(i) for i in range(n)]
    cache = ImageScoreCache(engine, "clf", "3", "fp32-p1")
    assert cache.save(digests, proba, usable) == n - 10
    assert cache.save(digests, proba, usable) == n - 10  # a rerun (or a concurrent partition) upserts
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(image_scores)).scalar_one() == n - 10

    asked = [*digests, None, _digest(10**6)]  # a product without an image; a photo never scored
    found, got = cache.lookup(asked, N_CLASSES)
    assert found.tolist() == [False] * 10 + [True] * (n - 10) + [False, False]
    np.testing.assert_array_equal(got[10:n], proba[10:].astype(np.float64))  # float32 stored exactly
    assert not got[~found].any()

    for other in (ImageScoreCache(engine, "clf", "4", "fp32-p1"), ImageScoreCache(engine, "clf", "3", "fp16-p1"),
                  ImageScoreCache(engine, "clf", "3", "fp32-p2")):
        assert not other.lookup(digests, N_CLASSES)[0].any()  # another version, precision or preprocessing


def test_prune_keeps_only_the_versions_a_run_pins(pg_url, tmp_path) -> None:  # noqa: ANN001
    engine = _engine("postgresql", pg_url, tmp_path)
    proba = np.full((3, N_CLASSES), 1 / N_CLASSES)
    for version in ("1", "2", "3"):
        ImageScoreCache(engine, "clf", version, "fp32-p1").save([_digest(i) for i in range(3)], proba, np.ones(3, bool))
    ImageScoreCache(engine, "other", "1", "fp32-p1").save([_digest(0)], proba[:1], np.ones(1, bool))
    assert prune_image_scores(engine, "clf", ["2", "3"]) == 3
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(image_scores.c.model_name, image_scores.c.model_version).distinct()).all())
    assert left == {("clf", "2"), ("clf", "3"), ("other", "1")}


def _stored(platform, run_id: str) -> dict[int, tuple[int, float, str]]:  # noqa: ANN001
    stmt = sa.select(predictions.c.productid, predictions.c.prdtypecode, predictions.c.confidence, predictions.c.modality)
    with platform.engine.connect() as conn:
        rows = conn.execute(stmt.where(predictions.c.run_id == sa.bindparam("r")), {"r": run_id}).all()
    return {p: (code, conf, modality) for p, code, conf, modality in rows}


@pytest.mark.slow
def test_nightly_rerun_sends_only_unseen_photos_through_the_image_model(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    settings = Settings(home=tmp_path, vision_profile="tiny", vision_members="cnn-xgb", image_policy="optional",
                        vision_cpu_bf16="off")
    platform, snapshot_id = build_platform(settings, rows=360, images=300)
    train_and_register(platform, snapshot_id=snapshot_id, modalities=("text", "image"))
    products = load_products(platform.store, snapshot_id)
    with_image = products[products["image_key"].notna()]
    broken = with_image.iloc[:4]
    for key in broken["image_key"]:
        platform.store.put_bytes(key, b"\xff\xd8 truncated jpeg")

    model = resolve_model(platform.settings)
    classifier = batch._classifier(platform, model)
    assert output_tag(classifier.image_model) == "fp32-p1"
    sent: list[int] = []
    real = classifier.image_model.predict_proba_images

    def counting(images, store=None):  # noqa: ANN001, ANN202
        sent.append(len(images))
        return real(images, store=store)

    monkeypatch.setattr(classifier.image_model, "predict_proba_images", counting)
    first = score_products(platform, run_id="night-1", snapshot_id=snapshot_id, partition_size=100)
    assert sum(sent) == len(with_image) and first.counts["image_reused"] == 0
    sent.clear()
    second = score_products(platform, run_id="night-2", snapshot_id=snapshot_id, partition_size=100)
    assert sum(sent) == len(broken)  # only the undecodable photos are tried again
    assert second.counts["image_reused"] == len(with_image) - len(broken)
    assert {k: v for k, v in second.counts.items() if k != "image_reused"} == {
        k: v for k, v in first.counts.items() if k != "image_reused"}
    assert second.counts["text_only"] == len(products) - len(with_image) + len(broken)
    night1, night2 = _stored(platform, "night-1"), _stored(platform, "night-2")
    assert night1.keys() == night2.keys() and len(night1) == 360
    for productid, (code, confidence, modality) in night1.items():
        assert night2[productid][0] == code and night2[productid][2] == modality
        assert night2[productid][1] == pytest.approx(confidence, abs=1e-6)

    off = platform.settings.replace(scoring_image_cache=False)
    platform.settings = off
    sent.clear()
    third = score_products(platform, run_id="night-3", snapshot_id=snapshot_id, partition_size=100)
    assert sum(sent) == len(products)  # off: every row is handed to the image model again
    assert third.counts["image_reused"] == 0 and third.counts["fused"] == first.counts["fused"]

    # int8 outputs are stored under their own precision: they never answer for fp32 ones, nor the reverse.
    monkeypatch.setattr(ensemble_module, "MAX_INT8_ACCURACY_DROP", 1.0)
    platform.settings = settings.replace(vision_cpu_int8="on", vision_cpu_runtime="onnxruntime")
    int8 = score_products(platform, run_id="night-4", snapshot_id=snapshot_id, partition_size=100)
    assert int8.counts["image_reused"] == 0 and int8.n_scored == 360
    with platform.engine.connect() as conn:
        tags = dict(conn.execute(sa.select(image_scores.c.precision, sa.func.count()).group_by(image_scores.c.precision)).all())
    assert tags == {"fp32-p1": len(with_image) - len(broken), "fp32+int8-p1": len(with_image) - len(broken)}
    # the exports (fp32 and int8, per network) were kept for the next scoring task's load
    cached = list((platform.settings.home / "cache" / "onnx").glob("*.onnx"))
    assert len([p for p in cached if "-int8-" in p.name]) == len(classifier.image_model._networks())


def test_a_complete_run_following_the_aliases_drops_retired_versions_outputs(tmp_path) -> None:  # noqa: ANN001
    platform, snapshot_id = build_platform(Settings(home=tmp_path), rows=900)
    train_and_register(platform, snapshot_id=snapshot_id)
    name = platform.settings.registered_model_name
    proba = np.full((2, N_CLASSES), 1 / N_CLASSES)
    for version in ("1", "7"):
        ImageScoreCache(platform.engine, name, version, "fp32-p1").save([_digest(1), _digest(2)], proba, np.ones(2, bool))

    pinned = score_products(platform, run_id="pinned", snapshot_id=snapshot_id, model=resolve_model(platform.settings, version="1"))
    assert pinned.n_scored == 900  # a run pinned by hand keeps everything: other runs may still need "7"
    with platform.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(image_scores)).scalar_one() == 4

    client = MlflowClient(tracking_uri=platform.settings.mlflow_tracking_uri, registry_uri=platform.settings.mlflow_tracking_uri)
    client.set_registered_model_alias(name, "champion", "1")
    score_products(platform, run_id="nightly", snapshot_id=snapshot_id)
    with platform.engine.connect() as conn:
        left = set(conn.execute(sa.select(image_scores.c.model_version).distinct()).scalars())
    assert left == {"1"}
