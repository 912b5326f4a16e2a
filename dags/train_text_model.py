"""Train the seed text model on a snapshot, log it to MLflow and register a new version."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from rakuten_ml.orchestration import DEFAULT_ARGS, MODEL_ASSET_URI, START_DATE, run_job

DOC = """
### train_text_model
**Schedule:** none — triggered from the UI/CLI (params form below) or by the retraining DAG.

TF-IDF word (1,2) + char_wb (3,5) n-grams with a LinearSVC (C=0.5) and calibrated
probabilities, trained on the stratified 80% of the snapshot (latest by default), evaluated on
the other 20% (seed 42), logged to MLflow and registered as a new version of the classifier.
"""


@dag(
    dag_id="train_text_model",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 1},
    tags=["rakuten", "training"],
    doc_md=DOC,
    params={
        "snapshot_id": Param(None, type=["null", "string"], description="Snapshot to train on; empty = latest"),
        "reason": Param("manual", type="string", description="Why this training runs (kept on the model)"),
    },
)
def train_text_model() -> None:
    @task(outlets=[Asset(MODEL_ASSET_URI)])
    def train() -> dict:
        return run_job("training.train_text")

    train()


train_text_model()
