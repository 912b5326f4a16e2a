"""Nightly scoring of the whole catalogue with one pinned model version."""

from __future__ import annotations

from rakuten_ml.orchestration import DEFAULT_ARGS, START_DATE
from airflow.sdk import Param, dag, task

DOC = """
### score_catalogue
**Schedule:** nightly at 02:00 UTC (after `ingest_products` at 01:00).

Resolves the `champion` alias (newest version when no champion exists yet) to one version at
the start, so the whole run uses one model, scores every product of the latest snapshot and
upserts predictions keyed by (run id, product id): rerunning a run overwrites its rows.
"""


@dag(
    dag_id="score_catalogue",
    schedule="0 2 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rakuten", "scoring"],
    doc_md=DOC,
    params={
        "snapshot_id": Param(None, type=["null", "string"], description="Snapshot to score; empty = latest"),
        "model_version": Param(None, type=["null", "string"], description="Pin a version; empty = champion"),
    },
)
def score_catalogue() -> None:
    @task
    def resolve_model(params: dict | None = None) -> dict:
        from dataclasses import asdict

        from rakuten_ml.registry.resolve import resolve_model as resolve
        from rakuten_ml.settings import Settings

        return asdict(resolve(Settings(), version=(params or {}).get("model_version") or None))

    @task
    def score(model: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        from rakuten_ml.platform import Platform
        from rakuten_ml.registry.resolve import ResolvedModel
        from rakuten_ml.scoring.batch import score_products

        result = score_products(
            Platform.from_env(),
            run_id=run_id or "manual",
            snapshot_id=(params or {}).get("snapshot_id") or None,
            model=ResolvedModel(**model),
        )
        return result.summary()

    score(resolve_model())


score_catalogue()
