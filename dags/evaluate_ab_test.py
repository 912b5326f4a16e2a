"""Daily A/B decision on live traffic, and the offline gate for each newly registered version."""

from __future__ import annotations

from airflow.sdk import Asset, AssetOrTimeSchedule, Param, dag, task

from rakuten_ml.orchestration import DEFAULT_ARGS, MODEL_ASSET_URI, START_DATE, run_job
from rakuten_ml.timetables import NextSlotCronTimetable

DOC = """
### evaluate_ab_test
**Schedule:** daily at 06:00 UTC (after nightly scoring and the day's feedback), and whenever
`train_text_model` registers a new version.

1. `evaluate_ab`: joins the champion's and the challenger's predictions (batch and online) to
   the human feedback labels, per split arm (Wilson intervals) and per shadow-scored pair (both
   versions on the same product). Two designs are tested, each at half of `RAKUTEN_AB_ALPHA`: the
   **paired** one on the discordant pairs, the **split-traffic** one on the arms; by default with
   always-valid sequential tests (mixture SPRTs, valid under this daily look), else the fixed-sample
   exact McNemar and z-tests (`RAKUTEN_AB_SEQUENTIAL=false`). The first significant one decides:
   **promote** (champion -> previous-champion, challenger -> champion), **reject** (challenger alias
   removed), or keep testing; the decision names its test and label count (docs/decisions.md).
2. `gate_new_version`: the newest version not yet onboarded is rescored with the champion on the
   champion's frozen evaluation set; it becomes challenger only if its weighted F1 is within
   the tolerance and no class F1 drops beyond the guardrail (first version: straight to champion).

Every alias move takes the promotion lock and is written to `promotion_events`
(`rakuten-ml registry history`). `apply=false` decides without moving aliases.
"""


@dag(
    dag_id="evaluate_ab_test",
    schedule=AssetOrTimeSchedule(timetable=NextSlotCronTimetable("0 6 * * *", timezone="UTC"), assets=Asset(MODEL_ASSET_URI)),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rakuten", "promotion"],
    doc_md=DOC,
    params={"apply": Param(True, type="boolean", description="Move the aliases; false = decide only (dry run)")},
)
def evaluate_ab_test() -> None:
    @task
    def evaluate_ab() -> dict:
        return run_job("promotion.evaluate_ab")

    @task
    def gate_new_version() -> dict | None:
        return run_job("promotion.gate_new_version")

    # decide the running test first: a new challenger would abandon it
    evaluate_ab() >> gate_new_version()


evaluate_ab_test()
