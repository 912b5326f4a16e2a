"""Entry points the CLI and DAGs call: onboard a new version, read the registry's promotion state."""

from __future__ import annotations

import logging
from typing import Any

from rakuten_ml.promotion import audit
from rakuten_ml.promotion.audit import Actor, PromotionEvent
from rakuten_ml.promotion.gate import GateOutcome, run_gate
from rakuten_ml.registry.contract import (
    ACCURACY_TAG,
    DAG_RUN_TAG,
    F1_TAG,
    GATE_VERDICT_TAG,
    GIT_COMMIT_TAG,
    LAST_ACTION_TAG,
    METRIC_TAG_PREFIX,
    SNAPSHOT_TAG,
)
from rakuten_ml.registry.gateway import ALIASES, ModelRegistry
from rakuten_ml.resources import Platform

log = logging.getLogger(__name__)

# Version tags shown by `registry status` and copied into the `register` audit event.
SUMMARY_TAGS = (SNAPSHOT_TAG, DAG_RUN_TAG, GIT_COMMIT_TAG, ACCURACY_TAG, F1_TAG, GATE_VERDICT_TAG, LAST_ACTION_TAG)


def onboard_version(platform: Platform, version: str, *, actor: Actor, registry: ModelRegistry | None = None) -> GateOutcome:
    """Record the version's registration (once) and run it through the gate."""
    registry = registry or ModelRegistry(platform.settings)
    version = str(version)
    info = registry.version(version)
    if audit.last_event(platform.engine, registry.name, "register", version) is None:
        tags = {k: v for k, v in info.tags.items() if k in SUMMARY_TAGS or k.startswith(METRIC_TAG_PREFIX)}
        reason = f"registered from run {info.run_id} (snapshot {info.tags.get('snapshot_id', '?')})"
        audit.record(platform.engine, PromotionEvent(registry.name, "register", actor, reason, None, version, tags))
    return run_gate(platform, version, actor=actor, registry=registry)


def onboard_latest(platform: Platform, *, actor: Actor, registry: ModelRegistry | None = None) -> GateOutcome | None:
    """Gate the newest version if it was never onboarded (what the scheduled job runs); None otherwise."""
    registry = registry or ModelRegistry(platform.settings)
    newest = registry.versions(limit=1)
    if not newest:
        log.info("%s has no version yet", registry.name)
        return None
    version = newest[0].version
    if audit.last_event(platform.engine, registry.name, "register", version) is not None:
        log.info("%s v%s was already onboarded", registry.name, version)
        return None
    return onboard_version(platform, version, actor=actor, registry=registry)


def registry_status(platform: Platform, *, limit: int = 10, registry: ModelRegistry | None = None) -> dict[str, Any]:
    """Aliases, the newest versions with their key tags, and the last audit events."""
    registry = registry or ModelRegistry(platform.settings)
    state = registry.state()
    by_version: dict[str, list[str]] = {}
    for alias in ALIASES:
        if state.get(alias):
            by_version.setdefault(str(state.get(alias)), []).append(alias)
    versions = [
        {
            "version": v.version,
            "aliases": by_version.get(v.version, []),
            "created_at": v.created_at,
            **{k: v.tags[k] for k in SUMMARY_TAGS if k in v.tags},
        }
        for v in registry.versions(limit=limit)
    ]
    return {
        "model_name": registry.name, "registered": state.registered, "aliases": state.as_dict(), "versions": versions,
        "last_events": audit.history(platform.engine, registry.name, limit=5),
    }
