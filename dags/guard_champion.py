"""Hourly champion health check with automatic rollback to the previous champion."""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from rakuten_ml.orchestration import DEFAULT_ARGS, START_DATE, run_job
from rakuten_ml.timetables import NextSlotCronTimetable

DOC = """
### guard_champion
**Schedule:** hourly at minute 15.

Rolling accuracy of the `champion` over its last `RAKUTEN_ROLLBACK_WINDOW` labelled predictions
(batch and online, joined to feedback) against its validation accuracy (`metric.accuracy` tag):
below baseline - `RAKUTEN_ROLLBACK_TOLERANCE` (seed: 2 points), or the serving error rate / P95
latency over their limits (P95 read from the `prediction_log` of the last hour when not given; the error rate comes from the serving metrics as a param), moves `champion` back to `previous-champion` through
the locked, audited path and raises an alert (ERROR log, `promotion_events` row, alert hooks).
Idempotent: with no previous-champion left, or a healthy champion, it changes nothing.
"""


@dag(
    dag_id="guard_champion",
    schedule=NextSlotCronTimetable("15 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rakuten", "promotion", "monitoring"],
    doc_md=DOC,
    params={
        "error_rate": Param(None, type=["null", "number"], description="Serving error rate of the last hour; empty = not checked"),
        "p95_latency_ms": Param(None, type=["null", "number"], description="Serving P95 latency (ms); empty = not checked"),
    },
)
def guard_champion() -> None:
    @task
    def check_champion() -> dict:
        return run_job("promotion.check_champion")

    check_champion()


guard_champion()
