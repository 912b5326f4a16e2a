"""Airflow -> MLflow links: buttons on a task to the MLflow run and model version it trained, on a scoring
task to the champion and challenger versions its run pinned, and an "MLflow registry" entry in the navigation.

The links are global operator extra links, computed by the api-server when a task is opened: they read the
task's return value (and the scoring run's ``resolve_models`` one) from Airflow's XCom table, and the URLs
come from :mod:`rakuten_ml.links` with the MLflow UI base URL from the platform's settings
(``RAKUTEN_AIRFLOW_MLFLOW_UI_URL``, else the tracking server). A task without such data shows no link.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from rakuten_ml.links import (
    CHALLENGER_LINK,
    CHAMPION_LINK,
    REGISTRY_VIEW,
    RUN_LINK,
    SCORING_DAG,
    SCORING_MODELS_TASK,
    VERSION_LINK,
    mlflow_registry_url,
    mlflow_ui_base,
    task_links,
)

log = logging.getLogger(__name__)


def _mlflow_base() -> str | None:
    from rakuten_ml.settings import Settings

    settings = Settings()
    return mlflow_ui_base(settings.airflow.mlflow_ui_url, settings.mlflow_tracking_uri)


# Read once when Airflow loads the plugin: settings come from the process environment, which does not change
MLFLOW_BASE = _mlflow_base()


def _return_value(dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
    """A task instance's return value from the metadata database (None when it returned nothing)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(key="return_value", run_id=run_id, dag_ids=dag_id, task_ids=task_id, map_indexes=map_index)
            .with_only_columns(XComModel.value)
        ).first()
    if row is None or row.value is None:
        return None
    value = row.value
    try:
        return json.loads(value) if isinstance(value, (str, bytes)) else value
    except ValueError:
        return None


class _MlflowLink(BaseOperatorLink):
    """One named link; every task gets it, and it is empty where the task's XComs name no run or version."""

    link_name = ""

    @property
    def name(self) -> str:
        return self.link_name

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        base = MLFLOW_BASE
        if base is None:
            return ""
        try:
            own = _return_value(ti_key.dag_id, ti_key.run_id, ti_key.task_id, ti_key.map_index)
            pinned = _return_value(ti_key.dag_id, ti_key.run_id, SCORING_MODELS_TASK, -1) if ti_key.dag_id == SCORING_DAG else None
        except Exception:  # noqa: BLE001 - a broken link must never break the task page
            log.exception("cannot read the XComs of %s for the %r link", ti_key, self.link_name)
            return ""
        return task_links(own, pinned, base).get(self.link_name, "")


class MlflowRunLink(_MlflowLink):
    link_name = RUN_LINK


class MlflowVersionLink(_MlflowLink):
    link_name = VERSION_LINK


class MlflowChampionLink(_MlflowLink):
    link_name = CHAMPION_LINK


class MlflowChallengerLink(_MlflowLink):
    link_name = CHALLENGER_LINK


def _external_views() -> list[dict[str, Any]]:
    if MLFLOW_BASE is None:
        return []
    return [{"name": REGISTRY_VIEW, "href": mlflow_registry_url(MLFLOW_BASE), "destination": "nav", "category": "browse"}]


class RakutenLinksPlugin(AirflowPlugin):
    name = "rakuten_links"
    global_operator_extra_links = [MlflowRunLink(), MlflowVersionLink(), MlflowChampionLink(), MlflowChallengerLink()]
    external_views = _external_views()
