"""Helpers of the promotion tests: settings of their own per test, cheap registered versions,
alias states set directly, the audit trail, and labelled predictions for A/B and rollback checks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from mlflow import MlflowClient

from rakuten_ml.labels import CLASS_CODES
from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.audit import history
from rakuten_ml.registry.gateway import ModelRegistry
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import feedback, paired_predictions, prediction_log, predictions


def promotion_settings(tmp_path: Path, mlflow_server: str, pg_url: str, **overrides: object) -> Settings:
    """Production wiring with a registered model name of its own, so tests never share aliases."""
    values: dict[str, object] = {
        "home": tmp_path,
        "mlflow_tracking_uri": mlflow_server,
        "database_url": pg_url,
        "registered_model_name": f"clf-{uuid.uuid4().hex[:10]}",
    }
    return Settings(**(values | overrides))


def register_versions(settings: Settings, accuracies: Sequence[float]) -> list[str]:
    """Versions without a model artifact, carrying the tags training writes: enough to move aliases."""
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    name = settings.registered_model_name
    client.create_registered_model(name)
    versions = []
    for i, accuracy in enumerate(accuracies):
        mv = client.create_model_version(
            name, f"s3://not-a-model/{name}/{i}", tags={"metric.accuracy": f"{accuracy:.6f}", "snapshot_id": "snap-test"}
        )
        versions.append(str(mv.version))
    return versions


def set_state(platform: Platform, champion: str | None = None, challenger: str | None = None, previous: str | None = None) -> None:
    """Put the aliases in a given state directly (test setup, bypassing the audited path)."""
    registry = ModelRegistry(platform.settings)
    for alias, version in ((aliases.CHAMPION, champion), (aliases.CHALLENGER, challenger), (aliases.PREVIOUS_CHAMPION, previous)):
        if version is not None:
            registry.move(alias, version)


def ab_test_in_progress(settings: Settings) -> tuple[Platform, str, str, str]:
    """A platform whose registry holds three versions, v1 champion, v2 challenger and v0 previous champion:
    the state an A/B win promotes from. Returns the platform, then v0, v1, v2."""
    platform = Platform(settings).prepare()
    v0, v1, v2 = register_versions(settings, [0.8, 0.81, 0.82])
    set_state(platform, champion=v1, challenger=v2, previous=v0)
    return platform, v0, v1, v2


def events(platform: Platform) -> list[dict]:
    return history(platform.engine, platform.settings.registered_model_name, limit=1000)


def insert_labelled(
    platform: Platform,
    version: str,
    productids: Sequence[int],
    correct: Sequence[bool],
    *,
    variant: str = aliases.CHAMPION,
    online: Sequence[bool] | None = None,
    at: datetime | None = None,
    seed: int = 0,
    with_feedback: bool = True,
) -> None:
    """Predictions of ``version`` (batch rows, or serving-log rows where ``online``) plus their true labels."""
    rng = np.random.default_rng(seed)
    at = at or datetime.now(UTC)
    codes = np.asarray(CLASS_CODES)
    truth = rng.choice(codes, len(correct))
    wrong = codes[(np.searchsorted(codes, truth) + rng.integers(1, len(codes), len(correct))) % len(codes)]
    predicted = np.where(np.asarray(correct, dtype=bool), truth, wrong)
    productids = [int(p) for p in productids]
    online = [False] * len(correct) if online is None else online
    batch_rows, log_rows = [], []
    for pid, pred, is_online in zip(productids, predicted.tolist(), online, strict=True):
        common = {"productid": pid, "model_name": platform.settings.registered_model_name, "model_version": str(version),
                  "variant": variant, "prdtypecode": int(pred), "confidence": 0.9, "decision": "auto", "modality": "text"}
        if is_online:
            log_rows.append(common | {"request_id": f"req-{pid}-{version}-{at.timestamp()}", "position": 0, "latency_ms": 12.0, "created_at": at})
        else:
            batch_rows.append(common | {"run_id": f"batch-{version}-{at.timestamp()}", "scored_at": at})
    labels = [{"productid": p, "prdtypecode": int(t), "source": "human", "received_at": at} for p, t in zip(productids, truth.tolist(), strict=True)]
    with platform.engine.begin() as conn:  # executemany: a multi-row upsert of thousands of rows compiles slowly
        for table, rows in ((predictions, batch_rows), (prediction_log, log_rows), (feedback, labels if with_feedback else [])):
            if rows:
                conn.execute(sa.insert(table), rows)


def insert_pairs(
    platform: Platform,
    champion: str,
    challenger: str,
    productids: Sequence[int],
    champion_correct: Sequence[bool],
    challenger_correct: Sequence[bool],
    *,
    source_id: str = "nightly-shadow",
    at: datetime | None = None,
    seed: int = 0,
    with_feedback: bool = True,
) -> None:
    """Shadow-scored pairs (both versions on each product) plus the products' true labels."""
    rng = np.random.default_rng(seed)
    at = at or datetime.now(UTC)
    codes = np.asarray(CLASS_CODES)
    truth = rng.choice(codes, len(productids))
    wrong = codes[(np.searchsorted(codes, truth) + 1) % len(codes)]
    rows = [
        {"source_id": source_id, "productid": int(pid), "origin": "batch", "model_name": platform.settings.registered_model_name,
         "champion_version": str(champion), "challenger_version": str(challenger),
         "champion_code": int(t if a else w), "challenger_code": int(t if b else w),
         "champion_confidence": 0.9, "challenger_confidence": 0.9, "scored_at": at}
        for pid, t, w, a, b in zip(productids, truth.tolist(), wrong.tolist(), champion_correct, challenger_correct, strict=True)
    ]
    labels = [{"productid": int(p), "prdtypecode": int(t), "source": "human", "received_at": at}
              for p, t in zip(productids, truth.tolist(), strict=True)]
    with platform.engine.begin() as conn:
        conn.execute(sa.insert(paired_predictions), rows)
        if with_feedback:
            conn.execute(sa.insert(feedback), labels)
