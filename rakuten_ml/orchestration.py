"""Constants and small helpers shared by the DAG files (owner, retries, asset URIs, asset event payloads, the
job runner): stdlib at import, since the scheduler imports this module every time it parses a DAG file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}
START_DATE = datetime(2026, 1, 1)
DEFAULT_PARTITION_SIZE = 20_000  # products per mapped scoring task, the score_catalogue form's default
SNAPSHOT_ASSET_URI = "rakuten://dataset-snapshot"
MODEL_ASSET_URI = "rakuten://registered-model"
# The retrain form's modalities choice -> its label; rakuten_ml.training.modalities says what each trains.
MODALITY_CHOICES = {
    "champion": "Same as the champion (else the newest version; text+image for a first model)",
    "text+image": "Text and image",
    "text": "Text only",
}


def run_as_of(logical_date: datetime | None, run_after: datetime | None = None) -> datetime:
    """The time a run stands for: its logical date (a rerun or backfill of a day stays that day), else when it ran."""
    moment = logical_date or run_after or datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def snapshot_event_extra(summary: Mapping[str, Any], as_of: datetime) -> dict[str, Any]:
    """What an event on the snapshot asset carries: which snapshot, whether its content is new, and its day."""
    return {
        "snapshot_id": summary["snapshot_id"],
        "new": bool(summary.get("created")),
        "n_accepted": summary.get("n_accepted"),
        "n_quarantined": summary.get("n_quarantined"),
        "as_of": as_of.isoformat(),
    }


def latest_event_extra(events: Iterable[Any]) -> dict[str, Any]:
    """The extra of the newest of a run's triggering asset events (duck-typed: ``.extra`` and ``.timestamp``)."""
    newest = max(events, key=lambda event: str(getattr(event, "timestamp", "")), default=None)
    return dict(getattr(newest, "extra", None) or {})


# The two lanes of retrain_classifier's training: image models on the GPU queue, text only on default.
TRAINING_TASK = "train"
GPU_TRAINING_TASK = "train_on_gpu"


def gpu_queue() -> str:
    """The Airflow queue of GPU work (scoring partitions, image training: ``RAKUTEN_AIRFLOW_GPU_QUEUE``), read when a
    DAG file is parsed."""
    from rakuten_ml.settings import AirflowSettings

    return AirflowSettings().gpu_queue


def job_context(context: Mapping[str, Any]) -> Any:
    """A :class:`rakuten_ml.jobs.context.JobContext` from an Airflow task's context."""
    from rakuten_ml.jobs.context import JobContext

    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None) if dag_run is not None else None
    logical_date = context.get("logical_date")
    triggering = {_uri(asset): list(events) for asset, events in (context.get("triggering_asset_events") or {}).items()}
    inlet_events = context.get("inlet_events")

    def recent(uri: str, limit: int) -> list[Any]:
        from airflow.sdk import Asset

        return list(inlet_events[Asset(uri)].ascending(False).limit(limit)) if inlet_events is not None else []

    return JobContext(
        run_id=str(context.get("run_id") or "manual"),
        dag_id=getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
        run_type=str(getattr(run_type, "value", run_type) or "manual"),
        params=dict(context.get("params") or {}),
        logical_date=logical_date,
        as_of=run_as_of(logical_date, getattr(dag_run, "run_after", None)),
        triggering=triggering,
        recent_events=recent,
    )


def _uri(asset: Any) -> str:
    """An asset's URI as the DAGs write it: Airflow normalises ``rakuten://x`` to ``rakuten://x/``."""
    return str(getattr(asset, "uri", asset)).rstrip("/")


def resolve_job(name: str) -> Any:
    """``"scoring.plan"`` -> :func:`rakuten_ml.jobs.scoring.plan`: DAG files name jobs, so parsing imports none."""
    import importlib

    module, _, function = name.rpartition(".")
    return getattr(importlib.import_module(f"rakuten_ml.jobs.{module}"), function)


def keep_library_log_levels() -> None:
    """Let MLflow's log records reach the task log with their level.

    MLflow installs its own handler on stderr when it is imported, and Airflow files what a task writes
    to stderr as ERROR: its INFO lines would read as errors. Without that handler (and with
    ``MLFLOW_CONFIGURE_LOGGING=false`` for an import still to come) its records propagate to the root
    logger, which Airflow's task log handler serves with their own level. Its artifact progress bars
    (stderr too, so ERROR lines as well) are turned off.
    """
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow_logger = logging.getLogger("mlflow")
    for handler in list(mlflow_logger.handlers):
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (sys.stderr, sys.__stderr__):
            mlflow_logger.removeHandler(handler)
    mlflow_logger.propagate = True


def run_job(name: str, /, **kwargs: Any) -> Any:
    """Run the job ``name`` (a function of :mod:`rakuten_ml.jobs`) as the current Airflow task.

    The task's context goes in as a ``JobContext``. ``JobSkipped`` ends the task skipped, ``JobFailed``
    fails it without retries, and the events of a ``WithEvents`` are set on the task's outlets.
    """
    from airflow.sdk import Asset, get_current_context
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from rakuten_ml.jobs.context import JobFailed, JobSkipped, WithEvents

    keep_library_log_levels()
    job = resolve_job(name)
    context = get_current_context()
    try:
        outcome = job(job_context(context), **kwargs)
    except JobSkipped as exc:
        raise AirflowSkipException(str(exc)) from exc
    except JobFailed as exc:
        raise AirflowFailException(str(exc)) from exc
    if isinstance(outcome, WithEvents):
        for uri, extra in outcome.events.items():
            context["outlet_events"][Asset(uri)].extra = dict(extra)
        return outcome.value
    return outcome
