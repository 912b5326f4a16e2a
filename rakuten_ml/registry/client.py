"""The one way the platform builds an MLflow client: tracking and registry URIs from Settings, explicit,
never the process-wide ``mlflow.set_tracking_uri`` another module may have set."""

from __future__ import annotations

from typing import Any

from rakuten_ml.settings import Settings


def mlflow_client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
