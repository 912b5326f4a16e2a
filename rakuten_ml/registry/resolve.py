"""Resolving which registered version to use: an alias when set, else the newest version."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rakuten_ml.errors import ModelLoadError, NoModelYetError
from rakuten_ml.registry.client import mlflow_client
from rakuten_ml.registry.contract import CHAMPION
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: str
    alias: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve_model(settings: Settings, *, version: str | None = None, alias: str | None = CHAMPION) -> ResolvedModel:
    """Pin an alias (or 'latest') to a concrete version once, so a whole job uses one model."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(settings)
    name = settings.registered_model_name
    try:
        if version:
            return ResolvedModel(name, str(client.get_model_version(name, version).version), None)
        if alias:
            try:
                return ResolvedModel(name, str(client.get_model_version_by_alias(name, alias).version), alias)
            except MlflowException:
                log.info("model %s has no alias %r yet: using its newest version", name, alias)
        versions = client.search_model_versions(f"name='{name}'", order_by=["version_number DESC"], max_results=1)
    except MlflowException as exc:
        raise ModelLoadError(f"cannot resolve model {name!r} at {settings.mlflow_tracking_uri}: {exc.message}") from exc
    if not versions:
        raise NoModelYetError(f"model {name!r} has no registered version yet; train one first (`rakuten-ml train` or the retrain_classifier DAG)")
    return ResolvedModel(name, str(versions[0].version), None)


def load_classifier(settings: Settings, resolved: ResolvedModel) -> Any:
    """The :class:`FusedClassifier` inside a registered pyfunc model."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(resolved.uri)
        return model.unwrap_python_model().classifier
    except Exception as exc:  # noqa: BLE001 - MLflow/pickle raise many types; all mean "cannot load"
        raise ModelLoadError(f"cannot load {resolved.uri}: {type(exc).__name__}: {exc}; keep the current model") from exc
