"""What the DAG files share: the next-slot timetable, asset event payloads, and trigger forms that submit on their defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pendulum
import pytest

from rakuten_ml import timetables
from rakuten_ml.orchestration import latest_event_extra, run_as_of, snapshot_event_extra
from tests.support.paths import DAGS_FOLDER


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def _restriction(earliest: datetime | None = None, catchup: bool = False):  # noqa: ANN202
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest=pendulum.instance(earliest) if earliest else None, latest=None, catchup=catchup)


def _frozen(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    monkeypatch.setattr(timetables, "utcnow", lambda: pendulum.instance(now))


def test_first_scheduled_run_is_the_next_slot_not_the_missed_one(monkeypatch):
    """Unpausing the monthly retrain on the 1st at 21:00 must not train at once (Airflow's cron runs 03:00's slot)."""
    from airflow.timetables.trigger import CronTriggerTimetable

    _frozen(monkeypatch, datetime(2026, 12, 1, 21, 0, tzinfo=UTC))
    monkeypatch.setattr("airflow.timetables.trigger.utcnow", lambda: pendulum.datetime(2026, 12, 1, 21, 0, tz="UTC"))
    restriction = _restriction(earliest=datetime(2026, 1, 1, tzinfo=UTC))
    stock = CronTriggerTimetable("0 3 1 * *", timezone="UTC").next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    ours = timetables.NextSlotCronTimetable("0 3 1 * *", timezone="UTC").next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert stock.run_after == pendulum.datetime(2026, 12, 1, 3, tz="UTC")  # what we avoid
    assert ours.run_after == pendulum.datetime(2027, 1, 1, 3, tz="UTC")


def test_after_its_first_run_the_timetable_catches_up_like_airflows(monkeypatch):
    from airflow.timetables.base import DataInterval

    _frozen(monkeypatch, datetime(2026, 12, 3, 5, 0, tzinfo=UTC))
    monkeypatch.setattr("airflow.timetables.trigger.utcnow", lambda: pendulum.datetime(2026, 12, 3, 5, 0, tz="UTC"))
    last = DataInterval(pendulum.datetime(2026, 12, 1, 1, tz="UTC"), pendulum.datetime(2026, 12, 1, 1, tz="UTC"))
    info = timetables.NextSlotCronTimetable("0 1 * * *", timezone="UTC").next_dagrun_info(
        last_automated_data_interval=last, restriction=_restriction(earliest=datetime(2026, 1, 1, tzinfo=UTC)))
    assert info.run_after == pendulum.datetime(2026, 12, 3, 1, tz="UTC")  # the latest missed slot, once


def test_timetable_survives_airflow_serialization_with_the_plugin(dagbag):
    """Custom timetables must be registered by a plugin, or the dag-processor refuses the DAG."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id in ("ingest_products", "retrain_classifier"):
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id]))
        inner = getattr(restored.timetable, "timetable", restored.timetable)
        assert type(inner).__name__ == "NextSlotCronTimetable"


def test_run_as_of_prefers_the_logical_date():
    day = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    later = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    assert run_as_of(day, later) == day
    assert run_as_of(None, later) == later
    assert run_as_of(datetime(2026, 11, 27, 1, 0)).tzinfo is not None  # naive dates are UTC


def test_snapshot_event_names_its_snapshot_and_day():
    summary = {"snapshot_id": "snap-1", "created": False, "n_accepted": 9, "n_quarantined": 1, "n_input": 10}
    extra = snapshot_event_extra(summary, datetime(2026, 11, 27, 1, tzinfo=UTC))
    assert extra == {"snapshot_id": "snap-1", "new": False, "n_accepted": 9, "n_quarantined": 1, "as_of": "2026-11-27T01:00:00+00:00"}
    events = [SimpleNamespace(extra={"snapshot_id": "old"}, timestamp="2026-11-26T01:00:00"), SimpleNamespace(extra=extra, timestamp="2026-11-27T01:00:00")]
    assert latest_event_extra(events)["snapshot_id"] == "snap-1"
    assert latest_event_extra([]) == {}


def test_every_trigger_form_submits_on_its_defaults(dagbag):
    """A param the form shows as required while its default is empty keeps the Trigger button red."""
    for dag in dagbag.dags.values():
        dag.params.validate()  # raises when a default does not satisfy its own schema
        for name, param in dag.params.items():
            schema = param.schema
            if param.value in ("", None):
                assert "null" in schema.get("type", []), f"{dag.dag_id}.{name}: an empty default must be nullable"


def test_retrain_form_offers_choices(dagbag):
    params = dagbag.dags["retrain_classifier"].params
    modalities = params.get_param("modalities")
    assert modalities.schema["enum"] == ["champion", "text+image", "text"] and modalities.value == "champion"
    assert set(modalities.schema["values_display"]) == set(modalities.schema["enum"])
    assert params.get_param("reason").value is None and params.get_param("force").value is False


def test_every_modalities_choice_means_something():
    from rakuten_ml.errors import ConfigurationError
    from rakuten_ml.orchestration import MODALITY_CHOICES
    from rakuten_ml.settings import Settings
    from rakuten_ml.training.modalities import CHOICES, SAME_AS_CHAMPION, resolve_modalities

    assert set(MODALITY_CHOICES) == {SAME_AS_CHAMPION, *CHOICES}
    assert resolve_modalities(Settings(), "text+image") == ("text", "image")
    assert resolve_modalities(Settings(), "text") == ("text",)
    with pytest.raises(ConfigurationError, match="not one of"):
        resolve_modalities(Settings(), "image")


@pytest.fixture
def task_context(monkeypatch):
    """What Airflow gives a running task, enough for run_job (outlet events are recorded per asset)."""
    from collections import defaultdict
    from types import SimpleNamespace

    context = {"run_id": "manual__1", "params": {}, "outlet_events": defaultdict(SimpleNamespace)}
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: context)
    return context


def test_scoring_with_no_model_yet_skips_instead_of_failing(dagbag, task_context):
    from airflow.sdk.exceptions import AirflowSkipException

    dag = dagbag.dags["score_catalogue"]
    no_model = {"skip_reason": "model 'm' has no registered version yet"}
    with pytest.raises(AirflowSkipException, match="nothing to score: model 'm' has no registered version yet"):
        dag.get_task("plan").python_callable(models=no_model)
    with pytest.raises(AirflowSkipException, match="nothing was scored"):
        dag.get_task("summarise").python_callable(_counts=[], models=no_model)


def test_refused_retrain_is_a_skip_that_says_why(dagbag, task_context):
    from airflow.sdk.exceptions import AirflowSkipException

    gate = dagbag.dags["retrain_classifier"].get_task("cooldown_gate").python_callable
    assert gate({"proceed": True}) is None
    with pytest.raises(AirflowSkipException, match="run r1 started .*; trigger with force=true"):
        gate({"proceed": False, "status": "skipped_cooldown", "decision": "run r1 started 2 days ago"})


def test_a_failed_job_fails_its_task_and_emitted_events_reach_the_outlets(dagbag, task_context, monkeypatch):
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowFailException

    from rakuten_ml.jobs import scoring
    from rakuten_ml.jobs.context import JobFailed

    def unfinished(ctx, models):
        raise JobFailed(f"run {ctx.run_id}: 1 of 3 partitions are not scored")

    monkeypatch.setattr(scoring, "summarise", unfinished)
    with pytest.raises(AirflowFailException, match="run manual__1: 1 of 3 partitions"):
        dagbag.dags["score_catalogue"].get_task("summarise").python_callable(_counts=[], models={"champion": {}})
    alert = {"alert_id": "drift:2026-06-03:v1", "alerts": [{"metric": "data_drift"}]}
    emitted = dagbag.dags["monitor_drift"].get_task("emit_alert").python_callable(summary={"alerts": ["data_drift"], "alert": alert})
    assert emitted == alert
    assert task_context["outlet_events"][Asset("rakuten://drift-alert")].extra == alert


def test_image_training_runs_on_the_gpu_queue_and_text_only_on_default(dagbag):
    from airflow.task.trigger_rule import TriggerRule

    from rakuten_ml.orchestration import GPU_TRAINING_TASK, TRAINING_TASK, gpu_queue

    dag = dagbag.dags["retrain_classifier"]
    assert dag.get_task(GPU_TRAINING_TASK).queue == gpu_queue() == "gpu"
    assert dag.get_task(TRAINING_TASK).queue == "default"
    route = dag.get_task("route_training")
    assert route.downstream_task_ids == {TRAINING_TASK, GPU_TRAINING_TASK}
    # register runs after whichever lane ran (and skips itself when both were skipped: a refused request)
    assert dag.get_task("register").trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
    assert dagbag.dags["score_catalogue"].get_task("score_partition").queue == gpu_queue()


@pytest.mark.parametrize(("choice", "lane"), [("text", "train"), ("text+image", "train_on_gpu")])
def test_the_training_lane_follows_the_modalities(choice, lane, tmp_path, monkeypatch):
    from rakuten_ml.jobs import retraining
    from rakuten_ml.jobs.context import JobContext

    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path))
    assert retraining.route_training(JobContext(run_id="r1", params={"modalities": choice})) == lane


def test_register_takes_the_summary_of_the_lane_that_ran(tmp_path, monkeypatch):
    from rakuten_ml.jobs import retraining
    from rakuten_ml.jobs.context import JobContext, JobSkipped
    from rakuten_ml.monitoring.retrain_guard import begin_retrain
    from rakuten_ml.resources import Platform

    monkeypatch.setenv("RAKUTEN_HOME", str(tmp_path))
    engine = Platform.ready().engine
    decision = begin_retrain(engine, dag_run_id="manual__1", run_type="manual", triggering=[], recent=[], reason="test",
                             force=True, cooldown_hours=0.0, as_of=None)
    trained = {"snapshot_id": "snap-1", "model_version": "3", "metrics": {}}
    out = retraining.register(JobContext(run_id="manual__1"), decision, trained=None, trained_on_gpu=trained)
    assert out.value == trained and out.events["rakuten://registered-model"]["model_version"] == "3"
    with pytest.raises(JobSkipped, match="nothing was trained"):  # both lanes skipped: a refused request
        retraining.register(JobContext(run_id="manual__1"), decision, trained=None, trained_on_gpu=None)


def test_mlflow_records_keep_their_level_in_a_task_log():
    """In a task process: no MLflow handler on stderr (Airflow files stderr as ERROR); records reach the root
    logger, Airflow's task log handler, with their own level."""
    import subprocess
    import sys

    probe = (
        "import io, logging\n"
        "root = logging.getLogger(); root.setLevel(logging.INFO)\n"
        "seen = []\n"
        "class Keep(logging.Handler):\n"
        "    def emit(self, record): seen.append((record.name, record.levelname))\n"
        "root.addHandler(Keep())\n"
        "from rakuten_ml.orchestration import keep_library_log_levels\n"
        "keep_library_log_levels()\n"
        "import mlflow\n"
        "keep_library_log_levels()\n"  # run_job calls it for every task, also after MLflow was imported
        "logging.getLogger('mlflow.tracking').info('registered')\n"
        "logging.getLogger('mlflow.store').warning('slow')\n"
        "from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as bar\n"
        "print(seen, [type(h).__name__ for h in logging.getLogger('mlflow').handlers], bar.get())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[('mlflow.tracking', 'INFO'), ('mlflow.store', 'WARNING')] [] False", out.stdout
    assert "registered" not in out.stderr and "slow" not in out.stderr  # nothing on stderr for Airflow to call an error


def test_mlflow_imported_before_the_task_loses_its_stderr_handler(monkeypatch):
    import logging
    import sys

    from rakuten_ml.orchestration import keep_library_log_levels

    mlflow_logger = logging.getLogger("mlflow")
    stray = logging.StreamHandler(sys.stderr)
    monkeypatch.setattr(mlflow_logger, "handlers", [stray])
    monkeypatch.setattr(mlflow_logger, "propagate", False)
    keep_library_log_levels()
    assert mlflow_logger.handlers == [] and mlflow_logger.propagate
