"""Retrain the classifier monthly or on a drift alert, debounced by a cool-down; promotion comes after `register`."""

from __future__ import annotations

from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.orchestration import DEFAULT_ARGS, MODALITY_CHOICES, MODEL_ASSET_URI, START_DATE
from rakuten_ml.timetables import NextSlotCronTimetable
from airflow.sdk import Asset, AssetOrTimeSchedule, Param, dag, task

DRIFT_ALERT = Asset(DRIFT_ALERT_ASSET_URI)
DEFAULT_MODALITIES = next(iter(MODALITY_CHOICES))
# How many recent drift alerts a monthly/manual run looks at for ones no run has answered yet.
RECENT_ALERTS = 20

DOC = """
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
4. `train` trains on it with the chosen modalities (default: the champion's, else the newest version's,
   text+image for a first model) and registers a new version in MLflow.
5. `register` closes the request with the version and emits `rakuten://registered-model`.

**Promotion (gate, A/B start) attaches downstream of `register`**, whose return value is the
training summary (`model_version`, `metrics`, `snapshot_id`).
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
    def decide(params: dict | None = None, dag_run=None, run_id: str | None = None, logical_date=None,  # noqa: ANN001
               triggering_asset_events=None, inlet_events=None) -> dict:  # noqa: ANN001 - Airflow accessors
        from rakuten_ml.monitoring.retrain_guard import alerts_from_events, begin_retrain
        from rakuten_ml.platform import Platform

        params = params or {}
        platform = Platform.from_env()
        triggering = alerts_from_events((triggering_asset_events or {}).get(DRIFT_ALERT, []))
        run_type = getattr(dag_run.run_type, "value", str(dag_run.run_type)) if dag_run else "manual"
        recent = [] if triggering else alerts_from_events(inlet_events[DRIFT_ALERT].ascending(False).limit(RECENT_ALERTS))
        return begin_retrain(
            platform.engine,
            dag_run_id=run_id or "manual",
            run_type=run_type,
            triggering=triggering,
            recent=recent,
            reason=params.get("reason") or None,
            force=bool(params.get("force")),
            cooldown_hours=platform.settings.retrain_cooldown_hours,
            as_of=logical_date,  # None for asset-triggered runs: the triggering alerts' time is used
        )

    @task
    def cooldown_gate(decision: dict) -> None:
        """A refused request ends here as *skipped* (with everything below), so the grid shows it as a skip."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not decision["proceed"]:
            raise AirflowSkipException(f"not retraining ({decision['status']}): {decision['decision']}; trigger with force=true to train anyway")

    @task
    def refresh_snapshot(params: dict | None = None) -> str:
        from rakuten_ml.cli import run_ingest

        snapshot_id = (params or {}).get("snapshot_id")
        return snapshot_id or run_ingest()["snapshot_id"]

    @task
    def train(snapshot_id: str, decision: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        from rakuten_ml.monitoring.retrain_guard import record_failure
        from rakuten_ml.platform import Platform
        from rakuten_ml.training.modalities import resolve_modalities
        from rakuten_ml.training.train import train_and_register

        platform = Platform.from_env()
        try:
            result = train_and_register(
                platform,
                snapshot_id=snapshot_id,
                modalities=resolve_modalities(platform.settings, (params or {}).get("modalities") or DEFAULT_MODALITIES),
                dag_run_id=run_id,
                reason=decision["reason"],
            )
        except Exception as exc:
            record_failure(platform.engine, decision["dag_run_id"], exc, snapshot_id=snapshot_id)
            raise
        return result.summary()

    @task(outlets=[Asset(MODEL_ASSET_URI)])
    def register(trained: dict, decision: dict, outlet_events=None) -> dict:  # noqa: ANN001 - Airflow's accessor
        from rakuten_ml.monitoring.retrain_guard import STATUS_SUCCEEDED, finish_request
        from rakuten_ml.platform import Platform

        finish_request(Platform.from_env().engine, decision["dag_run_id"], status=STATUS_SUCCEEDED,
                       snapshot_id=trained["snapshot_id"], model_version=trained["model_version"])
        outlet_events[Asset(MODEL_ASSET_URI)].extra = {
            "model_version": trained["model_version"], "reason": decision["reason"], "alert_ids": [a["alert_id"] for a in decision["alerts"]],
        }
        return trained

    decision = decide()
    snapshot_id = refresh_snapshot()
    cooldown_gate(decision) >> snapshot_id
    register(train(snapshot_id, decision), decision)


retrain_classifier()
