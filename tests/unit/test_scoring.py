"""Batch scoring: partitions, resume after a crash, idempotent upserts, A/B variants, text-only fallback."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import torch
from mlflow import MlflowClient
from typer.testing import CliRunner

from rakuten_ml.catalogue.generator import CatalogueSpec, generate_catalogue
from rakuten_ml.cli import app as cli_app
from rakuten_ml.data.ingest import ingest
from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import ScoringRunConflictError
from rakuten_ml.registry.resolve import resolve_model
from rakuten_ml.scoring import batch
from rakuten_ml.scoring import device as device_module
from rakuten_ml.scoring.batch import RunModels, resolve_run_models, score_partition, score_products, start_run
from rakuten_ml.scoring.device import decoding_workers
from rakuten_ml.scoring.partitions import plan_partitions
from rakuten_ml.settings import IngestSettings, Settings
from rakuten_ml.storage.database import confusion_sums, paired_predictions, predictions, scoring_partitions
from rakuten_ml.storage.object_store import open_store
from rakuten_ml.training.train import train_and_register
from tests.support.platforms import build_platform


class MeasuredVision:
    """An image model whose decoding and network costs per photo are given."""

    def __init__(self, decode_s: float, networks_s: float) -> None:
        self.config = SimpleNamespace(device="cpu")
        self.measured = (decode_s, networks_s)
        self.threads: int | None = None

    def seconds_per_image(self, batch: int) -> tuple[float, float]:
        return self.measured

    def set_cpu_threads(self, threads: int) -> None:
        self.threads = threads


def test_decoding_moves_to_a_worker_only_where_it_costs_more_than_the_networks(monkeypatch):
    monkeypatch.setattr(device_module, "available_cpus", lambda: 4)  # a container's usable CPUs
    heavy_networks = MeasuredVision(decode_s=0.001, networks_s=0.002)
    assert decoding_workers(heavy_networks, 64) == 0 and heavy_networks.threads is None
    light_networks = MeasuredVision(decode_s=0.001, networks_s=0.0005)
    assert decoding_workers(light_networks, 64) == 1  # one decoding process, the other cores infer
    assert light_networks.threads == 3 and torch.get_num_threads() == 3
    monkeypatch.setattr(device_module, "available_cpus", lambda: 2)  # a container's usable CPUs
    borderline = MeasuredVision(decode_s=0.00116, networks_s=0.00092)  # bf16 on 2 cores: expected 1.13x, measured 0.94x
    assert decoding_workers(borderline, 64) == 0 and borderline.threads is None
    assert decoding_workers(SimpleNamespace(config=SimpleNamespace(device="cpu")), 64) == 0  # nothing measured
    monkeypatch.setattr(device_module, "available_cpus", lambda: 1)  # a container's usable CPUs
    assert decoding_workers(MeasuredVision(decode_s=0.001, networks_s=0.0005), 64) == 0  # no core to spare


def test_partitions_cover_every_product_once():
    ids = [5, 1, 9, 3, 3, 7, 2]
    parts = plan_partitions(ids, 3)
    assert [(p.first_productid, p.last_productid, p.n_products) for p in parts] == [(1, 3, 3), (5, 9, 3)]
    assert plan_partitions(ids, 3) == parts
    with pytest.raises(ValueError):
        plan_partitions(ids, 0)


@pytest.fixture(scope="module")
def text_platform(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("scoring"))
    platform, snapshot_id = build_platform(settings, rows=900)
    train_and_register(platform, snapshot_id=snapshot_id)
    return platform, snapshot_id


def stored_predictions(platform, run_id):
    with platform.engine.connect() as conn:
        return conn.execute(sa.select(predictions.c.productid, predictions.c.variant, predictions.c.model_version).where(predictions.c.run_id == run_id)).all()


def stored_codes(platform, run_id):
    with platform.engine.connect() as conn:
        return conn.execute(sa.select(predictions.c.productid, predictions.c.variant, predictions.c.prdtypecode).where(predictions.c.run_id == run_id)).all()


def test_killed_run_resumes_without_rescoring_finished_partitions(text_platform, monkeypatch):
    platform, snapshot_id = text_platform
    models = RunModels(resolve_model(platform.settings))
    snapshot_id, parts = start_run(platform, run_id="nightly-1", snapshot_id=snapshot_id, models=models, partition_size=250)
    assert len(parts) == 4
    score_partition(platform, run_id="nightly-1", snapshot_id=snapshot_id, partition=parts[0], models=models)
    # the worker dies on the second partition
    real_predict = batch._predict
    monkeypatch.setattr(batch, "_predict", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("worker killed")))
    with pytest.raises(RuntimeError, match="worker killed"):
        score_partition(platform, run_id="nightly-1", snapshot_id=snapshot_id, partition=parts[1], models=models)
    with platform.engine.connect() as conn:
        states = dict(conn.execute(sa.select(scoring_partitions.c.partition_id, scoring_partitions.c.status)).all())
    assert states == {0: "done", 1: "failed"}
    # resume the whole run: partition 0 is skipped, the rest is scored, nothing is duplicated
    monkeypatch.setattr(batch, "_predict", real_predict)
    calls = []
    monkeypatch.setattr(batch, "_predict", lambda c, chunk, store, cache: calls.append(len(chunk)) or real_predict(c, chunk, store, cache))
    result = score_products(platform, run_id="nightly-1", snapshot_id=snapshot_id, model=models.champion, partition_size=250)
    assert sum(calls) == 900 - parts[0].n_products
    rows = stored_predictions(platform, "nightly-1")
    assert len(rows) == len({r[0] for r in rows}) == 900 == result.n_scored
    assert result.counts["text_only"] == 900 and result.counts["failed"] == 0
    with platform.engine.connect() as conn:
        attempts = dict(conn.execute(sa.select(scoring_partitions.c.partition_id, scoring_partitions.c.attempts)).all())
    assert attempts == {0: 1, 1: 2, 2: 1, 3: 1}


def test_challenger_share_is_sticky_and_recorded(text_platform):
    platform, snapshot_id = text_platform
    settings = platform.settings
    train_and_register(platform, snapshot_id=snapshot_id)  # version 2
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    client.set_registered_model_alias(settings.registered_model_name, "champion", "1")
    client.set_registered_model_alias(settings.registered_model_name, "challenger", "2")
    platform.settings = settings.replace(ab_challenger_share=0.2)
    models = resolve_run_models(platform)
    assert (models.champion.version, models.challenger.version, models.challenger_share) == ("1", "2", 0.2)
    first = score_products(platform, run_id="ab-1", snapshot_id=snapshot_id)
    second = score_products(platform, run_id="ab-2", snapshot_id=snapshot_id)
    a, b = stored_predictions(platform, "ab-1"), stored_predictions(platform, "ab-2")
    assert {(p, v) for p, v, _ in a} == {(p, v) for p, v, _ in b}  # same products on the same variant
    share = first.counts["challenger"] / first.n_scored
    assert 0.12 < share < 0.28
    assert {(v, m) for _, v, m in a} == {("champion", "1"), ("challenger", "2")}
    assert second.counts == first.counts
    # shadow scoring (the default): both versions scored every product; each product keeps its variant's answer
    with platform.engine.connect() as conn:
        pairs = conn.execute(sa.select(paired_predictions).where(paired_predictions.c.source_id == "ab-1")).mappings().all()
        sums = conn.execute(sa.select(confusion_sums.c.model_version, sa.func.sum(confusion_sums.c.n))
                            .where(confusion_sums.c.run_id == "ab-1").group_by(confusion_sums.c.model_version)).all()
    served = {(productid, variant): code for productid, variant, code in stored_codes(platform, "ab-1")}
    assert len(pairs) == first.counts["paired"] == first.n_scored == 900
    assert {(r["champion_version"], r["challenger_version"], r["origin"]) for r in pairs} == {("1", "2", "batch")}
    for r in pairs:
        served_code = served.get((r["productid"], "champion"), served.get((r["productid"], "challenger")))
        assert served_code in (r["champion_code"], r["challenger_code"])
        if (r["productid"], "champion") in served:
            assert served_code == r["champion_code"]
        else:
            assert served_code == r["challenger_code"]
    assert first.counts["disagreed"] == sum(r["champion_code"] != r["challenger_code"] for r in pairs)
    assert dict(sums) == {"1": 900, "2": 900}  # label-free estimate inputs: each version on the whole catalogue

    platform.settings = platform.settings.replace(ab_shadow_scoring=False)
    unpaired = score_products(platform, run_id="ab-3", snapshot_id=snapshot_id)
    with platform.engine.connect() as conn:
        n_pairs = conn.execute(sa.select(sa.func.count()).where(paired_predictions.c.source_id == "ab-3")).scalar_one()
        sums = conn.execute(sa.select(confusion_sums.c.model_version, sa.func.sum(confusion_sums.c.n))
                            .where(confusion_sums.c.run_id == "ab-3").group_by(confusion_sums.c.model_version)).all()
    assert n_pairs == unpaired.counts["paired"] == 0
    assert dict(sums) == {"1": 900 - unpaired.counts["challenger"], "2": unpaired.counts["challenger"]}


@pytest.mark.slow
def test_missing_and_corrupt_images_fall_back_to_text(tmp_path):
    """A real text+image model (text + frozen ResNet features + XGBoost): no image or a broken one -> text only."""
    settings = Settings(home=tmp_path, vision_profile="tiny", vision_members="cnn-xgb", image_policy="optional")
    platform, snapshot_id = build_platform(settings, rows=360, images=300)
    trained = train_and_register(platform, snapshot_id=snapshot_id, modalities=("text", "image"))
    assert "vision_val_f1_cnn-xgb" in trained.metrics and trained.metrics["f1_weighted"] > 0.3
    products = load_products(platform.store, snapshot_id)
    broken = products[products["image_key"].notna()].iloc[:5]
    for key in broken["image_key"]:
        platform.store.put_bytes(key, b"\xff\xd8 truncated jpeg")
    result = score_products(platform, run_id="images-1", snapshot_id=snapshot_id)
    n_without = int(products["image_key"].isna().sum())
    assert result.n_scored == 360
    assert result.counts["text_only"] == n_without + 5
    assert result.counts["fused"] == 360 - n_without - 5


def test_a_resumed_run_scores_its_recorded_snapshot_not_the_latest(tmp_path, monkeypatch):
    """Kill `score --run-id R`, ingest a changed catalogue, rerun R: R still scores (only) its own snapshot."""
    settings = Settings(home=tmp_path)
    platform, snapshot_a = build_platform(settings, rows=600)
    train_and_register(platform, snapshot_id=snapshot_a)
    models = RunModels(resolve_model(settings))
    _, parts = start_run(platform, run_id="R", snapshot_id=snapshot_a, models=models, partition_size=200)
    score_partition(platform, run_id="R", snapshot_id=snapshot_a, partition=parts[0], models=models)  # then killed
    catalogue = open_store(settings.catalogue_url, settings)
    generate_catalogue(catalogue, "", CatalogueSpec(rows=500, seed=4))  # other products
    snapshot_b = ingest(source_store=catalogue, source_prefix="", target_store=platform.store, engine=platform.engine,
                        policy=IngestSettings(image_policy="optional")).snapshot_id
    assert latest_snapshot_id(platform.engine) == snapshot_b != snapshot_a
    # the CLI's resume: no snapshot, no version, its default partition size (the run keeps its 3 partitions)
    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path))
    resumed = CliRunner().invoke(cli_app, ["score", "--run-id", "R"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.output)["snapshot_id"] == snapshot_a
    ids_a = set(load_products(platform.store, snapshot_a)["productid"])
    scored = [r[0] for r in stored_predictions(platform, "R")]
    assert len(scored) == len(set(scored)) and set(scored) == ids_a  # none missing, none from B
    with pytest.raises(ScoringRunConflictError, match="use a new run id"):
        score_products(platform, run_id="R", snapshot_id=snapshot_b)
    with pytest.raises(ScoringRunConflictError, match="use a new run id"):
        score_products(platform, run_id="R", model=dataclasses.replace(models.champion, version="7"))
    assert score_products(platform, run_id="R", snapshot_id=snapshot_a, model=models.champion).n_scored == len(ids_a)
