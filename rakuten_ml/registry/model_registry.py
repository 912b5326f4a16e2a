"""Logging a trained :class:`FusedClassifier` to MLflow and registering it as a new version."""

from __future__ import annotations

import io
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from rakuten_ml.errors import RegistryError
from rakuten_ml.models.fusion import FusedClassifier
from rakuten_ml.registry.contract import metric_tag
from rakuten_ml.registry.errors import registry_errors
from rakuten_ml.registry.pyfunc_model import CLASSIFIER_ARTIFACT, RakutenClassifierPyfunc
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)

PIP_REQUIREMENTS = [
    "scikit-learn==1.9.1", "numpy==2.4.6", "pandas==2.3.3", "scipy==1.17.1", "joblib==1.6.0", "pillow==13.0.0",
    "torch==2.14.1", "torchvision==0.29.1", "timm==1.0.31", "xgboost==3.2.0", "mlflow==3.17.2",
]


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    model_uri: str


def _signature(classifier: FusedClassifier, example: pd.DataFrame) -> Any:
    from mlflow.models import infer_signature

    output = classifier.predict(example[["designation", "description"]], None)
    return infer_signature(example, output)


def log_and_register(
    classifier: FusedClassifier,
    settings: Settings,
    *,
    example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    json_artifacts: dict[str, Any],
    text_artifacts: dict[str, str] | None = None,
    figures: dict[str, Any] | None = None,
    description: str = "",
) -> RegisteredModel:
    """Log params/metrics/artifacts in the active run and register the pyfunc model.

    The version is created with its tags in one registry call, so a version never exists without
    the snapshot, commit and headline metrics it was trained with (every metric is on the run and on
    the logged model, which the version page shows). MLflow unreachable at any step is a
    :class:`~rakuten_ml.errors.RegistryError` saying to rerun the training; only the version's
    ``description``, written last, is a warning when it fails (the version is complete without it).
    """
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_and_register needs an active MLflow run")
    finite = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
    with registry_errors(settings.mlflow_tracking_uri, f"log training run {run.info.run_id}", then=RERUN_TRAINING):
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, (list, dict, tuple)) else v) for k, v in params.items()})
        mlflow.set_tags(tags)
        for name, payload in json_artifacts.items():
            mlflow.log_dict(payload, name)
        for name, text in (text_artifacts or {}).items():
            mlflow.log_text(text, name)
        for name, figure in (figures or {}).items():
            mlflow.log_figure(figure, name)
            import matplotlib.pyplot as plt

            plt.close(figure)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "classifier.joblib"
            joblib.dump(classifier, path, compress=3)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RakutenClassifierPyfunc(),
                artifacts={CLASSIFIER_ARTIFACT: str(path)},
                signature=_signature(classifier, example),
                input_example=example.head(2),
                pip_requirements=PIP_REQUIREMENTS,
                metadata={"modalities": classifier.modalities, "label_codes": list(classifier.mapping.codes)},
            )
        # on the run and on the logged model (the version page shows the logged model's metrics)
        mlflow.log_metrics(finite, model_id=info.model_id)
    headline = {metric_tag(k): f"{finite[k]:.6f}" for k in HEADLINE_METRICS if k in finite}
    version_tags = {**tags, **headline}
    with registry_errors(settings.mlflow_tracking_uri,
                         f"register the model of training run {run.info.run_id} as {settings.registered_model_name!r}",
                         then=RERUN_TRAINING + "; `rakuten-ml registry status` shows whether this attempt's version was created"), \
            prints_as_logs():  # MLflow prints its registration progress to stderr, which Airflow files as ERROR
        registered = mlflow.register_model(info.model_uri, settings.registered_model_name, tags=version_tags)
    version = str(registered.version)
    if description:
        _describe(settings, version, description)
    log.info("registered %s version %s (run %s)", settings.registered_model_name, version, run.info.run_id)
    return RegisteredModel(settings.registered_model_name, version, run.info.run_id, f"models:/{settings.registered_model_name}/{version}")


# The metrics copied onto the version as tags: what promotion, rollback and drift read (ACCURACY_TAG), and
# what a person compares at a glance in the registry's version list.
HEADLINE_METRICS = ("accuracy", "f1_weighted", "f1_macro")


@contextmanager
def prints_as_logs() -> Iterator[None]:
    """What MLflow prints to stderr inside the block (``eprint``: "Successfully registered model ...") becomes
    INFO records of this module's logger, so a task log shows it at its real level."""
    buffer = io.StringIO()
    try:
        with redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.info("mlflow: %s", line.strip())


def _describe(settings: Settings, version: str, description: str) -> None:
    from rakuten_ml.registry.client import mlflow_client

    try:
        with registry_errors(settings.mlflow_tracking_uri, f"describe {settings.registered_model_name!r} version {version}"):
            mlflow_client(settings).update_model_version(settings.registered_model_name, version, description=description)
    except RegistryError as exc:  # the version is registered with its tags: failing would make the caller train again
        log.warning("version %s has no description: %s", version, exc)


RERUN_TRAINING = "rerun the training (`rakuten-ml train`, or clear the DAG's train task); the interrupted attempt's MLflow run is left unfinished"
