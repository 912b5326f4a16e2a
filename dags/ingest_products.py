"""Ingest labelled products (S3/folder catalogue files + the labelled-products table) into a snapshot."""

from __future__ import annotations

from rakuten_ml.orchestration import DEFAULT_ARGS, SNAPSHOT_ASSET_URI, START_DATE
from airflow.sdk import Asset, Param, dag, task

DOC = """
### ingest_products
**Schedule:** daily at 01:00 UTC, before nightly scoring (02:00), so scoring sees yesterday's labels.

Reads the catalogue files (`RAKUTEN_OBJECT_STORE_URL`/`RAKUTEN_CATALOGUE_PREFIX`, or the `source`
param) and the labelled-products table, validates every row against the data contract,
quarantines bad rows with their reason and writes a content-addressed snapshot. Rerunning on
the same inputs yields the same snapshot id and writes nothing twice.
"""


@dag(
    dag_id="ingest_products",
    schedule="0 1 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rakuten", "data"],
    doc_md=DOC,
    params={
        "source": Param(None, type=["null", "string"], description="Catalogue folder or s3://bucket/prefix; empty = configured"),
        "labelled_table": Param(True, type="boolean", description="Also read the labelled-products table"),
    },
)
def ingest_products() -> None:
    @task
    def init_database() -> str:
        from rakuten_ml.platform import Platform

        platform = Platform.from_env()
        platform.init_labelled_products()
        return platform.engine.url.render_as_string(hide_password=True)

    @task(outlets=[Asset(SNAPSHOT_ASSET_URI)])
    def ingest(params: dict | None = None) -> dict:
        from rakuten_ml.cli import run_ingest

        params = params or {}
        return run_ingest(source=params.get("source") or None, use_labelled_table=bool(params.get("labelled_table", True)))

    init_database() >> ingest()


ingest_products()
