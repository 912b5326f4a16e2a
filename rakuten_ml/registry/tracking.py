"""MLflow connection from settings: one place sets tracking/registry URIs and the experiment."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from rakuten_ml.registry.errors import registry_errors
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured tracking server/store; returns the experiment id."""
    import mlflow

    settings.ensure_home()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    with registry_errors(settings.mlflow_tracking_uri, f"open the MLflow experiment {settings.mlflow_experiment!r}",
                         then="rerun the training", not_found=None):
        experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
        if experiment is None:
            experiment_id = mlflow.create_experiment(settings.mlflow_experiment, artifact_location=settings.mlflow_artifact_location)
        else:
            experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit(repo: Path | None = None) -> str:
    """Commit of the code that trains, recorded with every model ('unknown' outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
