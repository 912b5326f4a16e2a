"""Jobs of ``evaluate_ab_test`` and ``guard_champion``: decide the running A/B test, gate a new
version, roll a failing champion back. Every alias move goes through the locked, audited path."""

from __future__ import annotations

from typing import Any

from rakuten_ml.jobs.context import JobContext, JobSkipped
from rakuten_ml.resources import Platform


def _actor(dag_id: str, ctx: JobContext) -> Any:
    from rakuten_ml.promotion.audit import Actor

    return Actor.dag(dag_id, ctx.run_id)


def evaluate_ab(ctx: JobContext) -> dict[str, Any]:
    from rakuten_ml.promotion.ab_evaluation import evaluate_ab_test

    return evaluate_ab_test(Platform.ready(), actor=_actor("evaluate_ab_test", ctx), apply=bool(ctx.param("apply", True))).summary()


def gate_new_version(ctx: JobContext) -> dict[str, Any] | None:
    """Gate the newest version not yet judged (champion when there is none, else challenger and an A/B test)."""
    from rakuten_ml.promotion.service import onboard_latest

    if not ctx.param("apply", True):
        raise JobSkipped("dry run (apply=false): no version is gated")
    outcome = onboard_latest(Platform.ready(), actor=_actor("evaluate_ab_test", ctx))
    return None if outcome is None else outcome.summary()


def check_champion(ctx: JobContext) -> dict[str, Any]:
    from rakuten_ml.promotion.rollback import guard_champion

    outcome = guard_champion(
        Platform.ready(), actor=_actor("guard_champion", ctx),
        error_rate=ctx.param("error_rate"), p95_latency_ms=ctx.param("p95_latency_ms"),
    )
    return outcome.summary()
