"""Job of ``train_text_model``: a text-only model on a snapshot, registered for the gate."""

from __future__ import annotations

from typing import Any

from rakuten_ml.jobs.context import JobContext, WithEvents
from rakuten_ml.orchestration import MODEL_ASSET_URI
from rakuten_ml.resources import Platform


def train_text(ctx: JobContext) -> WithEvents:
    from rakuten_ml.training.train import train_and_register

    result = train_and_register(
        Platform.ready(), snapshot_id=ctx.param("snapshot_id"), modalities=("text",), dag_run_id=ctx.run_id,
        dag_id=ctx.dag_id, reason=ctx.param("reason", "manual"),
    )
    summary: dict[str, Any] = result.summary()
    return WithEvents(summary, {MODEL_ASSET_URI: {"model_version": summary.get("model_version"), "reason": ctx.param("reason", "manual")}})
