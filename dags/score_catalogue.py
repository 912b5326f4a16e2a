"""Nightly scoring of the whole catalogue: one pinned model version per variant, partitions as mapped tasks."""

from __future__ import annotations

import os

from airflow.sdk import Asset, Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from rakuten_ml.orchestration import DEFAULT_ARGS, SNAPSHOT_ASSET_URI, START_DATE

# Mapped scoring tasks go to this Celery/Kubernetes queue; a CPU-only deployment sets it to "default".
SCORING_QUEUE = os.environ.get("RAKUTEN_SCORING_QUEUE", "gpu")
SNAPSHOT = Asset(SNAPSHOT_ASSET_URI)

DOC = f"""
### score_catalogue
**Schedule:** on every event of `rakuten://dataset-snapshot`, i.e. right after each `ingest_products` run
(nightly at 01:00 UTC); also from the UI (params below: without a snapshot it scores the latest).

1. `resolve_models` pins the `champion` alias (newest version when there is none yet) and, during an
   A/B test, the `challenger` alias to concrete versions, so the whole run uses one model per variant.
   With no model registered yet there is nothing to score: `plan` and everything after it is skipped.
2. `plan` splits the snapshot the triggering event names (or the `snapshot_id` param, or the latest)
   into productid ranges (`partition_size` param). Predictions are stamped with the day the run stands
   for: the ingestion's logical date carried by the event, else this run's logical date, else now.
3. `score_partition` is mapped over them on queue `{SCORING_QUEUE}` (env `RAKUTEN_SCORING_QUEUE`):
   GPU workers when the deployment has them; each worker loads the model once, streams images through a
   DataLoader, runs AMP on CUDA. A partition already scored in this run is skipped, so clearing a killed
   run resumes it; predictions are upserted keyed by (run id, product id). A photo this model version
   already scored at the same precision is not sent through the backbones again: its stored output is
   read from `image_scores` (`RAKUTEN_SCORING_IMAGE_CACHE=false` turns this off).
4. `summarise` adds up scored / fused / text-only / image-only / failed / image-reused counts for the
   run summary and rewrites the Prometheus textfile; a complete run that follows the aliases drops the
   stored outputs of retired versions. It runs even when a partition failed after its retries: the run
   is then recorded as failed (alert `RakutenBatchScoringFailed`) and this task fails the DAG run.
"""


@dag(
    dag_id="score_catalogue",
    schedule=[SNAPSHOT],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rakuten", "scoring"],
    doc_md=DOC,
    params={
        "snapshot_id": Param(None, type=["null", "string"], description="Snapshot to score; empty = the triggering event's, else the latest"),
        "model_version": Param(None, type=["null", "string"], description="Pin a version (no A/B); empty = champion"),
        "partition_size": Param(20000, type="integer", minimum=100, description="Products per mapped task"),
    },
)
def score_catalogue() -> None:
    @task
    def resolve_models(params: dict | None = None) -> dict:
        """The pinned versions, or {} when no model is registered yet (nothing to score)."""
        from rakuten_ml.errors import NoModelYetError
        from rakuten_ml.platform import Platform
        from rakuten_ml.scoring.batch import resolve_run_models

        try:
            return resolve_run_models(Platform.from_env(), version=(params or {}).get("model_version") or None).as_dict()
        except NoModelYetError as exc:
            return {"skip_reason": str(exc)}

    @task(inlets=[SNAPSHOT])
    def plan(models: dict, params: dict | None = None, run_id: str | None = None, logical_date=None, dag_run=None,  # noqa: ANN001
             triggering_asset_events=None) -> list[dict]:  # noqa: ANN001 - Airflow context
        from rakuten_ml.orchestration import latest_event_extra, run_as_of
        from rakuten_ml.platform import Platform
        from rakuten_ml.scoring.batch import RunModels, start_run

        if "champion" not in models:
            raise AirflowSkipException(f"nothing to score: {models.get('skip_reason')}")
        params = params or {}
        event = latest_event_extra((triggering_asset_events or {}).get(SNAPSHOT, []))
        as_of = event.get("as_of") or run_as_of(logical_date, getattr(dag_run, "run_after", None)).isoformat()
        snapshot_id, partitions = start_run(
            Platform.from_env(), run_id=run_id or "manual", snapshot_id=params.get("snapshot_id") or event.get("snapshot_id") or None,
            models=RunModels.from_dict(models), partition_size=int(params.get("partition_size") or 20000),
        )
        return [p.as_dict() | {"snapshot_id": snapshot_id, "as_of": as_of} for p in partitions]

    @task(queue=SCORING_QUEUE, retries=3, max_active_tis_per_dagrun=8)
    def score_partition(partition: dict, models: dict, run_id: str | None = None) -> dict:
        from datetime import datetime

        from rakuten_ml.platform import Platform
        from rakuten_ml.scoring.batch import RunModels
        from rakuten_ml.scoring.batch import score_partition as score
        from rakuten_ml.scoring.partitions import Partition

        snapshot_id, as_of = partition.pop("snapshot_id"), partition.pop("as_of")
        return score(
            Platform.from_env(), run_id=run_id or "manual", snapshot_id=snapshot_id,
            partition=Partition(**partition), models=RunModels.from_dict(models), scored_at=datetime.fromisoformat(as_of),
        )

    # all_done: a partition that failed after its retries still gets the run recorded as failed and
    # its metrics exported (the alert needs them); then this task fails, so the DAG run is failed too.
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarise(_counts: list, models: dict, run_id: str | None = None) -> dict:
        from rakuten_ml.platform import Platform
        from rakuten_ml.scoring.batch import finish_run

        if "champion" not in models:
            raise AirflowSkipException(f"nothing was scored: {models.get('skip_reason')}")
        result = finish_run(Platform.from_env(), run_id=run_id or "manual")
        if result.status != "done":
            raise AirflowFailException(
                f"run {result.run_id}: {result.n_partitions - result.n_partitions_done} of {result.n_partitions} partitions "
                "are not scored; clear the failed score_partition tasks to resume (finished partitions are kept)"
            )
        return result.summary()

    models = resolve_models()
    partitions = plan(models)
    summarise(score_partition.partial(models=models).expand(partition=partitions), models)


score_catalogue()
