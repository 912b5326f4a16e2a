"""The URLs between the Airflow and MLflow UIs, built from what tasks return."""

from rakuten_ml.links import (
    CHALLENGER_LINK,
    CHAMPION_LINK,
    RUN_LINK,
    VERSION_LINK,
    airflow_dag_run_url,
    mlflow_registry_url,
    mlflow_ui_base,
    task_links,
)

BASE = "http://mlflow.example:5000"


def test_the_mlflow_ui_is_the_setting_else_the_tracking_server_never_an_embedded_store():
    assert mlflow_ui_base("https://mlflow.example/", "http://mlflow:5000") == "https://mlflow.example"
    assert mlflow_ui_base("", "http://mlflow:5000/") == "http://mlflow:5000"
    assert mlflow_ui_base("", "sqlite:///var/mlflow.db") is None
    assert mlflow_registry_url(BASE) == f"{BASE}/#/models"


def test_a_training_task_links_to_its_run_and_its_version():
    summary = {"snapshot_id": "snap-1", "run_id": "abc123", "experiment_id": "7", "model_name": "rakuten clf", "model_version": "4"}
    assert task_links(summary, None, BASE) == {
        RUN_LINK: f"{BASE}/#/experiments/7/runs/abc123",
        VERSION_LINK: f"{BASE}/#/models/rakuten%20clf/versions/4",  # names are quoted
    }


def test_a_scoring_task_links_to_the_versions_its_run_pinned():
    pinned = {"champion": {"name": "m", "version": "3", "alias": "champion"}, "challenger": None, "challenger_share": 0.0}
    assert task_links({"scored": 10}, pinned, BASE) == {CHAMPION_LINK: f"{BASE}/#/models/m/versions/3"}
    pinned["challenger"] = {"name": "m", "version": "5", "alias": "challenger"}
    assert task_links(None, pinned, BASE)[CHALLENGER_LINK] == f"{BASE}/#/models/m/versions/5"


def test_no_link_without_data_or_without_an_mlflow_ui():
    assert task_links({"skip_reason": "no model yet"}, {"skip_reason": "no model yet"}, BASE) == {}
    assert task_links("snap-1", None, BASE) == {}  # a task returning a plain value
    assert task_links({"run_id": "a", "experiment_id": "1"}, None, None) == {}


def test_a_version_links_back_to_its_dag_run():
    assert airflow_dag_run_url("http://airflow:8080/", "retrain_classifier", "manual__2026-12-01T00:00:00+00:00") == (
        "http://airflow:8080/dags/retrain_classifier/runs/manual__2026-12-01T00%3A00%3A00%2B00%3A00"
    )
