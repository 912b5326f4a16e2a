"""Retrain the classifier monthly or on a drift alert, debounced by a cool-down; promotion comes after `register`."""

from __future__ import annotations

from airflow.sdk import Asset, AssetOrTimeSchedule, Param, dag, task

from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.orchestration import (
    DEFAULT_ARGS,
    GPU_TRAINING_TASK,
    MODALITY_CHOICES,
    MODEL_ASSET_URI,
    START_DATE,
    TRAINING_TASK,
    gpu_queue,
    run_job,
)
from rakuten_ml.timetables import NextSlotCronTimetable

DRIFT_ALERT = Asset(DRIFT_ALERT_ASSET_URI)
DEFAULT_MODALITIES = next(iter(MODALITY_CHOICES))  # the form's default; rakuten_ml.jobs.retraining uses the same
GPU_QUEUE = gpu_queue()  # image training's queue (RAKUTEN_AIRFLOW_GPU_QUEUE); text-only training stays on default

DOC = f"""
### retrain_classifier
**Schedule:** monthly (03:00 UTC on the 1st) **or** on an event of the `rakuten://drift-alert` asset
(emitted by `monitor_drift`); also from the UI with the params form below.

1. `decide` records the request in `retrain_requests` with the alerts that caused it (the run's
   triggering asset events; a monthly or manual run claims recent alerts no run answered yet) and
   applies the debounce: no second training within `RAKUTEN_RETRAIN_COOLDOWN_HOURS` (default a
   week) of one that started, unless `force`. `max_active_runs=1`: never two at once.
2. `cooldown_gate` ends *skipped*, with everything below it, when the request was refused (recorded as
   `skipped_cooldown`; its log says which run holds the cool-down): a refused run shows as a skip in the
   grid, not as a green training.
3. `refresh_snapshot` ingests the sources again (new human labels) unless `snapshot_id` is given.
4. `route_training` resolves the modalities (default: the champion's, else the newest version's,
   text+image for a first model) and picks the lane: `{GPU_TRAINING_TASK}` on queue `{GPU_QUEUE}` when the
   image models are trained (they fit on a GPU worker), `{TRAINING_TASK}` on `default` for text only.
   The other lane shows as skipped.
5. The lane trains on the snapshot and registers a new version in MLflow (its description and a link
   back to this run are on the version).
6. `register` closes the request with the version and emits `rakuten://registered-model`.

**Promotion is not part of this DAG**: the `rakuten://registered-model` event starts `evaluate_ab_test`,
whose gate makes the new version champion (the first one) or challenger. `register` returns the training
summary (`model_version`, `metrics`, `snapshot_id`); the training task has buttons to its MLflow run and version.
"""


@dag(
    dag_id="retrain_classifier",
    schedule=AssetOrTimeSchedule(timetable=NextSlotCronTimetable("0 3 1 * *", timezone="UTC"), assets=DRIFT_ALERT),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 1},
    tags=["rakuten", "training", "monitoring"],
    doc_md=DOC,
    params={
        "snapshot_id": Param(None, type=["null", "string"], description="Train on this snapshot; empty = ingest a fresh one"),
        "modalities": Param(DEFAULT_MODALITIES, type="string", enum=list(MODALITY_CHOICES),
                            values_display=MODALITY_CHOICES, description="What to train"),
        "reason": Param(None, type=["null", "string"], description="Why (kept on the model); empty = from the trigger"),
        "force": Param(False, type="boolean", description="Train even inside the cool-down"),
    },
)
def retrain_classifier() -> None:
    @task(inlets=[DRIFT_ALERT])
    def decide() -> dict:
        return run_job("retraining.decide")

    @task
    def cooldown_gate(decision: dict) -> None:
        """A refused request ends here as *skipped* (with everything below), so the grid shows it as a skip."""
        run_job("retraining.cooldown_gate", decision=decision)

    @task
    def refresh_snapshot() -> str:
        return run_job("retraining.refresh_snapshot")

    @task.branch
    def route_training() -> str:
        return run_job("retraining.route_training")

    @task(task_id=TRAINING_TASK)
    def train(snapshot_id: str, decision: dict) -> dict:
        return run_job("retraining.train", snapshot_id=snapshot_id, decision=decision)

    @task(task_id=GPU_TRAINING_TASK, queue=GPU_QUEUE)
    def train_on_gpu(snapshot_id: str, decision: dict) -> dict:
        return run_job("retraining.train", snapshot_id=snapshot_id, decision=decision)

    @task(outlets=[Asset(MODEL_ASSET_URI)], trigger_rule="none_failed_min_one_success")
    def register(decision: dict, trained: dict | None, trained_on_gpu: dict | None) -> dict:
        return run_job("retraining.register", decision=decision, trained=trained, trained_on_gpu=trained_on_gpu)

    decision = decide()
    snapshot_id = refresh_snapshot()
    cooldown_gate(decision) >> snapshot_id
    lanes = [train(snapshot_id, decision), train_on_gpu(snapshot_id, decision)]
    snapshot_id >> route_training() >> lanes
    register(decision, *lanes)


retrain_classifier()
