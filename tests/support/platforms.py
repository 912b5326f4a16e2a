"""A platform with an ingested generated catalogue, and the training round trip the training tests check
on embedded defaults and on the production services."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from rakuten_ml.catalogue.generator import CatalogueSpec, generate_catalogue
from rakuten_ml.data.ingest import ingest
from rakuten_ml.registry.resolve import resolve_model
from rakuten_ml.resources import Platform
from rakuten_ml.scoring.batch import score_products
from rakuten_ml.settings import IngestSettings, Settings
from rakuten_ml.storage.database import count_rows, predictions
from rakuten_ml.storage.object_store import open_store
from rakuten_ml.training.train import train_and_register


def build_platform(settings: Settings, rows: int = 1500, images: int = 0) -> tuple[Platform, str]:
    """A generated catalogue of ``rows`` products (``images`` of them with a photo), ingested: (platform, snapshot id)."""
    platform = Platform(settings).prepare()
    catalogue = open_store(settings.catalogue_url, settings)
    generate_catalogue(catalogue, "", CatalogueSpec(rows=rows, images=images, seed=3))
    result = ingest(
        source_store=catalogue, source_prefix="", target_store=platform.store, engine=platform.engine,
        policy=IngestSettings(image_policy="require" if images == rows else "optional"),
    )
    return platform, result.snapshot_id


def check_training_round_trip(platform: Platform, snapshot_id: str) -> None:
    """Train v1 on the snapshot, check what MLflow holds, load the pyfunc and score the snapshot twice."""
    settings = platform.settings
    result = train_and_register(platform, snapshot_id=snapshot_id, dag_run_id="manual__test", dag_id="retrain_classifier", reason="test")
    assert result.model_version == "1"
    assert 0.4 < result.metrics["f1_weighted"] <= 1.0
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    version = client.get_model_version(settings.registered_model_name, "1")
    assert version.tags["snapshot_id"] == snapshot_id
    assert version.tags["dag_run_id"] == "manual__test"
    assert float(version.tags["metric.f1_weighted"]) == pytest.approx(result.metrics["f1_weighted"], abs=1e-6)
    # only the headline metrics are version tags; every metric is on the run and on its logged model
    assert {k for k in version.tags if k.startswith("metric.")} == {"metric.accuracy", "metric.f1_weighted", "metric.f1_macro"}
    run_page = f"{settings.airflow.base_url}/dags/retrain_classifier/runs/manual__test"
    assert version.tags["airflow.dag_run_url"] == run_page and version.tags["dag_id"] == "retrain_classifier"
    assert f"[retrain_classifier / manual__test]({run_page})" in version.description
    assert f"snapshot `{snapshot_id}`" in version.description and "Why: test" in version.description
    assert f"f1_weighted {result.metrics['f1_weighted']:.3f}" in version.description
    logged = mlflow.get_logged_model(version.source.removeprefix("models:/"))  # the version's source is its logged model
    assert {m.key for m in logged.metrics} >= {"f1_weighted", "ece", "log_loss"}
    run = client.get_run(result.run_id)
    assert run.data.params["snapshot_id"] == snapshot_id
    assert run.data.tags["git_commit"]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert {
        "evaluation/report.json", "evaluation/eval_productids.json", "evaluation/report.md",
        "evaluation/confusion_matrix.png", "evaluation/reliability.png",
    } <= artifacts
    assert run.data.metrics["ece"] >= 0 and run.data.metrics["log_loss"] > 0
    # the registered artifact is a pyfunc with a signature, loadable with the package alone
    model = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}/1")
    assert {i.name for i in model.metadata.get_input_schema().inputs} == {"designation", "description", "image"}
    out = model.predict(pd.DataFrame({"designation": ["Piscine tubulaire ronde 3m", ""], "description": ["", ""], "image": ["", ""]}))
    assert list(out.columns[:4]) == ["prdtypecode", "probability", "decision", "modality"]
    assert out["modality"].tolist() == ["text", "none"]
    assert out.filter(like="proba_").shape[1] == 27
    assert out.filter(like="proba_").sum(axis=1).round(6).eq(1).all()
    # scoring pins the version and upserts: a rerun of the same run id overwrites
    resolved = resolve_model(settings)
    first = score_products(platform, run_id="run-1", model=resolved)
    again = score_products(platform, run_id="run-1", model=resolved)
    assert first.n_scored == again.n_scored == count_rows(platform.engine, predictions)
    assert first.counts["text_only"] == first.n_scored and first.counts["failed"] == 0
    assert platform.store.exists(f"{first.parquet_prefix}/part-00000.parquet")
