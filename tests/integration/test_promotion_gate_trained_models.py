"""Offline gate with real trained models against the MLflow server (PostgreSQL + S3): the champion's frozen
evaluation set, a noisy candidate that fails, identical retrains that start no A/B test."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from rakuten_ml.catalogue.generator import CatalogueSpec, DriftSpec, generate_catalogue
from rakuten_ml.data.ingest import ingest
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.promotion.service import onboard_latest, onboard_version
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.settings import IngestSettings, join_url
from rakuten_ml.storage.object_store import open_store
from rakuten_ml.training.train import train_and_register
from tests.support.platforms import build_platform
from tests.support.promotion import events, promotion_settings


def reregister(settings, version: str) -> str:
    """A new version (with a run of its own) of the same model artifact as ``version``."""
    client = MlflowClient(settings.mlflow_tracking_uri)
    source = client.get_model_version(settings.registered_model_name, version)
    run = client.create_run(client.get_run(source.run_id).info.experiment_id, run_name=f"retrain-of-v{version}")
    client.set_terminated(run.info.run_id)
    return str(client.create_model_version(
        settings.registered_model_name, source.source, run.info.run_id, tags=source.tags,
        model_id=source.model_id or source.source.removeprefix("models:/"),
    ).version)


@pytest.mark.slow
def test_gate_with_trained_models_on_the_champions_frozen_eval_set(tmp_path, mlflow_server, pg_url, s3_endpoint, s3_bucket):
    """v1 -> champion (no gate); v2 trained on 60%-noised labels -> gate_fail; v3, v1's artifact -> challenger."""
    settings = promotion_settings(
        tmp_path, mlflow_server, pg_url, object_store_url=f"s3://{s3_bucket}/platform", s3_endpoint_url=s3_endpoint
    )
    platform, clean_snapshot = build_platform(settings, rows=800)
    noisy_store = open_store(join_url(settings.object_store_url, "raw/noisy"), settings)
    generate_catalogue(noisy_store, "", CatalogueSpec(rows=800, images=0, seed=3, drift=DriftSpec(label_noise=0.6)))
    noisy_snapshot = ingest(
        source_store=noisy_store, source_prefix="", target_store=platform.store, engine=platform.engine, policy=IngestSettings(image_policy="optional")
    ).snapshot_id
    actor = Actor("airflow:evaluate_ab_test", "scheduled__2026-01-02")

    v1 = train_and_register(platform, snapshot_id=clean_snapshot).model_version
    assert onboard_version(platform, v1, actor=actor).result == "champion"

    v2 = train_and_register(platform, snapshot_id=noisy_snapshot).model_version
    failed = onboard_version(platform, v2, actor=actor)
    assert failed.result == "rejected" and not failed.verdict.passed
    # judged on v1's frozen eval rows (clean labels), not on v2's own noisy hold-out
    registry = ModelRegistry(settings)
    frozen = registry.load_run_dict(registry.version(v1).run_id, "evaluation/eval_productids.json")
    assert frozen["snapshot_id"] == clean_snapshot and failed.verdict.n_eval == len(frozen["productids"]) > 100
    assert failed.verdict.candidate_f1 < failed.verdict.champion_f1 - 0.05
    assert any(r.startswith("weighted F1") for r in failed.verdict.reasons)

    # v1's model under a run that records no training params: the gate cannot tell it is a twin, so it scores it
    v3 = reregister(settings, v1)
    passed = onboard_version(platform, v3, actor=actor)
    assert passed.result == "challenger" and passed.verdict.passed
    assert passed.verdict.f1_delta == pytest.approx(0.0, abs=0.01)

    assert registry.state() == RegistryState(settings.registered_model_name, champion=v1, challenger=v3)
    tags = registry.version(v2).tags
    assert tags["gate.verdict"] == "fail" and tags["gate.champion_version"] == v1 and "weighted F1" in tags["gate.reason"]
    assert float(tags["gate.f1_weighted"]) == pytest.approx(failed.verdict.candidate_f1, abs=1e-6)
    run = MlflowClient(mlflow_server).get_run(registry.version(v2).run_id)
    assert run.data.metrics["gate.passed"] == 0.0 and "gate.class_10.f1_delta" in run.data.metrics
    report = registry.load_run_dict(run.info.run_id, f"promotion/gate_vs_v{v1}.json")
    assert report["champion"] == v1 and set(report["weak_classes"]) == {"10", "40", "1180", "1281", "2705"}
    assert report["evaluation_set"]["snapshot_id"] == clean_snapshot and report["evaluation_set"]["n_products"] == failed.verdict.n_eval
    gate_fail = next(e for e in events(platform) if e["action"] == "gate_fail")
    assert gate_fail["metrics"]["evaluation_set"] == report["evaluation_set"] and gate_fail["metrics"]["passed"] is False
    assert registry.version(v3).tags["gate.verdict"] == "pass"
    assert [(e["action"], e["from_version"], e["to_version"]) for e in reversed(events(platform))] == [
        ("register", None, v1), ("promote", None, v1),
        ("register", None, v2), ("gate_fail", v1, v2),
        ("register", None, v3), ("gate_pass", v1, v3), ("challenger_set", None, v3),
    ]
    assert all(e["actor"] == "airflow:evaluate_ab_test" for e in events(platform))


def ingest_catalogue(platform, settings, name: str, seed: int) -> str:
    """A snapshot of a freshly generated catalogue of 800 products (no images)."""
    store = open_store(join_url(settings.object_store_url, f"raw/{name}"), settings)
    generate_catalogue(store, "", CatalogueSpec(rows=800, images=0, seed=seed))
    return ingest(source_store=store, source_prefix="", target_store=platform.store, engine=platform.engine, policy=IngestSettings(image_policy="optional")).snapshot_id


@pytest.mark.slow
def test_identical_retrain_of_champion_or_challenger_starts_no_ab_test(tmp_path, mlflow_server, pg_url, s3_endpoint, s3_bucket):
    """Same snapshot and config as the champion (v2) or the challenger (v4): 'identical', no alias move; a new snapshot (v3) is gated."""
    settings = promotion_settings(
        tmp_path, mlflow_server, pg_url, object_store_url=f"s3://{s3_bucket}/platform", s3_endpoint_url=s3_endpoint,
        gate_f1_tolerance=1.0, gate_class_guardrail=1.0,  # whatever its scores, a gated candidate becomes challenger
    )
    platform, first_snapshot = build_platform(settings, rows=800)
    second_snapshot = ingest_catalogue(platform, settings, "second", seed=4)
    registry = ModelRegistry(settings)
    actor = Actor("airflow:evaluate_ab_test", "scheduled__2026-01-03")

    v1 = train_and_register(platform, snapshot_id=first_snapshot, dag_run_id="manual__1", reason="first").model_version
    assert onboard_version(platform, v1, actor=actor).result == "champion"

    v2 = train_and_register(platform, snapshot_id=first_snapshot, dag_run_id="manual__2", reason="drift").model_version
    twin = onboard_latest(platform, actor=actor)  # what the scheduled job does with the newest version
    assert (twin.candidate, twin.result, twin.verdict, twin.move) == (v2, "identical", None, None)
    assert twin.summary()["reasons"] == [f"identical to the champion v{v1}: same snapshot {first_snapshot}, training configuration and code; nothing new to test"]
    assert registry.state() == RegistryState(settings.registered_model_name, champion=v1)
    tags = registry.version(v2).tags
    assert (tags["gate.verdict"], tags["gate.identical_to"], tags["promotion.last_action"]) == ("identical", v1, "gate_skip")
    assert "gate.f1_weighted" not in tags  # not scored

    v3 = train_and_register(platform, snapshot_id=second_snapshot).model_version
    gated = onboard_version(platform, v3, actor=actor)
    assert gated.result == "challenger" and gated.verdict is not None and registry.version(v3).tags["gate.verdict"] == "pass"

    v4 = train_and_register(platform, snapshot_id=second_snapshot).model_version
    assert onboard_version(platform, v4, actor=actor).result == "identical"
    assert registry.state() == RegistryState(settings.registered_model_name, champion=v1, challenger=v3)
    assert registry.version(v4).tags["gate.identical_to"] == v3

    assert [(e["action"], e["from_version"], e["to_version"]) for e in reversed(events(platform))] == [
        ("register", None, v1), ("promote", None, v1),
        ("register", None, v2), ("gate_skip", v1, v2),
        ("register", None, v3), ("gate_pass", v1, v3), ("challenger_set", None, v3),
        ("register", None, v4), ("gate_skip", v3, v4),
    ]
    skip = next(e for e in events(platform) if e["action"] == "gate_skip")
    assert skip["reason"].startswith(f"identical to the challenger v{v3}") and skip["metrics"]["role"] == "challenger"
    assert skip["metrics"]["training"]["snapshot_id"] == second_snapshot and "text.random_state" in skip["metrics"]["training"]
