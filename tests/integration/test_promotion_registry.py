"""Registry aliases against a real MLflow server (PostgreSQL + S3): moves, audit, tags, locking, failures."""

from __future__ import annotations

import json
import threading
import time

import pytest

from rakuten_ml.errors import PromotionConflictError, RegistryError
from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.aliases import promotion_lock
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.promotion.service import onboard_latest, onboard_version, registry_status
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from tests.support.promotion import events, register_versions, set_state
from tests.support.services import free_port

ALICE = Actor("alice", "manual__2026-01-01")


def test_first_version_is_champion_then_challenger_promote_reject_with_audit_and_tags(psettings):
    platform = Platform(psettings).prepare()
    name = psettings.registered_model_name
    v1, v2, v3 = register_versions(psettings, [0.80, 0.82, 0.79])

    first = onboard_version(platform, v1, actor=ALICE)  # no champion: no gate, straight to champion
    assert first.result == "champion" and first.verdict is None
    assert onboard_version(platform, v1, actor=ALICE).result == "unchanged"  # rerun: no second register event

    challenger = aliases.set_challenger(platform, v2, actor=ALICE, reason="passed the gate", expected_champion=v1)
    assert challenger.changed and challenger.after == RegistryState(name, v1, v2, None)
    promoted = aliases.promote(platform, v2, actor=Actor("bob"), reason="A/B win", expected_champion=v1, require_challenger=True)
    # champion -> previous-champion, challenger -> champion, challenger alias removed
    assert promoted.after == RegistryState(name, champion=v2, challenger=None, previous_champion=v1)
    assert not aliases.promote(platform, v2, actor=ALICE, reason="again").changed  # already champion: no-op

    aliases.set_challenger(platform, v3, actor=ALICE, reason="next candidate")
    rejected = aliases.reject_challenger(platform, v3, actor=ALICE, reason="A/B loss")
    assert rejected.changed and rejected.after.challenger is None
    assert not aliases.reject_challenger(platform, v3, actor=ALICE, reason="A/B loss").changed

    rows = events(platform)
    assert [(r["action"], r["from_version"], r["to_version"]) for r in reversed(rows)] == [
        ("register", None, v1),
        ("promote", None, v1),
        ("challenger_set", None, v2),
        ("promote", v1, v2),
        ("challenger_set", None, v3),
        ("reject", v3, None),
    ]
    assert rows[2]["actor"] == "bob" and rows[-1]["actor"] == "alice" and rows[-1]["dag_run_id"] == ALICE.dag_run_id
    assert rows[-1]["metrics"]["metric.accuracy"] == "0.800000"  # the register event keeps the version's tags
    assert all(r["at"] is not None and r["reason"] for r in rows)

    registry = ModelRegistry(psettings)
    assert registry.version(v2).tags["promotion.last_action"] == "promote"
    assert registry.version(v2).tags["promotion.reason"] == f"A/B win (audit event {promoted.event_id})"
    assert registry.version(v1).tags["promotion.last_action"] == "demoted"
    assert registry.version(v3).tags["promotion.last_action"] == "reject"
    status = registry_status(platform)
    assert status["aliases"] == {"champion": v2, "challenger": None, "previous-champion": v1}
    assert {v["version"]: v["aliases"] for v in status["versions"]}[v1] == ["previous-champion"]


def test_stale_expectations_are_conflicts_and_unknown_versions_are_clear_errors(psettings):
    platform = Platform(psettings).prepare()
    v1, v2 = register_versions(psettings, [0.8, 0.8])
    set_state(platform, champion=v1)
    with pytest.raises(PromotionConflictError, match="alias 'champion' is '1', expected '2'"):
        aliases.set_challenger(platform, v2, actor=ALICE, reason="x", expected_champion=v2)
    with pytest.raises(PromotionConflictError, match="alias 'challenger' is None, expected '2'"):
        aliases.promote(platform, v2, actor=ALICE, reason="x", require_challenger=True)
    with pytest.raises(RegistryError, match="version 99"):
        aliases.promote(platform, "99", actor=ALICE, reason="x")
    assert ModelRegistry(psettings).state() == RegistryState(psettings.registered_model_name, v1)
    assert events(platform) == []


def test_concurrent_promotions_exactly_one_wins_and_champion_never_disappears(psettings):
    platform = Platform(psettings).prepare()
    v1, *candidates = register_versions(psettings, [0.8, 0.81, 0.82, 0.83])
    aliases.promote(platform, v1, actor=ALICE, reason="first", expected_champion=None)
    seen: list[RegistryState] = []
    stop = threading.Event()

    def watch() -> None:  # a reader (serving) polling the aliases during the race
        registry = ModelRegistry(psettings)
        while not stop.is_set():
            seen.append(registry.state())

    barrier = threading.Barrier(len(candidates))
    results: dict[str, object] = {}

    def attempt(version: str) -> None:
        own = Platform(psettings).prepare()  # its own engine/connection, like another worker
        barrier.wait()
        try:
            results[version] = aliases.promote(own, version, actor=Actor(f"worker-{version}"), reason="race", expected_champion=v1)
        except PromotionConflictError as exc:
            results[version] = exc

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=attempt, args=(v,)) for v in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join(10)

    winners = [v for v, r in results.items() if isinstance(r, aliases.AliasMove) and r.changed]
    losers = [r for r in results.values() if isinstance(r, PromotionConflictError)]
    assert len(winners) == 1 and len(losers) == len(candidates) - 1
    assert all("expected '1'" in str(e) for e in losers)
    state = ModelRegistry(psettings).state()
    assert state.champion == winners[0] and state.previous_champion == v1
    promotes = [r for r in events(platform) if r["action"] == "promote" and r["from_version"] == v1]
    assert [r["to_version"] for r in promotes] == winners
    assert seen and all(s.champion is not None for s in seen)


def test_lock_holder_blocks_others_until_timeout(psettings):
    platform = Platform(psettings).prepare()
    (v1,) = register_versions(psettings, [0.8])
    impatient = Platform(psettings.replace(promotion_lock_timeout_s=1.0)).prepare()
    with promotion_lock(platform.engine, psettings.registered_model_name, "stuck-job", 5):
        started = time.monotonic()
        with pytest.raises(PromotionConflictError, match="held the promotion lock for more than 1 s"):
            aliases.promote(impatient, v1, actor=ALICE, reason="x")
        assert time.monotonic() - started >= 0.9
    assert aliases.promote(impatient, v1, actor=ALICE, reason="x").changed  # lock released


def test_mlflow_unreachable_is_a_typed_error_and_moves_nothing(psettings, monkeypatch):
    from rakuten_ml.promotion.ab_evaluation import evaluate_ab_test
    from rakuten_ml.promotion.rollback import guard_champion

    platform = Platform(psettings).prepare()
    v1, v2 = register_versions(psettings, [0.8, 0.8])
    set_state(platform, champion=v1, challenger=v2)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = Platform(psettings.replace(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")).prepare()
    for call in (
        lambda: aliases.promote(down, v2, actor=ALICE, reason="x"),
        lambda: aliases.rollback(down, actor=ALICE, reason="x"),
        lambda: evaluate_ab_test(down, actor=ALICE),
        lambda: guard_champion(down, actor=ALICE),
    ):
        with pytest.raises(RegistryError, match=r"cannot read registered model .* check that MLflow is up .*RAKUTEN_MLFLOW_TRACKING_URI"):
            call()
    for call, what in ((lambda: onboard_latest(down, actor=ALICE), "list versions"), (lambda: registry_status(down), "read registered model")):
        with pytest.raises(RegistryError, match=f"cannot {what} .* check that MLflow is up .*RAKUTEN_MLFLOW_TRACKING_URI"):
            call()
    assert ModelRegistry(psettings).state() == RegistryState(psettings.registered_model_name, v1, v2, None)
    assert events(platform) == []


def test_fresh_install_without_a_registered_model_has_nothing_to_do(psettings):
    """The scheduled jobs run before the first training: a clean no-op, not a failed task."""
    from rakuten_ml.promotion.ab_evaluation import evaluate_ab_test
    from rakuten_ml.promotion.rollback import guard_champion

    platform = Platform(psettings).prepare()
    name = psettings.registered_model_name  # never registered on this MLflow server
    registry = ModelRegistry(psettings)
    assert registry.state() == RegistryState(name, registered=False) and registry.versions() == []

    ab = evaluate_ab_test(platform, actor=ALICE)
    assert ab.decision is None and ab.move is None
    assert ab.message == f"no model registered yet as {name!r}: no A/B test running (train and register one first)"
    guard = guard_champion(platform, actor=ALICE)
    assert not guard.rolled_back and guard.check is None and guard.message == f"no model registered yet as {name!r}: no champion to guard"
    assert onboard_latest(platform, actor=ALICE) is None
    status = registry_status(platform)
    assert status["registered"] is False and status["versions"] == [] and status["last_events"] == []
    assert status["aliases"] == {"champion": None, "challenger": None, "previous-champion": None}
    for summary in (ab.summary(), guard.summary(), status):
        json.dumps(summary, allow_nan=False)
    assert events(platform) == []
    with pytest.raises(RegistryError, match="train and register a model first"):  # what needs a version still says so
        ModelRegistry(psettings).version("1")


class FailingOnce(ModelRegistry):
    """MLflow that drops exactly one alias write (the champion move): a crash in the middle of a promotion."""

    def __init__(self, settings: Settings, fail_alias: str) -> None:
        super().__init__(settings)
        self.fail_alias: str | None = fail_alias

    def move(self, alias: str, version: str | None) -> None:
        if alias == self.fail_alias:
            self.fail_alias = None
            raise RegistryError("injected: MLflow connection reset")
        super().move(alias, version)


def test_failure_in_the_middle_of_a_promotion_restores_the_aliases(psettings):
    platform = Platform(psettings).prepare()
    v0, v1, v2 = register_versions(psettings, [0.8, 0.8, 0.8])
    set_state(platform, champion=v1, challenger=v2, previous=v0)
    before = ModelRegistry(psettings).state()
    flaky = FailingOnce(psettings, aliases.CHAMPION)  # previous-champion is already re-pointed when this fails
    with pytest.raises(RegistryError, match=r"failed at alias 'champion'.*aliases restored"):
        aliases.promote(platform, v2, actor=ALICE, reason="A/B win", registry=flaky)
    assert ModelRegistry(psettings).state() == before
    assert events(platform) == []
    # the same move succeeds once MLflow is back, and is audited once
    assert aliases.promote(platform, v2, actor=ALICE, reason="A/B win", expected_champion=v1).changed
    assert [r["action"] for r in events(platform)] == ["promote"]


def test_registry_without_model_says_to_train_first(psettings):
    with pytest.raises(RegistryError, match="train and register a model first"):
        aliases.promote(Platform(psettings).prepare(), "1", actor=ALICE, reason="x")
