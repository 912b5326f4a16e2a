"""Nightly scoring of the whole catalogue: one pinned model version per variant, partitions as mapped tasks."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, Param, TriggerRule, dag, task

from rakuten_ml.orchestration import DEFAULT_ARGS, DEFAULT_PARTITION_SIZE, SNAPSHOT_ASSET_URI, START_DATE, gpu_queue, run_job

# Mapped scoring tasks go to this Celery/Kubernetes queue (RAKUTEN_AIRFLOW_GPU_QUEUE); a CPU-only deployment sets "default".
GPU_QUEUE = gpu_queue()
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
3. `score_partition` is mapped over them on queue `{GPU_QUEUE}` (env `RAKUTEN_AIRFLOW_GPU_QUEUE`):
   GPU workers when the deployment has them; each worker loads the model once, streams images through a
   DataLoader, runs AMP on CUDA. A partition already scored in this run is skipped, so clearing a killed
   run resumes it; predictions are upserted keyed by (run id, product id). A photo this model version
   already scored at the same precision is not sent through the backbones again: its stored output is
   read from `image_scores` (`RAKUTEN_SCORING_IMAGE_CACHE=false` turns this off). During an A/B test
   both versions score every product (shadow scoring, `RAKUTEN_AB_SHADOW_SCORING`): each product keeps
   its variant's answer in `predictions`, the pair goes to `paired_predictions` for the paired test and
   the disagreement rate. Each version's expected confusion counts go to `confusion_sums` (the drift
   check's label-free estimate).
4. `summarise` adds up scored / fused / text-only / image-only / failed / image-reused / paired / disagreed counts for the
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
        "partition_size": Param(DEFAULT_PARTITION_SIZE, type="integer", minimum=100, description="Products per mapped task"),
    },
)
def score_catalogue() -> None:
    @task
    def resolve_models() -> dict:
        return run_job("scoring.resolve_models")

    @task(inlets=[SNAPSHOT])
    def plan(models: dict) -> list[dict]:
        return run_job("scoring.plan", models=models)

    # a partition resumes where it stopped (finished partitions are kept): a lost worker's is retried after 30 s
    @task(queue=GPU_QUEUE, retries=3, retry_delay=timedelta(seconds=30), max_active_tis_per_dagrun=8)
    def score_partition(partition: dict, models: dict) -> dict:
        return run_job("scoring.score_partition", partition=partition, models=models)

    # all_done: a partition that failed after its retries still gets the run recorded as failed and
    # its metrics exported (the alert needs them); then this task fails, so the DAG run is failed too.
    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summarise(_counts: list, models: dict) -> dict:
        return run_job("scoring.summarise", models=models)

    models = resolve_models()
    summarise(score_partition.partial(models=models).expand(partition=plan(models)), models)


score_catalogue()
