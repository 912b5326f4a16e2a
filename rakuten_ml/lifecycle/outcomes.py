"""One line per DAG run for people, read from its tasks' states and return values (XComs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rakuten_ml.lifecycle.timeline import Step

Results = Mapping[str, Any]
States = Mapping[str, str]

# The tasks whose return values a DAG's outcome is read from.
RESULT_TASKS: dict[str, tuple[str, ...]] = {
    "ingest_products": ("ingest",),
    "score_catalogue": ("resolve_models", "summarise"),
    "monitor_drift": ("check", "emit_alert"),
    "retrain_classifier": ("decide", "register"),
    "evaluate_ab_test": ("evaluate_ab", "gate_new_version"),
    "guard_champion": ("check_champion",),
    "train_text_model": ("train",),
}
# The task whose success means the run emitted its asset event.
EMITTING_TASK = {"ingest_products": "ingest", "monitor_drift": "emit_alert", "retrain_classifier": "register", "train_text_model": "train"}


def emitted(step: Step) -> bool:
    task = EMITTING_TASK.get(step.dag_id)
    return task is not None and step.tasks.get(task) == "success"


def _ingest(results: Results, _states: States) -> str:
    r = results.get("ingest") or {}
    return (f"{r.get('snapshot_id')} ({'new' if r.get('created') else 'unchanged'}): {r.get('n_accepted')} accepted, "
            f"{r.get('n_quarantined')} quarantined of {r.get('n_input')}")


def _score(results: Results, states: States) -> str:
    models = results.get("resolve_models") or {}
    if "champion" not in models:
        return f"skipped: {models.get('skip_reason', 'nothing to score')}"
    summary = results.get("summarise") or {}
    counts = summary.get("counts") or {}
    challenger = models.get("challenger")
    arms = f"v{models['champion']['version']}" + (f" + challenger v{challenger['version']} ({models.get('challenger_share', 0):.0%})" if challenger else "")
    if not summary:
        return f"{arms}: summarise {states.get('summarise')}"
    paired = int(counts.get("paired", 0))
    shadow = f", {paired} shadow-scored by both ({counts.get('disagreed', 0) / paired:.1%} disagree)" if paired else ""
    return (f"{arms}: {summary.get('n_scored')} scored ({counts.get('fused', 0)} fused, {counts.get('text_only', 0)} text only), "
            f"{counts.get('image_reused', 0)} photos' outputs reused{shadow}")


def _drift(results: Results, _states: States) -> str:
    r = results.get("check") or {}
    rules = r.get("rules") or {}
    alerts = r.get("alerts") or []
    notable = ", ".join(f"{metric} {rule.get('status')}" for metric, rule in rules.items() if rule.get("status") not in ("ok", "alert"))
    head = f"ALERT {', '.join(alerts)}" if alerts else "no alert"
    estimate = rules.get("estimated_performance") or {}
    estimated = (f"; estimated accuracy {estimate['statistic']:.3f} (alert below {estimate['threshold']:.3f})"
                 if estimate.get("statistic") is not None and estimate.get("threshold") is not None else "")
    return f"{head} for v{r.get('model_version')} on {r.get('check_date')}" + (f"; {notable}" if notable else "") + estimated


def _retrain(results: Results, states: States) -> str:
    decision = results.get("decide") or {}
    if states.get("cooldown_gate") == "skipped":
        return f"skipped ({decision.get('status')}): {decision.get('decision')}; asked for: {decision.get('reason')}"
    registered = results.get("register") or {}
    if registered:
        f1 = (registered.get("metrics") or {}).get("f1_weighted")
        return (f"registered v{registered.get('model_version')} (hold-out F1 {f1:.3f}) from {registered.get('snapshot_id')}; "
                f"{decision.get('trigger')}: {decision.get('reason')}")
    return f"{decision.get('status')}: {decision.get('reason')}"


def _evaluate(results: Results, _states: States) -> str:
    ab = results.get("evaluate_ab") or {}
    gate = results.get("gate_new_version")
    parts = []
    if gate:
        reasons = gate.get("reasons") or []
        more = f" (and {len(reasons) - 1} more reasons)" if len(reasons) > 1 else ""
        parts.append(f"gate v{gate.get('candidate')} -> {gate.get('result')}" + (f": {reasons[0]}{more}" if reasons else ""))
    if ab.get("action"):
        decision = ab.get("decision") or {}
        by = f" (by {decision['test']} on {decision.get('n_labels')} labels)" if decision.get("test") else ""
        parts.append(f"A/B {ab['action']}{by}: {ab.get('message')}")
    return " | ".join(parts) or f"nothing to decide ({ab.get('message')})"


def _guard(results: Results, _states: States) -> str:
    r = results.get("check_champion") or {}
    return ("ROLLED BACK: " if r.get("rolled_back") else "") + str(r.get("message"))


def _train(results: Results, _states: States) -> str:
    r = results.get("train") or {}
    return f"trained v{r.get('model_version')} on {r.get('snapshot_id')}"


DESCRIBERS: dict[str, Callable[[Results, States], str]] = {
    "ingest_products": _ingest, "score_catalogue": _score, "monitor_drift": _drift, "retrain_classifier": _retrain,
    "evaluate_ab_test": _evaluate, "guard_champion": _guard, "train_text_model": _train,
}


def describe(dag_id: str, states: States, results: Results) -> str:
    failed = [task for task, state in states.items() if "failed" in state]
    if failed:
        return f"FAILED tasks: {', '.join(failed)}"
    return DESCRIBERS[dag_id](results, states)
