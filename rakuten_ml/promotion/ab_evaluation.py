"""A/B evaluation job: predictions joined to their true labels, per-variant accuracy, decision, alias move.

An arm is the predictions one model version made under one variant, from batch scoring
(``predictions``) and online serving (``prediction_log``) alike, joined by ``productid`` to
``feedback``. A product scored many times (nightly batch, repeated requests) counts once per
arm, with its latest prediction: repeats are not independent evidence. Only predictions made
since the challenger alias was set count, so an old test of the same versions does not leak in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.ab_stats import ABDecision, ArmStats, decide
from rakuten_ml.promotion.aliases import AliasMove
from rakuten_ml.promotion.audit import Actor, last_event
from rakuten_ml.promotion.routing import CHALLENGER, CHAMPION
from rakuten_ml.registry.gateway import ModelRegistry
from rakuten_ml.resources import Platform
from rakuten_ml.storage.database import feedback, prediction_log, predictions

log = logging.getLogger(__name__)


def labelled_predictions(model_name: str, *, versions: Sequence[str] | None = None, since: datetime | None = None) -> sa.Subquery:
    """Latest prediction per (product, version, variant) with its true label: productid, model_version, variant, predicted, label, at."""
    sources = []
    for table, at in ((predictions, predictions.c.scored_at), (prediction_log, prediction_log.c.created_at)):
        stmt = sa.select(
            table.c.productid, table.c.model_version, table.c.variant, table.c.prdtypecode.label("predicted"), at.label("at")
        ).where(table.c.model_name == model_name, table.c.productid.is_not(None))
        if versions is not None:
            stmt = stmt.where(table.c.model_version.in_([str(v) for v in versions]))
        if since is not None:
            stmt = stmt.where(at >= since)
        sources.append(stmt)
    union = sa.union_all(*sources).subquery("scored")
    latest_first = sa.func.row_number().over(
        partition_by=(union.c.productid, union.c.model_version, union.c.variant), order_by=union.c.at.desc()
    )
    ranked = (
        sa.select(union, feedback.c.prdtypecode.label("label"), latest_first.label("recency"))
        .join(feedback, feedback.c.productid == union.c.productid)
        .subquery("ranked")
    )
    return (
        sa.select(ranked.c.productid, ranked.c.model_version, ranked.c.variant, ranked.c.predicted, ranked.c.label, ranked.c.at)
        .where(ranked.c.recency == 1)
        .subquery("labelled")
    )


def correct_count(labelled: sa.Subquery) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((labelled.c.predicted == labelled.c.label, 1), else_=0)), 0)


def arm_stats(engine: Engine, model_name: str, champion: str, challenger: str, *, since: datetime | None = None) -> tuple[ArmStats, ArmStats]:
    """(champion arm, challenger arm) counts of labelled predictions."""
    labelled = labelled_predictions(model_name, versions=(champion, challenger), since=since)
    arms = {CHAMPION: str(champion), CHALLENGER: str(challenger)}
    stmt = (
        sa.select(labelled.c.variant, sa.func.count().label("n"), correct_count(labelled).label("correct"))
        .where(sa.or_(*(sa.and_(labelled.c.variant == variant, labelled.c.model_version == version) for variant, version in arms.items())))
        .group_by(labelled.c.variant)
    )
    with engine.connect() as conn:
        counts = {row.variant: (int(row.n), int(row.correct)) for row in conn.execute(stmt)}
    champion_arm, challenger_arm = (ArmStats(variant, version, *counts.get(variant, (0, 0))) for variant, version in arms.items())
    return champion_arm, challenger_arm


@dataclass(frozen=True)
class ABOutcome:
    champion: str | None
    challenger: str | None
    decision: ABDecision | None
    move: AliasMove | None
    message: str

    def summary(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "action": None if self.decision is None else self.decision.action,
            "message": self.message,
            "decision": None if self.decision is None else self.decision.as_dict(),
            "move": None if self.move is None else self.move.summary(),
        }


def evaluate_ab_test(platform: Platform, *, actor: Actor, apply: bool = True, registry: ModelRegistry | None = None) -> ABOutcome:
    """Decide the running A/B test and, with ``apply``, promote or reject the challenger through the locked path."""
    settings = platform.settings
    registry = registry or ModelRegistry(settings)
    state = registry.state()
    if state.champion is None or state.challenger is None:
        message = (
            f"no A/B test running (champion {state.champion}, challenger {state.challenger})" if state.registered
            else f"no model registered yet as {registry.name!r}: no A/B test running (train and register one first)"
        )
        log.info("%s: %s", registry.name, message)
        return ABOutcome(state.champion, state.challenger, None, None, message)
    started = last_event(platform.engine, registry.name, "challenger_set", state.challenger)
    champion, challenger = arm_stats(
        platform.engine, registry.name, state.champion, state.challenger, since=started["at"] if started else None
    )
    decision = decide(champion, challenger, settings.ab)
    log.info("%s A/B v%s vs v%s: %s (%s)", registry.name, state.challenger, state.champion, decision.action, decision.reason)
    registry.set_tags(state.challenger, {"ab.decision": decision.action, "ab.reason": decision.reason[:4900]})
    move = None
    if apply and decision.action == "promote":
        move = aliases.promote(
            platform, state.challenger, actor=actor, reason=f"A/B test: {decision.reason}", expected_champion=state.champion,
            require_challenger=True, metrics=decision.as_dict(), registry=registry,
        )
    elif apply and decision.action == "reject":
        move = aliases.reject_challenger(
            platform, state.challenger, actor=actor, reason=f"A/B test: {decision.reason}", metrics=decision.as_dict(), registry=registry
        )
    return ABOutcome(state.champion, state.challenger, decision, move, decision.reason)
