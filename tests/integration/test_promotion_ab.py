"""A/B evaluation end to end: simulated traffic and feedback in PostgreSQL, decision, alias move, audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.ab_evaluation import arm_stats, evaluate_ab_test, paired_counts
from rakuten_ml.promotion.audit import Actor
from rakuten_ml.promotion.routing import assign_variants
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.resources import Platform
from tests.support.promotion import events, insert_labelled, insert_pairs, register_versions

DAG = Actor("airflow:evaluate_ab_test", "scheduled__2026-02-01")
SHARE = 0.2  # a bigger slice than production's 5% so one simulated day reaches the minimum sample


def simulate_traffic(platform: Platform, champion: str, challenger: str, p_champion: float, p_challenger: float, seed: int = 0) -> dict[str, tuple[int, int]]:
    """2,500 labelled products routed by the sticky hash, half served online, half batch-scored on two nights.

    Returns the (n, correct) each arm must count: one vote per product, whatever the repeats.
    """
    rng = np.random.default_rng(seed)
    productids = np.arange(2_000_000, 2_002_500)
    routed = assign_variants(productids, SHARE, platform.settings.ab.salt)
    expected = {}
    for variant, version, p in (("champion", champion, p_champion), ("challenger", challenger, p_challenger)):
        ids = productids[routed == variant]
        correct = rng.random(len(ids)) < p
        online = np.arange(len(ids)) % 2 == 0
        for night in range(2):  # the same prediction stored by two batch runs (and logged twice) counts once
            insert_labelled(platform, version, ids, correct, variant=variant, online=online, seed=seed, with_feedback=night == 0)
        expected[variant] = (len(ids), int(correct.sum()))
    return expected


def start_test(platform: Platform) -> tuple[str, str]:
    v1, v2 = register_versions(platform.settings, [0.8, 0.8])
    aliases.promote(platform, v1, actor=DAG, reason="first", expected_champion=None)
    # predictions from an earlier, abandoned test of the same version must not count
    insert_labelled(platform, v2, range(3_000_000, 3_000_300), [False] * 300, variant="challenger",
                    at=datetime.now(UTC) - timedelta(days=30))
    aliases.set_challenger(platform, v2, actor=DAG, reason="passed the gate", expected_champion=v1)
    return v1, v2


@pytest.mark.parametrize(
    ("truth", "p_champion", "p_challenger", "expected_action"),
    [("better", 0.72, 0.84, "promote"), ("worse", 0.84, 0.72, "reject"), ("equal", 0.80, 0.80, "keep_testing")],
)
def test_ab_decision_on_simulated_feedback_is_applied(psettings, truth, p_champion, p_challenger, expected_action):
    platform = Platform(psettings).prepare()
    v1, v2 = start_test(platform)
    expected = simulate_traffic(platform, v1, v2, p_champion, p_challenger)

    dry = evaluate_ab_test(platform, actor=DAG, apply=False)
    assert dry.decision.action == expected_action and dry.move is None
    assert ModelRegistry(psettings).state() == RegistryState(psettings.registered_model_name, v1, v2)

    outcome = evaluate_ab_test(platform, actor=DAG)
    decision = outcome.decision
    assert decision.action == expected_action, decision.reason
    assert (decision.champion.n, decision.champion.correct) == expected["champion"]
    assert (decision.challenger.n, decision.challenger.correct) == expected["challenger"]
    assert decision.challenger.n >= psettings.ab.min_samples_per_arm
    low, high = decision.challenger.interval
    assert low < p_challenger < high  # the Wilson interval covers the simulated truth

    state = ModelRegistry(psettings).state()
    last = events(platform)[0]
    if expected_action == "promote":
        assert state == RegistryState(psettings.registered_model_name, champion=v2, challenger=None, previous_champion=v1)
        assert (last["action"], last["from_version"], last["to_version"]) == ("promote", v1, v2)
    elif expected_action == "reject":
        assert state == RegistryState(psettings.registered_model_name, champion=v1, challenger=None)
        assert (last["action"], last["from_version"], last["to_version"]) == ("reject", v2, None)
    else:
        assert state == RegistryState(psettings.registered_model_name, champion=v1, challenger=v2)
        assert last["action"] == "challenger_set"  # keep_testing moves nothing and audits nothing
    if expected_action != "keep_testing":
        assert last["actor"] == DAG.user and last["dag_run_id"] == DAG.dag_run_id
        assert last["metrics"]["challenger"]["n"] == decision.challenger.n and last["metrics"]["p_better"] is not None
        assert last["reason"].startswith("A/B test: challenger significantly")
        assert evaluate_ab_test(platform, actor=DAG).decision is None  # test over: nothing left to decide
    assert ModelRegistry(psettings).version(v2).tags["ab.decision"] == expected_action


def test_arms_need_the_minimum_sample_and_count_each_product_once(psettings):
    platform = Platform(psettings).prepare()
    v1, v2 = start_test(platform)
    insert_labelled(platform, v2, range(100), [True] * 100, variant="challenger")
    insert_labelled(platform, v2, range(100), [True] * 100, variant="challenger", online=[True] * 100, with_feedback=False)  # same products, online
    insert_labelled(platform, v1, range(1000, 1500), [True] * 500)
    started = events(platform)[0]["at"]
    champion, challenger = arm_stats(platform.engine, psettings.registered_model_name, v1, v2, since=started)
    assert (champion.n, challenger.n) == (500, 100)
    outcome = evaluate_ab_test(platform, actor=DAG)
    assert outcome.decision.action == "keep_testing" and "challenger 100" in outcome.message
    assert outcome.move is None


def test_no_test_running_is_a_clear_no_op(psettings):
    platform = Platform(psettings).prepare()
    (v1,) = register_versions(psettings, [0.8])
    aliases.promote(platform, v1, actor=DAG, reason="first", expected_champion=None)
    outcome = evaluate_ab_test(platform, actor=DAG)
    assert outcome.decision is None and outcome.message == f"no A/B test running (champion {v1}, challenger None)"


@pytest.mark.parametrize(
    ("labelled_arms", "empty", "message"),
    [
        (("champion",), "challenger", "challenger has no labelled predictions yet (need 200 labelled predictions per arm; champion has 300, challenger 0); need 200 labelled pairs; 0 so far"),
        ((), "both", "champion and challenger have no labelled predictions yet (need 200 labelled predictions per arm; champion has 0, challenger 0); need 200 labelled pairs; 0 so far"),
    ],
)
def test_summary_of_a_test_without_labels_is_strict_json(psettings, labelled_arms, empty, message):
    """The Airflow task returns the summary as an XCom: NaN there makes Airflow's API refuse it."""
    platform = Platform(psettings).prepare()
    v1, v2 = start_test(platform)  # the challenger's old, abandoned-test predictions do not count
    if "champion" in labelled_arms:
        insert_labelled(platform, v1, range(1000, 1300), [True] * 300)

    outcome = evaluate_ab_test(platform, actor=DAG)
    summary = json.loads(json.dumps(outcome.summary(), allow_nan=False))
    decision = summary["decision"]
    assert summary["action"] == "keep_testing" and summary["message"] == message
    assert decision["challenger"]["accuracy"] is None and decision["diff"] is None
    assert decision["champion"]["accuracy"] == (1.0 if empty == "challenger" else None)
    assert (decision["challenger"]["ci95_low"], decision["challenger"]["ci95_high"]) == (0.0, 1.0)
    assert ModelRegistry(psettings).version(v2).tags["ab.reason"] == message


def test_paired_shadow_labels_decide_before_the_split_arms_can(psettings):
    """Both versions scored 1,500 labelled products: the paired test promotes while the 5% arm has few labels."""
    platform = Platform(psettings).prepare()
    v1, v2 = start_test(platform)
    rng = np.random.default_rng(7)
    ids = np.arange(4_000_000, 4_001_500)
    champion_right = rng.random(len(ids)) < 0.80
    # the retrain fixes 40% of the champion's errors and breaks 2% of its successes: +6.4 points
    challenger_right = np.where(champion_right, rng.random(len(ids)) > 0.02, rng.random(len(ids)) < 0.40)
    insert_pairs(platform, v1, v2, ids, champion_right, challenger_right)
    # an older pair of the same product from an earlier night does not count twice, a pair of other versions not at all
    insert_pairs(platform, v1, v2, ids[:100], [False] * 100, [True] * 100, source_id="older-night",
                 at=datetime.now(UTC) - timedelta(hours=1), with_feedback=False)
    insert_pairs(platform, "99", v2, ids[:100], [False] * 100, [True] * 100, source_id="other-versions", with_feedback=False)
    started = events(platform)[0]["at"]
    paired = paired_counts(platform.engine, psettings.registered_model_name, v1, v2, since=started)
    assert paired.n == 1500
    assert (paired.champion_only, paired.challenger_only) == (
        int((champion_right & ~challenger_right).sum()), int((~champion_right & challenger_right).sum()))

    outcome = evaluate_ab_test(platform, actor=DAG)
    decision = outcome.decision
    assert (decision.action, decision.test, decision.n_labels) == ("promote", "paired_msprt", 1500), decision.reason
    assert decision.challenger.n == 0  # no split-arm label at all: the paired design alone decided
    last = events(platform)[0]
    assert last["action"] == "promote" and last["metrics"]["test"] == "paired_msprt" and last["metrics"]["n_labels"] == 1500
    assert last["metrics"]["paired"]["n"] == 1500
    tags = ModelRegistry(psettings).version(v2).tags
    assert (tags["ab.test"], tags["ab.labels"]) == ("paired_msprt", "1500")
