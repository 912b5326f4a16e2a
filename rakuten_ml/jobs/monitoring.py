"""Jobs of ``monitor_drift``: the day's drift checks, and the alert event when a rule fires."""

from __future__ import annotations

from datetime import date
from typing import Any

from rakuten_ml.jobs.context import JobContext, JobSkipped, WithEvents
from rakuten_ml.monitoring import DRIFT_ALERT_ASSET_URI
from rakuten_ml.resources import Platform


def run_drift_check(**kwargs: Any) -> dict[str, Any]:
    """What ``rakuten-ml drift check`` and the monitor_drift DAG run: checks, stored rows, textfile."""
    from rakuten_ml.monitoring.checks import run_drift_checks
    from rakuten_ml.monitoring.metrics import textfile_path, write_textfile

    platform = Platform.ready()
    result = run_drift_checks(platform, **kwargs)
    write_textfile(platform.engine, textfile_path(platform.settings))
    return result.summary()


def check(ctx: JobContext) -> dict[str, Any]:
    """The checks for the param's day (window ends at its midnight), else for the day the run stands for."""
    check_date = date.fromisoformat(ctx.param("check_date")) if ctx.param("check_date") else None
    return run_drift_check(
        check_date=check_date,
        as_of=None if check_date else (ctx.logical_date or ctx.as_of),
        window_days=ctx.param("window_days"),
        model_version=ctx.param("model_version"),
    )


def emit_alert(ctx: JobContext, summary: dict[str, Any]) -> WithEvents:
    """The alert event on ``rakuten://drift-alert`` (it schedules retraining); skipped when no rule fired."""
    if not summary.get("alerts"):
        raise JobSkipped("no drift rule fired: no alert")
    return WithEvents(summary["alert"], {DRIFT_ALERT_ASSET_URI: summary["alert"]})
