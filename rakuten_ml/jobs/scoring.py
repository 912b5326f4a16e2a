"""Jobs of ``score_catalogue``: pin the models, plan the partitions, score each, sum the run up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rakuten_ml.errors import NoModelYetError
from rakuten_ml.jobs.context import JobContext, JobFailed, JobSkipped
from rakuten_ml.orchestration import DEFAULT_PARTITION_SIZE, SNAPSHOT_ASSET_URI
from rakuten_ml.resources import Platform


def resolve_models(ctx: JobContext) -> dict[str, Any]:
    """The pinned versions, or ``{"skip_reason": ...}`` when no model is registered yet (nothing to score)."""
    from rakuten_ml.scoring.batch import resolve_run_models

    try:
        return resolve_run_models(Platform.ready(), version=ctx.param("model_version")).as_dict()
    except NoModelYetError as exc:
        return {"skip_reason": str(exc)}


def _require_models(models: dict[str, Any], doing: str) -> None:
    if "champion" not in models:
        raise JobSkipped(f"{doing}: {models.get('skip_reason')}")


def plan(ctx: JobContext, models: dict[str, Any]) -> list[dict[str, Any]]:
    """Start (or resume) the run on the snapshot the triggering event names, else the param, else the latest."""
    from rakuten_ml.scoring.batch import RunModels, start_run

    _require_models(models, "nothing to score")
    event = ctx.latest_extra(SNAPSHOT_ASSET_URI)
    as_of = event.get("as_of") or ctx.as_of.isoformat()
    snapshot_id, partitions = start_run(
        Platform.ready(), run_id=ctx.run_id, snapshot_id=ctx.param("snapshot_id") or event.get("snapshot_id") or None,
        models=RunModels.from_dict(models), partition_size=int(ctx.param("partition_size", DEFAULT_PARTITION_SIZE)),
    )
    return [p.as_dict() | {"snapshot_id": snapshot_id, "as_of": as_of} for p in partitions]


def score_partition(ctx: JobContext, partition: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    from rakuten_ml.scoring.batch import RunModels
    from rakuten_ml.scoring.batch import score_partition as score
    from rakuten_ml.scoring.partitions import Partition

    fields = dict(partition)
    snapshot_id, as_of = fields.pop("snapshot_id"), fields.pop("as_of")
    return score(
        Platform.ready(), run_id=ctx.run_id, snapshot_id=snapshot_id, partition=Partition(**fields),
        models=RunModels.from_dict(models), scored_at=datetime.fromisoformat(as_of),
    )


def summarise(ctx: JobContext, models: dict[str, Any]) -> dict[str, Any]:
    """Record the run's end and export its metrics; a run with unscored partitions fails (after recording)."""
    from rakuten_ml.scoring.batch import finish_run

    _require_models(models, "nothing was scored")
    result = finish_run(Platform.ready(), run_id=ctx.run_id)
    if result.status != "done":
        raise JobFailed(
            f"run {result.run_id}: {result.n_partitions - result.n_partitions_done} of {result.n_partitions} partitions "
            "are not scored; clear the failed score_partition tasks to resume (finished partitions are kept)"
        )
    return result.summary()
