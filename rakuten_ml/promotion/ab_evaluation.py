"""A/B evaluation job: predictions joined to their true labels, per-variant accuracy, paired counts, decision, alias move.

An arm is the predictions one model version made under one variant, from batch scoring
(``predictions``) and online serving (``prediction_log``) alike, joined by ``productid`` to
``feedback``. A product scored many times (nightly batch, repeated requests) counts once per
arm, with its latest prediction: repeats are not independent evidence. Only predictions made
since the challenger alias was set count, so an old test of the same versions does not leak in.
Paired counts come from ``paired_predictions`` (both versions scored the product), one per
labelled product, its latest pair.
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
from rakuten_ml.promotion.paired_stats import PairedCounts
from rakuten_ml.promotion.routing import CHALLENGER, CHAMPION
from rakuten_ml.registry.gateway import ModelRegistry
from rakuten_ml.resources import Platform
from rakuten_ml.storage.database import feedback, paired_predictions, prediction_log, predictions

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


def paired_counts(engine: Engine, model_name: str, champion: str, challenger: str, *, since: datetime | None = None) -> PairedCounts:
    """Labelled products both versions scored (batch shadow scoring, serving's shadow), latest pair per product."""
    pairs = paired_predictions
    stmt = sa.select(
        pairs.c.productid, pairs.c.champion_code, pairs.c.challenger_code,
        sa.func.row_number().over(partition_by=pairs.c.productid, order_by=pairs.c.scored_at.desc()).label("recency"),
    ).where(pairs.c.model_name == model_name, pairs.c.champion_version == str(champion), pairs.c.challenger_version == str(challenger))
    if since is not None:
        stmt = stmt.where(pairs.c.scored_at >= since)
    latest = stmt.subquery("pairs")
    champion_right = latest.c.champion_code == feedback.c.prdtypecode
    challenger_right = latest.c.challenger_code == feedback.c.prdtypecode

    def count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    query = (
        sa.select(
            sa.func.count().label("n"), count(sa.and_(champion_right, challenger_right)).label("both_right"),
            count(sa.and_(champion_right, sa.not_(challenger_right))).label("champion_only"),
            count(sa.and_(sa.not_(champion_right), challenger_right)).label("challenger_only"),
        )
        .select_from(latest.join(feedback, feedback.c.productid == latest.c.productid))
        .where(latest.c.recency == 1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).one()
    n, both, champion_only, challenger_only = (int(v) for v in row)
    return PairedCounts(str(champion), str(challenger), n, both, champion_only, challenger_only, n - both - champion_only - challenger_only)


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
    paired = paired_counts(platform.engine, registry.name, state.champion, state.challenger, since=started["at"] if started else None)
    # the paired design is in the test from its first day whenever either scorer shadows (it takes half of alpha
    # throughout); with shadow scoring off everywhere and no pair, the split design alone judges, with all of it
    shadowing = settings.ab.shadow_scoring or settings.serving.shadow_share > 0
    decision = decide(champion, challenger, settings.ab, paired if paired.n or shadowing else None)
    log.info("%s A/B v%s vs v%s: %s by %s (%s)", registry.name, state.challenger, state.champion, decision.action,
             decision.test or "no test yet", decision.reason)
    tags = {"ab.decision": decision.action, "ab.reason": decision.reason[:4900], "ab.test": decision.test or "",
            "ab.labels": str(decision.n_labels)}
    registry.set_tags(state.challenger, tags)
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
