"""Resolving which registered version to use: an alias when set, else the newest version."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rakuten_ml.errors import ModelLoadError, NoModelYetError
from rakuten_ml.registry.client import mlflow_client
from rakuten_ml.registry.contract import CHAMPION
from rakuten_ml.registry.errors import NO_SUCH_ALIAS_CODES, is_not_found, registry_errors
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
    client = mlflow_client(settings)
    name = settings.registered_model_name
    with registry_errors(settings.mlflow_tracking_uri, f"resolve model {name!r}", error=ModelLoadError, not_found=None):
        if version:
            return ResolvedModel(name, str(client.get_model_version(name, version).version), None)
        if alias:
            found = alias_version(settings, alias, client=client)
            if found is not None:
                return ResolvedModel(name, found, alias)
            log.info("model %s has no alias %r yet: using its newest version", name, alias)
        versions = client.search_model_versions(f"name='{name}'", order_by=["version_number DESC"], max_results=1)
    if not versions:
        raise NoModelYetError(f"model {name!r} has no registered version yet; train one first (`rakuten-ml train` or the retrain_classifier DAG)")
    return ResolvedModel(name, str(versions[0].version), None)


def alias_version(settings: Settings, alias: str, *, then: str | None = None, client: Any = None) -> str | None:
    """The version ``alias`` points at, None while it is not set; MLflow down is a :class:`ModelLoadError`
    (a job that went on without the alias would silently change what it scores with)."""
    from mlflow.exceptions import MlflowException

    client = client or mlflow_client(settings)
    name = settings.registered_model_name
    with registry_errors(settings.mlflow_tracking_uri, f"read the {alias!r} alias of {name!r}", then=then, error=ModelLoadError,
                         not_found=None):
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if not is_not_found(exc, NO_SUCH_ALIAS_CODES):
                raise
            return None


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
