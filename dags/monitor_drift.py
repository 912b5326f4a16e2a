"""Daily drift checks of the scored catalogue; an alert emits an event on the drift-alert asset."""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task

from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.orchestration import DEFAULT_ARGS, START_DATE, run_job
from rakuten_ml.timetables import NextSlotCronTimetable

DRIFT_ALERT = Asset(DRIFT_ALERT_ASSET_URI)

DOC = """
### monitor_drift
**Schedule:** daily at 04:00 UTC, after nightly scoring (02:00): the window is the day before the run.

The production plan's rules (docs/production-plan.md), per model version (the one that made most of the window's predictions):
- **data drift**: KS tests of text lengths, missing description, TF-IDF/SVD components and image
  statistics against the training snapshot; a day drifts when >= `RAKUTEN_DRIFT_FEATURE_SHARE` of the
  features have p < 0.05, and the alert fires after **3 consecutive** drifted days;
- **prediction drift**: KL(predicted classes || validation predictions) > 0.1, Laplace-smoothed;
- **confidence drift**: mean confidence over 7 days < 0.75;
- **concept drift**: accuracy on human feedback > 3 points below the validation accuracy;
- **estimated performance** (label-free): the champion's accuracy estimated from its probabilities on the
  night's scored catalogue (expected confusion counts stored by scoring) > 3 points
  (`RAKUTEN_DRIFT_ESTIMATE_MAX_DROP`) below its first night's estimate, **3 consecutive** days; not
  trusted (status `untrusted`, no alert) when the labelled sample shows the confidence overstating
  accuracy (concept shift, label noise: the concept-drift rule's case). Its weighted F1 is stored beside it.

Rows go to `drift_checks` (rerunning a day overwrites it), the evidently HTML report to
`monitoring/reports/<date>/data_drift.html`, gauges to the Prometheus textfile. When an alert fires,
`emit_alert` records an event on `rakuten://drift-alert` (extra: alert id, rules, statistics), which
schedules `retrain_classifier`; otherwise it is skipped.
"""


@dag(
    dag_id="monitor_drift",
    schedule=NextSlotCronTimetable("0 4 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["rakuten", "monitoring"],
    doc_md=DOC,
    params={
        "check_date": Param(None, type=["null", "string"], format="date", description="Day to check (window ends at its midnight); empty = the run's time"),
        "window_days": Param(None, type=["null", "integer"], minimum=1, description="Days of scored products; empty = settings"),
        "model_version": Param(None, type=["null", "string"], description="Version to check; empty = the one with most predictions"),
    },
)
def monitor_drift() -> None:
    @task
    def check() -> dict:
        return run_job("monitoring.check")

    @task(outlets=[DRIFT_ALERT])
    def emit_alert(summary: dict) -> dict:
        return run_job("monitoring.emit_alert", summary=summary)

    emit_alert(check())


monitor_drift()
