"""Links between the two UIs: from an Airflow task to the MLflow run and model versions it made or used,
and from an MLflow model version back to the Airflow DAG run that trained it.

Pure URL building over task return values (XComs), so the Airflow plugin (``plugins/rakuten_links.py``),
training and the tests share one spelling of every URL. Imports only the standard library: the
api-server loads it with the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

RUN_LINK = "MLflow run"
VERSION_LINK = "MLflow model version"
CHAMPION_LINK = "MLflow champion version"
CHALLENGER_LINK = "MLflow challenger version"
LINK_NAMES = (RUN_LINK, VERSION_LINK, CHAMPION_LINK, CHALLENGER_LINK)
REGISTRY_VIEW = "MLflow registry"

# The DAG whose tasks all link to the versions its run pinned, and the task that pinned them.
SCORING_DAG, SCORING_MODELS_TASK = "score_catalogue", "resolve_models"


def mlflow_ui_base(mlflow_ui_url: str, tracking_uri: str) -> str | None:
    """The MLflow UI's base URL: the setting, else the tracking server itself; None for an embedded store."""
    base = mlflow_ui_url or (tracking_uri if tracking_uri.startswith(("http://", "https://")) else "")
    return base.rstrip("/") or None


def mlflow_run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(str(run_id), safe='')}"


def mlflow_version_url(base: str, model_name: str, version: str) -> str:
    return f"{base}/#/models/{quote(str(model_name), safe='')}/versions/{quote(str(version), safe='')}"


def mlflow_registry_url(base: str) -> str:
    return f"{base}/#/models"


def airflow_dag_run_url(base: str, dag_id: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_links(own: Any, pinned: Any, base: str | None) -> dict[str, str]:
    """Link name -> URL for one task: ``own`` is its return value, ``pinned`` the scoring run's
    ``resolve_models`` return value (None outside ``score_catalogue``). Links without data are absent."""
    if base is None:
        return {}
    links: dict[str, str] = {}
    if isinstance(own, Mapping):  # a training summary (TrainResult.summary) or the register task's copy of it
        if own.get("run_id") and own.get("experiment_id"):
            links[RUN_LINK] = mlflow_run_url(base, own["experiment_id"], own["run_id"])
        if own.get("model_name") and own.get("model_version"):
            links[VERSION_LINK] = mlflow_version_url(base, own["model_name"], own["model_version"])
    if isinstance(pinned, Mapping):  # RunModels.as_dict: the versions a scoring run uses
        for name, variant in ((CHAMPION_LINK, "champion"), (CHALLENGER_LINK, "challenger")):
            model = pinned.get(variant)
            if isinstance(model, Mapping) and model.get("name") and model.get("version"):
                links[name] = mlflow_version_url(base, model["name"], model["version"])
    return links
