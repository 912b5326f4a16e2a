"""DAG files: import cleanly and fast, carry the metadata operators rely on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import DAGS_FOLDER

EXPECTED = {"ingest_products", "train_text_model", "score_catalogue"}
EXPECTED |= {"evaluate_ab_test", "guard_champion"}
EXPECTED |= {"monitor_drift", "retrain_classifier"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_metadata(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "rakuten" in dag.tags
    assert dag.doc_md and "**Schedule:**" in dag.doc_md
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == "ml-platform"
        assert task.retries >= 1


def _cron(timetable) -> str:  # noqa: ANN001 - an Airflow timetable
    assert type(timetable).__name__ == "NextSlotCronTimetable"  # unpausing never runs a missed slot
    return timetable.summary


def test_schedules_are_the_documented_ones(dagbag):
    assert _cron(dagbag.dags["ingest_products"].timetable) == "0 1 * * *"
    scoring = dagbag.dags["score_catalogue"].timetable  # after each ingestion: on the snapshot asset's events
    assert type(scoring).__name__ == "AssetTriggeredTimetable" and [a.name for a in scoring.asset_condition.objects] == ["rakuten://dataset-snapshot"]
    assert dagbag.dags["train_text_model"].schedule is None
    assert _cron(dagbag.dags["monitor_drift"].timetable) == "0 4 * * *"  # after the night's scoring
    assert _cron(dagbag.dags["guard_champion"].timetable) == "15 * * * *"
    retrain = dagbag.dags["retrain_classifier"].timetable  # monthly OR on a drift-alert event
    assert type(retrain).__name__ == "AssetOrTimeSchedule" and _cron(retrain.timetable) == "0 3 1 * *"
    assert retrain.asset_condition.name == "rakuten://drift-alert"
    evaluate = dagbag.dags["evaluate_ab_test"].timetable  # daily OR on each registered version
    assert _cron(evaluate.timetable) == "0 6 * * *" and evaluate.asset_condition.name == "rakuten://registered-model"


def test_dag_files_do_not_import_heavy_libraries_at_parse_time():
    """The scheduler parses every file every few seconds: no torch/sklearn/mlflow at module level."""
    dag_files = [str(p) for p in sorted(DAGS_FOLDER.glob("[!_]*.py"))]
    code = (
        f"import sys, runpy; sys.path.insert(0, {str(DAGS_FOLDER)!r});"
        f"[runpy.run_path(p) for p in {dag_files!r}];"
        "heavy = [m for m in ('torch', 'sklearn', 'mlflow', 'timm', 'xgboost', 'pandas', 'rakuten_ml.training') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([""], []), out.stdout
