"""The ``promotion_events`` audit trail: who moved which alias, when, and why.

MLflow only keeps the current aliases; this table keeps the history (``rakuten-ml registry
history``). Writes take a connection so an alias move can log on the connection that holds
the promotion lock (SQLite would deadlock on a second writer).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rakuten_ml.jsonsafe import json_safe
from rakuten_ml.storage.database import database_errors, fetch_all, promotion_events

# gate_skip: the gate did not judge a candidate, an identical retrain of the champion or challenger
Action = Literal["register", "gate_pass", "gate_fail", "gate_skip", "challenger_set", "promote", "reject", "rollback"]
ACTIONS: tuple[str, ...] = ("register", "gate_pass", "gate_fail", "gate_skip", "challenger_set", "promote", "reject", "rollback")


@dataclass(frozen=True)
class Actor:
    """Who triggered a move: a person (CLI) or a DAG run, recorded on every event."""

    user: str
    dag_run_id: str | None = None

    @classmethod
    def current(cls, user: str | None = None, dag_run_id: str | None = None) -> Actor:
        """``user`` if given, else ``$USER`` / the login name, else 'unknown'."""
        if user:
            return cls(user, dag_run_id)
        try:
            name = os.environ.get("USER") or getpass.getuser()
        except (OSError, KeyError):
            name = "unknown"
        return cls(name or "unknown", dag_run_id)

    @classmethod
    def dag(cls, dag_id: str, run_id: str | None) -> Actor:
        return cls(f"airflow:{dag_id}", run_id)


@dataclass(frozen=True)
class PromotionEvent:
    model_name: str
    action: Action
    actor: Actor
    reason: str
    from_version: str | None = None
    to_version: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "model_name": self.model_name,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor.user,
            "dag_run_id": self.actor.dag_run_id,
            "metrics": json_safe(self.metrics),
            "reason": self.reason,
        }


def record_event(conn: Connection, event: PromotionEvent) -> int:
    """Insert one event on ``conn`` (the caller's transaction); returns its id."""
    result = conn.execute(sa.insert(promotion_events).values(**event.row()).returning(promotion_events.c.event_id))
    return int(result.scalar_one())


def record(engine: Engine, event: PromotionEvent) -> int:
    """Insert one event in its own transaction (verdicts recorded outside an alias move)."""
    with database_errors(engine, f"recording the {event.action} event of {event.model_name!r}", then="rerun the command"), engine.begin() as conn:
        return record_event(conn, event)


def history(engine: Engine, model_name: str, *, limit: int = 50, action: str | None = None) -> list[dict[str, Any]]:
    """Newest events first."""
    stmt = sa.select(promotion_events).where(promotion_events.c.model_name == model_name)
    if action:
        stmt = stmt.where(promotion_events.c.action == action)
    stmt = stmt.order_by(promotion_events.c.event_id.desc()).limit(limit)
    with database_errors(engine, f"reading the promotion history of {model_name!r}", then="retry"):
        return fetch_all(engine, stmt)


def last_event(engine: Engine, model_name: str, action: str, to_version: str) -> dict[str, Any] | None:
    """Most recent ``action`` event that moved ``to_version`` (e.g. when a challenger was set)."""
    stmt = (
        sa.select(promotion_events)
        .where(
            promotion_events.c.model_name == model_name,
            promotion_events.c.action == action,
            promotion_events.c.to_version == to_version,
        )
        .order_by(promotion_events.c.event_id.desc())
        .limit(1)
    )
    with database_errors(engine, f"reading the last {action} event of {model_name!r} v{to_version}", then="rerun the command"):
        rows = fetch_all(engine, stmt)
    return rows[0] if rows else None
