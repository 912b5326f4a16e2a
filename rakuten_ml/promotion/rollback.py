"""Automatic rollback: the champion goes back to ``previous-champion`` when it degrades in production.

Degraded (the production plan's rollback rule, accuracy under baseline - 2 points; docs/production-plan.md): its rolling
accuracy over its last ``rollback_window`` labelled predictions is below its validation
accuracy (registry tag ``metric.accuracy``) minus ``rollback_tolerance``, or the serving error
rate / P95 latency given by the caller is over its limit. A degradation always raises an
:func:`alert`, whether or not a rollback was possible.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.jsonsafe import finite_or_none
from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.ab_evaluation import correct_count, labelled_predictions
from rakuten_ml.promotion.aliases import AliasMove
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.registry.contract import ACCURACY_TAG
from rakuten_ml.registry.gateway import ModelRegistry
from rakuten_ml.resources import Platform
from rakuten_ml.settings import RollbackSettings

log = logging.getLogger(__name__)

BASELINE_TAG = ACCURACY_TAG  # written on every version by registry.model_registry


@dataclass(frozen=True)
class Alert:
    """Something an operator must look at; the Prometheus exporter counts them through a hook."""

    name: str
    model_name: str
    version: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    severity: str = "critical"
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


AlertHook = Callable[[Alert], None]
_HOOKS: list[AlertHook] = []
_RECENT: deque[Alert] = deque(maxlen=100)


def register_alert_hook(hook: AlertHook) -> None:
    """Call ``hook`` on every alert of this process (e.g. bump a Prometheus counter)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def unregister_alert_hook(hook: AlertHook) -> None:
    if hook in _HOOKS:
        _HOOKS.remove(hook)


def recent_alerts() -> list[Alert]:
    """Alerts raised by this process, oldest first (last 100)."""
    return list(_RECENT)


def alert(event: Alert) -> None:
    """Log at ERROR, keep it for :func:`recent_alerts` and tell every hook; a failing hook never hides the alert."""
    log.error("ALERT %s [%s v%s]: %s", event.name, event.model_name, event.version, event.message)
    _RECENT.append(event)
    for hook in list(_HOOKS):
        try:
            hook(event)
        except Exception:  # noqa: BLE001 - a broken exporter must not stop the rollback path
            log.exception("alert hook %r failed", hook)


@dataclass(frozen=True)
class HealthCheck:
    """The champion's production numbers against its limits."""

    version: str
    baseline_accuracy: float | None
    n: int
    correct: int
    tolerance: float
    min_samples: int
    error_rate: float | None
    p95_latency_ms: float | None
    reasons: tuple[str, ...]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def degraded(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"accuracy": self.accuracy, "degraded": self.degraded}


def assess(
    version: str,
    *,
    n: int,
    correct: int,
    baseline_accuracy: float | None,
    policy: RollbackSettings,
    error_rate: float | None = None,
    p95_latency_ms: float | None = None,
) -> HealthCheck:
    """Pure: why (if at all) the champion counts as degraded."""
    tolerance, min_samples = policy.tolerance, policy.min_samples
    max_error_rate, max_p95_latency_ms = policy.max_error_rate, policy.max_p95_latency_ms
    # NaN/inf (Prometheus's 0/0 without traffic, a hand-set tag) is unknown: not judged, and kept out of the JSON summary
    baseline_accuracy, error_rate, p95_latency_ms = (finite_or_none(v) for v in (baseline_accuracy, error_rate, p95_latency_ms))
    reasons = []
    if baseline_accuracy is not None and n >= min_samples and correct / n < baseline_accuracy - tolerance:
        reasons.append(f"rolling accuracy {correct / n:.4f} on {n} labels < baseline {baseline_accuracy:.4f} - {tolerance}")
    if error_rate is not None and error_rate > max_error_rate:
        reasons.append(f"error rate {error_rate:.4f} > {max_error_rate}")
    if p95_latency_ms is not None and p95_latency_ms > max_p95_latency_ms:
        reasons.append(f"P95 latency {p95_latency_ms:.0f} ms > {max_p95_latency_ms:.0f} ms")
    return HealthCheck(version, baseline_accuracy, n, correct, tolerance, min_samples, error_rate, p95_latency_ms, tuple(reasons))


def rolling_accuracy(engine: Engine, model_name: str, version: str, window: int) -> tuple[int, int]:
    """(n, correct) over ``version``'s last ``window`` labelled predictions, batch and online."""
    labelled = labelled_predictions(model_name, versions=(version,))
    last = sa.select(labelled).order_by(labelled.c.at.desc()).limit(window).subquery("last")
    stmt = sa.select(sa.func.count().label("n"), correct_count(last).label("correct"))
    with engine.connect() as conn:
        row = conn.execute(stmt).one()
    return int(row.n), int(row.correct)


def serving_p95_latency_ms(engine: Engine, model_name: str, version: str, *, window: timedelta = timedelta(hours=1), min_requests: int = 50) -> float | None:
    """P95 of the champion's online request latency over the last ``window`` (None: too few requests)."""
    from rakuten_ml.storage.database import prediction_log

    since = datetime.now(UTC) - window
    stmt = (
        sa.select(prediction_log.c.request_id, sa.func.max(prediction_log.c.latency_ms).label("latency"))
        .where(
            prediction_log.c.model_name == sa.bindparam("name"),
            prediction_log.c.model_version == sa.bindparam("version"),
            prediction_log.c.created_at >= sa.bindparam("since"),
            prediction_log.c.latency_ms.is_not(None),
        )
        .group_by(prediction_log.c.request_id)
        .limit(100_000)
    )
    with engine.connect() as conn:
        latencies = [row.latency for row in conn.execute(stmt, {"name": model_name, "version": version, "since": since})]
    if len(latencies) < min_requests:
        return None
    return float(np.percentile(latencies, 95))


@dataclass(frozen=True)
class GuardOutcome:
    champion: str | None
    check: HealthCheck | None
    move: AliasMove | None
    message: str

    @property
    def rolled_back(self) -> bool:
        return self.move is not None and self.move.changed

    def summary(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "rolled_back": self.rolled_back,
            "message": self.message,
            "check": None if self.check is None else self.check.as_dict(),
            "move": None if self.move is None else self.move.summary(),
        }


def guard_champion(
    platform: Platform,
    *,
    actor: Actor,
    error_rate: float | None = None,
    p95_latency_ms: float | None = None,
    registry: ModelRegistry | None = None,
) -> GuardOutcome:
    """Check the champion; roll it back (and alert) when degraded. Safe to call repeatedly."""
    settings = platform.settings
    registry = registry or ModelRegistry(settings)
    state = registry.state()
    if state.champion is None:
        message = "no champion to guard" if state.registered else f"no model registered yet as {registry.name!r}: no champion to guard"
        log.info("%s: %s", registry.name, message)
        return GuardOutcome(None, None, None, message)
    baseline = registry.version(state.champion).tags.get(BASELINE_TAG)
    if baseline is None:
        log.warning("%s v%s has no %s tag: only error rate and latency are checked", registry.name, state.champion, BASELINE_TAG)
    n, correct = rolling_accuracy(platform.engine, registry.name, state.champion, settings.rollback.window)
    if p95_latency_ms is None:
        p95_latency_ms = serving_p95_latency_ms(platform.engine, registry.name, state.champion)
    check = assess(
        state.champion,
        n=n,
        correct=correct,
        baseline_accuracy=None if baseline is None else float(baseline),
        policy=settings.rollback,
        error_rate=error_rate,
        p95_latency_ms=p95_latency_ms,
    )
    if not check.degraded:
        message = f"champion v{state.champion} healthy: accuracy {check.accuracy} on {n} labels (baseline {baseline})"
        log.info("%s: %s", registry.name, message)
        return GuardOutcome(state.champion, check, None, message)
    reason = "; ".join(check.reasons)
    move = aliases.rollback(
        platform, actor=actor, reason=f"champion v{state.champion} degraded: {reason}", expected_champion=state.champion,
        metrics=check.as_dict(), registry=registry,
    )
    if move.changed:
        message = f"rolled back champion v{state.champion} -> v{move.to_version}: {reason}"
        alert(Alert("champion_rolled_back", registry.name, state.champion, message, check.as_dict()))
    else:
        message = f"champion v{state.champion} degraded ({reason}) but not rolled back: {move.reason}"
        alert(Alert("champion_degraded", registry.name, state.champion, message, check.as_dict()))
    return GuardOutcome(state.champion, check, move, message)
