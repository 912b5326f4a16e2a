"""Daily drift checks of the scored catalogue; an alert emits an event on the drift-alert asset."""

from __future__ import annotations

from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.orchestration import DEFAULT_ARGS, START_DATE
from rakuten_ml.timetables import NextSlotCronTimetable
from airflow.sdk import Asset, Param, dag, task

DRIFT_ALERT = Asset(DRIFT_ALERT_ASSET_URI)

DOC = """
### monitor_drift
**Schedule:** daily at 04:00 UTC, after nightly scoring (02:00): the window is the day before the run.

Seed report 7.5.1, per model version (the one that made most of the window's predictions):
- **data drift**: KS tests of text lengths, missing description, TF-IDF/SVD components and image
  statistics against the training snapshot; a day drifts when > `RAKUTEN_DRIFT_FEATURE_SHARE` of the
  features have p < 0.05, and the alert fires after **3 consecutive** drifted days;
- **prediction drift**: KL(predicted classes || validation predictions) > 0.1, Laplace-smoothed;
- **confidence drift**: mean confidence over 7 days < 0.75;
- **concept drift**: accuracy on human feedback > 3 points below the validation accuracy.

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
    def check(params: dict | None = None, logical_date=None) -> dict:  # noqa: ANN001 - Airflow injects a datetime
        from datetime import UTC, date, datetime

        from rakuten_ml.cli import run_drift_check

        params = params or {}
        check_date = date.fromisoformat(params["check_date"]) if params.get("check_date") else None
        return run_drift_check(
            check_date=check_date,
            as_of=None if check_date else (logical_date or datetime.now(UTC)),
            window_days=params.get("window_days") or None,
            model_version=params.get("model_version") or None,
        )

    @task.short_circuit
    def alert_fired(summary: dict) -> bool:
        return bool(summary.get("alerts"))

    @task(outlets=[DRIFT_ALERT])
    def emit_alert(summary: dict, outlet_events=None) -> dict:  # noqa: ANN001 - Airflow's accessor
        outlet_events[DRIFT_ALERT].extra = summary["alert"]
        return summary["alert"]

    summary = check()
    alert_fired(summary) >> emit_alert(summary)


monitor_drift()
