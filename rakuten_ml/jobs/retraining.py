"""Jobs of ``retrain_classifier``: decide under the cool-down, train on a fresh snapshot, close the request.

The request's bookkeeping (started, skipped, failed, succeeded) lives here, so a failed training is
recorded the same way whoever started it.
"""

from __future__ import annotations

from typing import Any

from rakuten_ml.jobs.context import JobContext, JobSkipped, WithEvents
from rakuten_ml.jobs.ingestion import run_ingest
from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.orchestration import GPU_TRAINING_TASK, MODALITY_CHOICES, MODEL_ASSET_URI, TRAINING_TASK
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings

DEFAULT_MODALITIES = next(iter(MODALITY_CHOICES))
RECENT_ALERTS = 20  # newest drift-alert events a scheduled or manual run looks at for unanswered alerts


def decide(ctx: JobContext) -> dict[str, Any]:
    """Record the request: which alerts caused it, and whether the cool-down lets it train."""
    from rakuten_ml.monitoring.retrain_guard import alerts_from_events, begin_retrain

    platform = Platform.ready()
    triggering = alerts_from_events(ctx.triggering_events(DRIFT_ALERT_ASSET_URI))
    recent = [] if triggering else alerts_from_events(ctx.recent(DRIFT_ALERT_ASSET_URI, RECENT_ALERTS))
    return begin_retrain(
        platform.engine,
        dag_run_id=ctx.run_id,
        run_type=ctx.run_type,
        triggering=triggering,
        recent=recent,
        reason=ctx.param("reason"),
        force=bool(ctx.param("force", False)),
        cooldown_hours=platform.settings.drift.retrain_cooldown_hours,
        as_of=ctx.logical_date,  # None for asset-triggered runs: the triggering alerts' time is used
    )


def cooldown_gate(ctx: JobContext, decision: dict[str, Any]) -> None:
    """A refused request ends here as *skipped* (with everything below it), so the grid shows it as a skip."""
    if not decision["proceed"]:
        raise JobSkipped(f"not retraining ({decision['status']}): {decision['decision']}; trigger with force=true to train anyway")


def refresh_snapshot(ctx: JobContext) -> str:
    """The snapshot to train on: the param's, else a fresh ingest of the configured sources."""
    return ctx.param("snapshot_id") or run_ingest(run_id=f"{ctx.run_id}.refresh_snapshot")["snapshot_id"]


def route_training(ctx: JobContext) -> str:
    """The training lane: the GPU queue's task when image models are trained, the default queue's for text only."""
    from rakuten_ml.training.modalities import resolve_modalities

    modalities = resolve_modalities(Settings(), ctx.param("modalities", DEFAULT_MODALITIES))
    return GPU_TRAINING_TASK if "image" in modalities else TRAINING_TASK


def train(ctx: JobContext, snapshot_id: str, decision: dict[str, Any]) -> dict[str, Any]:
    """Train and register; a failure marks the request failed (so it does not hold the cool-down) and propagates."""
    from rakuten_ml.monitoring.retrain_guard import record_failure
    from rakuten_ml.training.modalities import resolve_modalities
    from rakuten_ml.training.train import train_and_register

    platform = Platform.ready()
    try:
        result = train_and_register(
            platform,
            snapshot_id=snapshot_id,
            modalities=resolve_modalities(platform.settings, ctx.param("modalities", DEFAULT_MODALITIES)),
            dag_run_id=ctx.run_id,
            dag_id=ctx.dag_id,
            reason=decision["reason"],
        )
    except Exception as exc:
        record_failure(platform.engine, decision["dag_run_id"], exc, snapshot_id=snapshot_id)
        raise
    return result.summary()


def register(
    ctx: JobContext, decision: dict[str, Any], trained: dict[str, Any] | None = None, trained_on_gpu: dict[str, Any] | None = None
) -> WithEvents:
    """Close the request with its version and announce the version on the registered-model asset."""
    from rakuten_ml.monitoring.retrain_guard import STATUS_SUCCEEDED, finish_request

    trained = trained or trained_on_gpu  # the lane that ran; the skipped one returned nothing
    if trained is None:  # both lanes skipped (a refused request): there is nothing to register
        raise JobSkipped(f"nothing was trained ({decision.get('status')}): no version to register")
    finish_request(Platform.ready().engine, decision["dag_run_id"], status=STATUS_SUCCEEDED,
                   snapshot_id=trained["snapshot_id"], model_version=trained["model_version"])
    extra = {"model_version": trained["model_version"], "reason": decision["reason"], "alert_ids": [a["alert_id"] for a in decision["alerts"]]}
    return WithEvents(trained, {MODEL_ASSET_URI: extra})
