"""Ingest labelled products (S3/folder catalogue files + the labelled-products table) into a snapshot."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from rakuten_ml.orchestration import DEFAULT_ARGS, SNAPSHOT_ASSET_URI, START_DATE, run_job
from rakuten_ml.timetables import NextSlotCronTimetable

SNAPSHOT = Asset(SNAPSHOT_ASSET_URI)

DOC = """
### ingest_products
**Schedule:** daily at 01:00 UTC; its `rakuten://dataset-snapshot` event starts the nightly scoring, which so sees yesterday's labels.

Reads the catalogue files (`RAKUTEN_OBJECT_STORE_URL`/`RAKUTEN_CATALOGUE_PREFIX`, or the `source`
param) and the labelled-products table, validates every row against the data contract,
quarantines bad rows with their reason and writes a content-addressed snapshot. Rerunning on
the same inputs yields the same snapshot id and writes nothing twice.

Every successful run records an event on `rakuten://dataset-snapshot` whose extra names the snapshot
(`snapshot_id`, `new`: whether its content is new, the counts, and `as_of`: the run's logical date).
That event schedules `score_catalogue`, which scores exactly that snapshot: nightly scoring follows
each night's ingestion instead of guessing when it ends, and an unchanged snapshot is still rescored
(the champion may have changed since yesterday).
"""


@dag(
    dag_id="ingest_products",
    schedule=NextSlotCronTimetable("0 1 * * *", timezone="UTC"),
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
        return run_job("ingestion.init_database")

    @task(outlets=[SNAPSHOT])
    def ingest() -> dict:
        return run_job("ingestion.ingest")

    init_database() >> ingest()


ingest_products()
