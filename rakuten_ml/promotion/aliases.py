"""The one module that moves the registry aliases ``champion``, ``challenger`` and ``previous-champion``.

Atomicity, since MLflow has no transactions:

1. **Serialise.** Every move first updates this model's row of ``promotion_lock`` and keeps
   that row lock until it commits (PostgreSQL row lock, SQLite's write lock), so concurrent
   moves from DAGs and the CLI run one after the other, across threads, processes and hosts.
2. **Verify under the lock.** The aliases are re-read after the lock is taken and checked
   against what the caller expected (``expected_champion``, the challenger being promoted...).
   The loser of a race finds the state changed: it gets a no-op when the state is already the
   one it wanted, else :class:`PromotionConflictError`.
3. **Order the steps** so a reader never sees no champion: ``previous-champion`` is written
   before ``champion`` is re-pointed (one alias update, atomic in MLflow), and the challenger
   alias is removed last. ``champion`` is never deleted.
4. **Repair.** If a step fails, the steps already applied are undone in reverse order and the
   error says whether the restore worked; the audit row is written on the lock's connection
   only once the aliases really moved, and the version tags follow.
5. **Write ahead.** Before its first step a move writes what it will do (its id, the steps, the
   aliases before and after) to the registered model's ``promotion.last_move`` tag, and its audit
   row carries the same ``move_id``: the row, committed last, is what makes the move complete. A
   move cut short by an outage that the restore could not undo (MLflow down mid-move), or whose
   audit row could not be written (the database down), is found by the next move under the lock,
   which puts the aliases back as they were before it (or, when the row did get committed after
   all, as it left them), so rerunning the command after the outage leaves no half-moved alias
   and exactly one audit row per completed move.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rakuten_ml.errors import DatabaseError, PromotionConflictError, RegistryError
from rakuten_ml.promotion.audit import Action, Actor, PromotionEvent, record_event
from rakuten_ml.registry.contract import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, PROMOTION_TAG_PREFIX
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from rakuten_ml.storage.database import CONNECTION_ERRORS, database_errors, driver_message, promotion_events, upsert
from rakuten_ml.storage.database import promotion_lock as lock_table

log = logging.getLogger(__name__)

TAG_PREFIX = PROMOTION_TAG_PREFIX  # version tags of the alias moves; LAST_MOVE_TAG is the write-ahead record (point 5)
MOVING, RESTORED, ROLLED_BACK, COMPLETED = "moving", "restored", "rolled_back", "completed"

class _Any:
    """Sentinel: the caller does not constrain this alias."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


@dataclass(frozen=True)
class AliasMove:
    """Outcome of one locked move; ``changed`` is False for a no-op (already in the wanted state)."""

    action: str
    model_name: str
    changed: bool
    reason: str
    before: RegistryState
    after: RegistryState
    from_version: str | None = None
    to_version: str | None = None
    event_id: int | None = None

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out["before"], out["after"] = self.before.as_dict(), self.after.as_dict()
        return out


@dataclass(frozen=True)
class _Plan:
    """What a move will do, decided from the state read under the lock."""

    steps: Sequence[tuple[str, str | None]]
    from_version: str | None
    to_version: str | None
    version_tags: Mapping[str, str] = field(default_factory=dict)  # version -> what happened to it
    noop: str | None = None  # set: nothing to do, and why


def _is_lock_timeout(exc: sa.exc.DBAPIError) -> bool:
    """PostgreSQL's lock_timeout (SQLSTATE 55P03) or SQLite's busy lock, as opposed to a lost server."""
    return getattr(exc.orig, "pgcode", None) == "55P03" or "database is locked" in str(exc.orig)


@contextmanager
def promotion_lock(engine: Engine, model_name: str, holder: str, timeout_s: float) -> Iterator[Connection]:
    """Hold ``model_name``'s row of ``promotion_lock`` for the block; yields the locked connection.

    The transaction is committed even when the block fails: the audit rows it wrote describe
    MLflow changes that no rollback of ours could undo. A lost database is a :class:`DatabaseError`;
    only a lock wait that timed out is a :class:`PromotionConflictError`.
    """
    then = "retry the move: nothing was moved"
    with database_errors(engine, f"taking the promotion lock of {model_name!r}", then=then):
        with engine.connect() as conn:
            exists = conn.execute(sa.select(lock_table.c.model_name).where(lock_table.c.model_name == model_name)).first()
        if exists is None:  # first move of this model; an upsert on an existing, locked row would block without timeout
            upsert(engine, lock_table, [{"model_name": model_name, "holder": None, "acquired_at": None}], update=False)
        conn = engine.connect()
    with conn:
        trans = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.set_config("lock_timeout", f"{int(timeout_s * 1000)}ms", True)))
            conn.execute(
                sa.update(lock_table)
                .where(lock_table.c.model_name == model_name)
                .values(holder=holder, acquired_at=datetime.now(UTC))
            )
        except CONNECTION_ERRORS as exc:
            with suppress(*CONNECTION_ERRORS, sa.exc.PendingRollbackError):
                trans.rollback()
            if isinstance(exc, sa.exc.OperationalError) and _is_lock_timeout(exc):
                raise PromotionConflictError(
                    f"another alias move of {model_name!r} held the promotion lock for more than {timeout_s:.0f} s ({exc.orig}); "
                    "retry later or look for a stuck job (`rakuten-ml registry history`)"
                ) from exc
            raise DatabaseError(
                f"taking the promotion lock of {model_name!r} failed: the database {engine.url.render_as_string(hide_password=True)} "
                f"went away ({driver_message(exc)}); check that the server is running, then {then}"
            ) from exc
        failed = False
        try:
            yield conn
        except BaseException:
            failed = True
            raise
        finally:
            if trans.is_active:
                _end_lock(conn, trans, model_name, failed)


def _end_lock(conn: Connection, trans: sa.RootTransaction, model_name: str, failed: bool) -> None:
    """Commit the lock's transaction; when the server went away under it, roll back what is left of it and
    raise a :class:`DatabaseError`, unless the block failed already (its own error, typed, wins)."""
    try:
        if not conn.invalidated:
            trans.commit()
            return
        trans.rollback()
        cause = "the connection was lost during the move"
    except (*CONNECTION_ERRORS, sa.exc.PendingRollbackError) as exc:
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if failed:
        log.warning("%s: the promotion lock's transaction was lost with the database: %s", model_name, cause)
        return
    raise DatabaseError(
        f"committing the promotion lock of {model_name!r} failed: the database went away ({cause}); check that the "
        "server is running, then run `rakuten-ml registry status` and retry if still wanted"
    )


def _expect(state: RegistryState, alias: str, expected: str | None) -> None:
    if expected is ANY or state.get(alias) == (None if expected is None else str(expected)):
        return
    raise PromotionConflictError(
        f"{state.model_name}: alias {alias!r} is {state.get(alias)!r}, expected {expected!r} - another move happened first; "
        "check `rakuten-ml registry status` and retry if still wanted"
    )


def _moved(state: RegistryState, steps: Sequence[tuple[str, str | None]]) -> RegistryState:
    aliases = state.as_dict() | dict(steps)
    return RegistryState(state.model_name, aliases[CHAMPION], aliases[CHALLENGER], aliases[PREVIOUS_CHAMPION])


def _apply(registry: ModelRegistry, before: RegistryState, steps: Sequence[tuple[str, str | None]], action: str) -> None:
    """Run the steps in order; on failure undo the applied ones in reverse, then raise."""
    applied: list[str] = []
    try:
        for alias, version in steps:
            registry.move(alias, version)
            applied.append(alias)
    except RegistryError as exc:
        failed = steps[len(applied)][0]
        try:
            for alias in reversed(applied):
                registry.move(alias, before.get(alias))
        except RegistryError as undo_exc:
            log.error("%s: %s failed at %r and the restore failed too: %s", registry.name, action, failed, undo_exc)
            raise RegistryError(
                f"{action} of {registry.name!r} failed at alias {failed!r} ({exc}) and restoring {before.as_dict()} failed "
                f"({undo_exc}); the aliases are half-moved until the next alias move: once MLflow is back, rerun this command "
                "(or any promotion, rollback or gate): it first puts the aliases back from the move's write-ahead record, "
                "then `rakuten-ml registry status` shows them"
            ) from exc
        raise RegistryError(
            f"{action} of {registry.name!r} failed at alias {failed!r}: {exc}; aliases restored to {before.as_dict()}, retry later"
        ) from exc


def _move_audited(conn: Connection, model_name: str, action: str, move_id: str) -> bool:
    """Whether the audit row of move ``move_id`` was committed (the move is complete)."""
    rows = conn.execute(
        sa.select(promotion_events.c.metrics)
        .where(promotion_events.c.model_name == model_name, promotion_events.c.action == action)
        .order_by(promotion_events.c.event_id.desc())
        .limit(200)
    ).scalars()
    return any(isinstance(metrics, dict) and metrics.get("move_id") == move_id for metrics in rows)


def _put_back(registry: ModelRegistry, current: RegistryState, target: Mapping[str, str | None], aliases: Sequence[str]) -> None:
    """Point each of ``aliases`` (in that order) at ``target``'s version where it differs now."""
    for alias in aliases:
        if current.get(alias) != target.get(alias):
            registry.move(alias, target.get(alias))


def _recover(conn: Connection, registry: ModelRegistry, state: RegistryState, record: Mapping[str, Any] | None) -> RegistryState:
    """Settle a move an outage cut short (read under the lock, so no move is in flight); the aliases now.

    Not audited: the move never completed, its aliases go back to where they were before it. Audited
    although its process restored the aliases (the commit got through after all): they go forward to
    where the audited move left them. Anything else (no record, a completed or settled move): nothing.
    """
    if not record or record.get("state") not in (MOVING, RESTORED) or "move_id" not in record:
        return state
    aliases = [alias for alias, _ in record.get("steps", [])]
    if _move_audited(conn, registry.name, str(record.get("action")), str(record["move_id"])):
        if record.get("state") != RESTORED:
            return state
        _put_back(registry, state, record["after"], aliases)
        settled = COMPLETED
    else:
        _put_back(registry, state, record["before"], list(reversed(aliases)))
        settled = ROLLED_BACK
    registry.write_last_move(dict(record) | {"state": settled})
    log.warning("%s: alias move %s (%s) was cut short by an outage: %s (aliases were %s)", registry.name, record["move_id"],
                record.get("action"), settled, state.as_dict())
    return registry.state()


def _settle_quietly(registry: ModelRegistry, record: Mapping[str, Any], settled: str) -> None:
    """Best effort: a record left 'moving' is settled by the next move just the same."""
    try:
        registry.write_last_move(dict(record) | {"state": settled})
    except RegistryError as exc:
        log.warning("%s: move %s is %s but its record could not be updated: %s", registry.name, record["move_id"], settled, exc)


def _undo_unaudited(registry: ModelRegistry, record: Mapping[str, Any], before: RegistryState, steps: Sequence[tuple[str, str | None]]) -> str:
    """The aliases moved but their audit row was not written: put them back (if no one settled the move meanwhile)."""
    try:
        current, latest = registry.state_and_last_move()
        if not latest or latest.get("move_id") != record["move_id"] or latest.get("state") != MOVING:
            return "the move was settled by another alias move meanwhile"
        _put_back(registry, current, before.as_dict(), [alias for alias, _ in reversed(steps)])
    except RegistryError as exc:
        return f"restoring them failed too ({exc}); the next alias move puts them back from the move's write-ahead record"
    _settle_quietly(registry, record, RESTORED)
    return f"the aliases were restored to {before.as_dict()}"


def _run_move(
    platform: Platform,
    action: Action,
    plan_for: Callable[[RegistryState, ModelRegistry], _Plan],
    *,
    actor: Actor,
    reason: str,
    metrics: Mapping[str, Any] | None = None,
    registry: ModelRegistry | None = None,
) -> AliasMove:
    """Lock, settle an interrupted move, re-read, plan, record, move, audit, tag: the path every alias change takes."""
    settings = platform.settings
    registry = registry or ModelRegistry(settings)
    holder = f"{actor.user}:{actor.dag_run_id or '-'}:{action}"[:250]
    with promotion_lock(platform.engine, registry.name, holder, settings.promotion_lock_timeout_s) as conn:
        state, last_move = registry.state_and_last_move()
        with database_errors(platform.engine, f"{action} of {registry.name!r}", then="retry the move: nothing was moved"):
            before = _recover(conn, registry, state, last_move)
        plan = plan_for(before, registry)
        if plan.noop:
            log.info("%s %s: nothing to do: %s", registry.name, action, plan.noop)
            return AliasMove(action, registry.name, False, plan.noop, before, before, plan.from_version, plan.to_version)
        after = _moved(before, plan.steps)
        record = {
            "move_id": uuid.uuid4().hex, "action": action, "state": MOVING, "steps": [list(step) for step in plan.steps],
            "before": before.as_dict(), "after": after.as_dict(), "at": datetime.now(UTC).isoformat(), "actor": actor.user,
        }
        registry.write_last_move(record)  # before the first step: an outage from here on is found and settled by the next move
        try:
            _apply(registry, before, plan.steps, action)
        except RegistryError:
            with suppress(RegistryError):  # MLflow still down: the record stays 'moving' for the next move to settle
                if registry.state() == before:  # restored: nothing is left to settle
                    _settle_quietly(registry, record, ROLLED_BACK)
            raise
        try:
            event_id = record_event(
                conn,
                PromotionEvent(registry.name, action, actor, reason, plan.from_version, plan.to_version,
                               dict(metrics or {}) | {"move_id": record["move_id"]}),
            )
            conn.commit()  # the audit row is durable: the move is complete
        except (DatabaseError, *CONNECTION_ERRORS) as exc:
            cause = " ".join(str(getattr(exc, "orig", None) or exc).split())
            outcome = _undo_unaudited(registry, record, before, plan.steps)
            raise DatabaseError(
                f"{action} of {registry.name!r} moved the aliases but its audit row could not be written: the database "
                f"{platform.engine.url.render_as_string(hide_password=True)} went away ({cause}); {outcome}; check that the "
                "database is running, then rerun this command: it settles this move first, and an audited move is never repeated"
            ) from exc
    for version, what in plan.version_tags.items():
        # one HTTP call per tag, so only these two; who/when/metrics are in the audit row
        tags = {"last_action": what, "reason": f"{reason[:4800]} (audit event {event_id})"}
        try:
            registry.set_tags(version, {TAG_PREFIX + k: v for k, v in tags.items()})
        except RegistryError as exc:  # the move is done and audited; the tags are a convenience copy
            log.warning("%s v%s moved (event %s) but its promotion tags were not written: %s", registry.name, version, event_id, exc)
    log.info("%s %s: %s -> %s (%s) by %s", registry.name, action, before.as_dict(), after.as_dict(), reason, actor.user)
    return AliasMove(action, registry.name, True, reason, before, after, plan.from_version, plan.to_version, event_id)


def promote(
    platform: Platform,
    version: str,
    *,
    actor: Actor,
    reason: str,
    expected_champion: str | None = ANY,
    require_challenger: bool = False,
    metrics: Mapping[str, Any] | None = None,
    registry: ModelRegistry | None = None,
) -> AliasMove:
    """``version`` becomes champion; the old champion becomes previous-champion; its challenger alias goes.

    ``expected_champion`` (None = no champion yet) and ``require_challenger`` (``version`` must
    still be the challenger) make a decision taken before the lock fail instead of acting on a
    changed registry.
    """
    version = str(version)

    def plan(state: RegistryState, registry_: ModelRegistry) -> _Plan:
        if state.champion == version:
            return _Plan((), state.champion, version, noop=f"version {version} is already champion")
        _expect(state, CHAMPION, expected_champion)
        if require_challenger:
            _expect(state, CHALLENGER, version)
        registry_.version(version)  # a clear error for a version that does not exist, before any move
        steps: list[tuple[str, str | None]] = []
        if state.champion is not None:
            steps.append((PREVIOUS_CHAMPION, state.champion))
        steps.append((CHAMPION, version))
        if state.challenger == version:
            steps.append((CHALLENGER, None))
        tags = {version: "promote"} | ({state.champion: "demoted"} if state.champion else {})
        return _Plan(steps, state.champion, version, tags)

    return _run_move(platform, "promote", plan, actor=actor, reason=reason, metrics=metrics, registry=registry)


def set_challenger(
    platform: Platform,
    version: str,
    *,
    actor: Actor,
    reason: str,
    expected_champion: str | None = ANY,
    metrics: Mapping[str, Any] | None = None,
    registry: ModelRegistry | None = None,
) -> AliasMove:
    """``version`` enters the A/B test; a previous challenger is replaced (its test is abandoned)."""
    version = str(version)

    def plan(state: RegistryState, _registry: ModelRegistry) -> _Plan:
        if state.challenger == version:
            return _Plan((), state.challenger, version, noop=f"version {version} is already challenger")
        _expect(state, CHAMPION, expected_champion)
        if state.champion == version:
            raise PromotionConflictError(f"{state.model_name} version {version} is the champion; it cannot also be the challenger")
        return _Plan(((CHALLENGER, version),), state.challenger, version, {version: "challenger_set"})

    return _run_move(platform, "challenger_set", plan, actor=actor, reason=reason, metrics=metrics, registry=registry)


def reject_challenger(
    platform: Platform,
    version: str,
    *,
    actor: Actor,
    reason: str,
    metrics: Mapping[str, Any] | None = None,
    registry: ModelRegistry | None = None,
) -> AliasMove:
    """Remove the challenger alias from ``version``; a no-op when it is no longer the challenger."""
    version = str(version)

    def plan(state: RegistryState, _registry: ModelRegistry) -> _Plan:
        if state.challenger != version:
            return _Plan((), version, None, noop=f"version {version} is not the challenger (challenger: {state.challenger})")
        return _Plan(((CHALLENGER, None),), version, None, {version: "reject"})

    return _run_move(platform, "reject", plan, actor=actor, reason=reason, metrics=metrics, registry=registry)


def rollback(
    platform: Platform,
    *,
    actor: Actor,
    reason: str,
    expected_champion: str | None = ANY,
    metrics: Mapping[str, Any] | None = None,
    registry: ModelRegistry | None = None,
) -> AliasMove:
    """``champion`` goes back to ``previous-champion``, which is then cleared (so a repeat is a no-op).

    No-op, with the reason, when there is no previous-champion or the champion is no longer
    ``expected_champion`` (someone already rolled back or promoted).
    """

    def plan(state: RegistryState, _registry: ModelRegistry) -> _Plan:
        if expected_champion is not ANY and state.champion != expected_champion:
            return _Plan((), state.champion, None, noop=f"champion is {state.champion}, not {expected_champion}: already moved")
        if state.previous_champion is None or state.previous_champion == state.champion:
            return _Plan((), state.champion, None, noop=f"no previous-champion to roll back to (champion: {state.champion})")
        steps = ((CHAMPION, state.previous_champion), (PREVIOUS_CHAMPION, None))
        tags = {state.previous_champion: "restored"} | ({state.champion: "rollback"} if state.champion else {})
        return _Plan(steps, state.champion, state.previous_champion, tags)

    return _run_move(platform, "rollback", plan, actor=actor, reason=reason, metrics=metrics, registry=registry)


def current_state(settings: Settings, registry: ModelRegistry | None = None) -> RegistryState:
    """The aliases now (no lock: a read is always consistent per call)."""
    return (registry or ModelRegistry(settings)).state()
