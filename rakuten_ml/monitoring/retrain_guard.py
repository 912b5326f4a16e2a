"""Debounce of drift-triggered retraining: one training per cool-down, each recorded with its cause.

A data-drift alert keeps firing every day until a retrained model is promoted, and the monthly
schedule may coincide with an alert: without a guard each of them would start a training. Every
retraining run asks :func:`request_retrain` first; the answer and the alerts that caused the run
are stored in ``retrain_requests``, so the next request sees the cool-down and an operator sees
why each model version exists. ``force`` (a UI trigger) overrides the cool-down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rakuten_ml.errors import DatabaseError
from rakuten_ml.storage.database import database_errors, retrain_requests, upsert

log = logging.getLogger(__name__)

TRIGGER_ASSET = "asset"
TRIGGER_SCHEDULE = "schedule"
TRIGGER_MANUAL = "manual"

STATUS_STARTED = "started"
STATUS_SKIPPED_COOLDOWN = "skipped_cooldown"
STATUS_SUCCEEDED = "succeeded"
STATUS_FAILED = "failed"
# A failed training does not hold the cool-down: the next alert may try again at once.
ACTIVE_STATUSES = (STATUS_STARTED, STATUS_SUCCEEDED)
# What to do once the database is back: a request is keyed by its DAG run id, so asking again never counts twice.
RERUN_REQUEST = "rerun the retraining run (clear its task): its request is recorded under its DAG run id, so a rerun is never counted twice"
# Any fixed 64-bit key: serialises concurrent requests on PostgreSQL (max_active_runs=1 covers one DAG,
# this covers a CLI or a second deployment racing it).
_ADVISORY_LOCK_KEY = 0x52414B5554454E  # "RAKUTEN"


@dataclass(frozen=True)
class RetrainDecision:
    proceed: bool
    status: str
    reason: str
    blocking_run_id: str | None = None
    alerts: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def summary(self) -> dict[str, Any]:
        return asdict(self) | {"alerts": list(self.alerts)}


def decide(
    now: datetime, last_active_run: str | None, last_active_at: datetime | None, cooldown: timedelta, force: bool
) -> RetrainDecision:
    """Proceed unless a training started (and did not fail) less than ``cooldown`` ago; ``force`` wins."""
    if force:
        return RetrainDecision(True, STATUS_STARTED, "forced: cool-down ignored")
    if last_active_at is not None and now - last_active_at < cooldown:
        remaining = cooldown - (now - last_active_at)
        return RetrainDecision(
            False,
            STATUS_SKIPPED_COOLDOWN,
            f"run {last_active_run} started at {last_active_at.isoformat()}; cool-down ends in {remaining}",
            blocking_run_id=last_active_run,
        )
    return RetrainDecision(True, STATUS_STARTED, "no retraining within the cool-down")


def alert_from_event(extra: Mapping[str, Any], *, timestamp: str | None = None, source_run_id: str | None = None) -> dict[str, Any]:
    """The alert an asset event carries; its id falls back to the emitting run when the extra lacks one."""
    alert = dict(extra)
    alert.setdefault("alert_id", f"{source_run_id or 'unknown'}@{timestamp or ''}")
    if timestamp is not None:
        alert.setdefault("emitted_at", timestamp)
    return alert


def alerts_from_events(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Alerts of Airflow asset events (``triggering_asset_events`` / ``inlet_events`` items, duck-typed)."""
    alerts = []
    for event in events:
        timestamp = getattr(event, "timestamp", None)
        alerts.append(
            alert_from_event(
                getattr(event, "extra", None) or {},
                timestamp=timestamp.isoformat() if timestamp is not None and hasattr(timestamp, "isoformat") else timestamp,
                source_run_id=getattr(event, "source_run_id", None),
            )
        )
    return alerts


def alerts_as_of(alerts: Sequence[Mapping[str, Any]]) -> datetime | None:
    """The newest time the alerts stand for (their checks' window ends); None when they carry none."""
    moments = [datetime.fromisoformat(a["as_of"]) for a in alerts if a.get("as_of")]
    return max(moments, default=None)


def trigger_of(run_type: str, triggering: Sequence[Mapping[str, Any]]) -> str:
    """asset (a drift alert), schedule (the monthly run) or manual (UI, CLI, dag.test)."""
    if triggering or run_type == "asset_triggered":
        return TRIGGER_ASSET
    return TRIGGER_SCHEDULE if run_type == "scheduled" else TRIGGER_MANUAL


def default_reason(trigger: str, alerts: Sequence[Mapping[str, Any]]) -> str:
    """What the model version's ``trigger_reason`` tag will say when the operator gave no reason."""
    metrics = sorted({str(a.get("metric")) for alert in alerts for a in alert.get("alerts", [])})
    if alerts:
        return f"drift alert ({', '.join(metrics) or 'unspecified'})" + ("" if trigger == TRIGGER_ASSET else f", {trigger} run")
    return {TRIGGER_SCHEDULE: "monthly schedule", TRIGGER_MANUAL: "manual"}.get(trigger, trigger)


def begin_retrain(
    engine: Engine,
    *,
    dag_run_id: str,
    run_type: str,
    triggering: Sequence[Mapping[str, Any]],
    recent: Sequence[Mapping[str, Any]],
    reason: str | None,
    force: bool,
    cooldown_hours: float,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The retraining DAG's first step: find the causing alerts, apply the cool-down, record the request.

    An asset-triggered run is caused by its triggering events; any other run (monthly, manual) claims
    the recent alerts no run has answered yet, so an alert is never lost nor answered twice. ``as_of``
    is the time the request stands for (the run's logical date, or the newest triggering alert's), so
    the cool-down between a backfilled or replayed day and the next is the days between them; default now.
    """
    trigger = trigger_of(run_type, triggering)
    with database_errors(engine, f"reading the alerts answered before retraining request {dag_run_id!r}", then=RERUN_REQUEST):
        alerts = list(triggering) if triggering else pending_alerts(recent, handled_alert_ids(engine, exclude_run_id=dag_run_id))
    reason = reason or default_reason(trigger, alerts)
    decision = request_retrain(
        engine, dag_run_id=dag_run_id, trigger=trigger, alerts=alerts, reason=reason, force=force, cooldown_hours=cooldown_hours,
        now=as_of or alerts_as_of(triggering),
    )
    # "reason" is why the training was asked for (kept on the model); "decision" why it may or may not run
    return decision.summary() | {"decision": decision.reason, "dag_run_id": dag_run_id, "trigger": trigger, "reason": reason}


def unique_alerts(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Alerts deduplicated by id, oldest first as given."""
    seen: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        seen.setdefault(str(alert["alert_id"]), dict(alert))
    return list(seen.values())


def _last_active(conn: Connection, since: datetime, exclude_run_id: str) -> tuple[str | None, datetime | None]:
    stmt = (
        sa.select(retrain_requests.c.dag_run_id, retrain_requests.c.requested_at)
        .where(retrain_requests.c.status.in_(ACTIVE_STATUSES))
        .where(retrain_requests.c.requested_at >= sa.bindparam("since"))
        .where(retrain_requests.c.dag_run_id != sa.bindparam("own"))
        .order_by(retrain_requests.c.requested_at.desc())
        .limit(1)
    )
    row = conn.execute(stmt, {"since": since, "own": exclude_run_id}).first()
    if row is None:
        return None, None
    at = row.requested_at if row.requested_at.tzinfo else row.requested_at.replace(tzinfo=UTC)  # SQLite drops tz
    return row.dag_run_id, at


def handled_alert_ids(engine: Engine, *, exclude_run_id: str | None = None) -> set[str]:
    """Ids of alerts some retraining run (started or skipped) already answered."""
    stmt = sa.select(retrain_requests.c.alert_ids)
    if exclude_run_id:
        stmt = stmt.where(retrain_requests.c.dag_run_id != sa.bindparam("own"))
    with engine.connect() as conn:
        rows = conn.execute(stmt, {"own": exclude_run_id} if exclude_run_id else {}).scalars().all()
    return {str(i) for ids in rows for i in (ids or [])}


def pending_alerts(candidates: Sequence[Mapping[str, Any]], handled: set[str]) -> list[dict[str, Any]]:
    """Alerts no retraining run has answered yet (a manual or monthly run picks them up)."""
    return [dict(a) for a in unique_alerts(candidates) if str(a["alert_id"]) not in handled]


def request_retrain(
    engine: Engine,
    *,
    dag_run_id: str,
    trigger: str,
    alerts: Sequence[Mapping[str, Any]],
    reason: str,
    force: bool,
    cooldown_hours: float,
    now: datetime | None = None,
) -> RetrainDecision:
    """Decide whether this run may train, and record the request (started or skipped) with its alerts."""
    now = now or datetime.now(UTC)
    cooldown = timedelta(hours=cooldown_hours)
    alerts = unique_alerts(alerts)
    with database_errors(engine, f"recording retraining request {dag_run_id!r}", then=RERUN_REQUEST), _serialised(engine) as conn:
        last_run, last_at = _last_active(conn, now - cooldown, dag_run_id)
        conn.commit()  # end the read before another connection writes (SQLite would otherwise lock)
        verdict = decide(now, last_run, last_at, cooldown, force)
        decision = RetrainDecision(verdict.proceed, verdict.status, verdict.reason, verdict.blocking_run_id, tuple(alerts))
        upsert(engine, retrain_requests, [_request_row(dag_run_id, now, trigger, alerts, reason, force, decision)])
    log.info("retrain request %s (%s, %d alert(s)): %s — %s", dag_run_id, trigger, len(alerts), decision.status, decision.reason)
    return decision


@contextmanager
def _serialised(engine: Engine) -> Iterator[Connection]:
    """A connection holding a PostgreSQL advisory lock, so two requests never both see 'no recent run'."""
    with engine.connect() as conn:
        if engine.dialect.name != "postgresql":
            yield conn
            return
        conn.execute(sa.select(sa.func.pg_advisory_lock(sa.bindparam("key"))), {"key": _ADVISORY_LOCK_KEY})
        conn.commit()
        try:
            yield conn
        finally:
            if not conn.invalidated:  # a lost connection took its session's lock with it: nothing to release
                conn.execute(sa.select(sa.func.pg_advisory_unlock(sa.bindparam("key"))), {"key": _ADVISORY_LOCK_KEY})
                conn.commit()


def _request_row(
    dag_run_id: str, now: datetime, trigger: str, alerts: list[dict[str, Any]], reason: str, force: bool,
    decision: RetrainDecision,
) -> dict[str, Any]:
    return {
        "dag_run_id": dag_run_id,
        "requested_at": now,
        "trigger": trigger,
        "alert_ids": [str(a["alert_id"]) for a in alerts],
        "alerts": alerts,
        "reason": reason,
        "force": force,
        "status": decision.status,
        "snapshot_id": None,
        "model_version": None,
        "finished_at": None if decision.proceed else now,
        "details": {"decision": decision.reason, "blocking_run_id": decision.blocking_run_id},
    }


def finish_request(
    engine: Engine,
    dag_run_id: str,
    *,
    status: str,
    snapshot_id: str | None = None,
    model_version: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Close a started request with its outcome (succeeded with the registered version, or failed)."""
    values: dict[str, Any] = {"status": status, "finished_at": datetime.now(UTC)}
    if snapshot_id is not None:
        values["snapshot_id"] = snapshot_id
    if model_version is not None:
        values["model_version"] = model_version
    with database_errors(engine, f"closing retraining request {dag_run_id!r} as {status}", then="rerun the failed task"), engine.begin() as conn:
        current = conn.execute(
            sa.select(retrain_requests.c.details).where(retrain_requests.c.dag_run_id == sa.bindparam("rid")),
            {"rid": dag_run_id},
        ).scalar_one_or_none()
        if details:
            values["details"] = dict(current or {}) | dict(details)
        conn.execute(
            sa.update(retrain_requests).where(retrain_requests.c.dag_run_id == sa.bindparam("rid")).values(**values),
            {"rid": dag_run_id},
        )


def record_failure(engine: Engine, dag_run_id: str, error: BaseException, *, snapshot_id: str | None = None) -> None:
    """Mark a request failed on the way out of a failed training; never hides that failure.

    When the database is what failed, the request stays ``started``: the task's retry reuses it, and
    a request left so is what the cool-down shows as blocking until someone looks.
    """
    try:
        finish_request(engine, dag_run_id, status=STATUS_FAILED, snapshot_id=snapshot_id,
                       details={"error": f"{type(error).__name__}: {error}"})
    except DatabaseError as exc:
        log.warning("retraining request %s could not be marked failed (%s); the training error follows", dag_run_id, exc)


def list_requests(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    stmt = sa.select(retrain_requests).order_by(retrain_requests.c.requested_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
