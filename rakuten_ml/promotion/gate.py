"""Offline evaluation gate: a new version becomes ``challenger`` only if it is not worse than the champion.

Both models are rescored on the champion's *frozen* evaluation set (the products listed in its
run's ``evaluation/eval_productids.json``, read from its snapshot), so the comparison is on the
same rows, not on two different hold-outs. Rules (``Settings.gate_*``): candidate weighted F1
>= champion's - tolerance, and no class F1 drops by more than the guardrail (classes with too
few eval rows are reported, not judged; the seed's weak classes are always reported).

A candidate trained like the champion or the challenger (same snapshot, configuration and code:
a retrain with nothing new) is not judged: an A/B test of a model against its twin can only
waste traffic, so it stays out with the result ``identical``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from rakuten_ml.errors import GateError, RegistryNotFoundError
from rakuten_ml.labels import CLASS_NAMES, DEFAULT_MAPPING, WEAK_CLASSES
from rakuten_ml.promotion import aliases
from rakuten_ml.promotion.aliases import AliasMove
from rakuten_ml.promotion.audit import Action, Actor, PromotionEvent, record
from rakuten_ml.registry.contract import EVALUATION_PRODUCTIDS, GATE_VERDICT_TAG, LAST_ACTION_TAG
from rakuten_ml.registry.gateway import ModelRegistry, RegistryState
from rakuten_ml.resources import Platform
from rakuten_ml.settings import GateSettings

if TYPE_CHECKING:  # sklearn is only needed when the gate actually scores (keeps the CLI quick)
    from rakuten_ml.evaluation.metrics import EvaluationReport

log = logging.getLogger(__name__)

EVAL_PRODUCTIDS_ARTIFACT = EVALUATION_PRODUCTIDS  # written by training.train
# What determines a model: the run params training.train logs (snapshot, modalities, split, fusion and
# model params) and these version tags (the code); not run ids, timings, the DAG run or the trigger reason.
FINGERPRINT_TAGS = ("git_commit",)

GateResult = Literal["champion", "challenger", "rejected", "unchanged", "identical"]


@dataclass(frozen=True)
class ClassDelta:
    code: int
    name: str
    support: int
    champion_f1: float
    candidate_f1: float
    weak: bool
    judged: bool  # support high enough for the guardrail to apply
    breach: bool

    @property
    def delta(self) -> float:
        return self.candidate_f1 - self.champion_f1


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: tuple[str, ...]
    candidate_f1: float
    champion_f1: float
    tolerance: float
    guardrail: float
    n_eval: int
    classes: tuple[ClassDelta, ...]

    @property
    def f1_delta(self) -> float:
        return self.candidate_f1 - self.champion_f1

    @property
    def breaches(self) -> list[ClassDelta]:
        return [c for c in self.classes if c.breach]

    @property
    def weak(self) -> list[ClassDelta]:
        return [c for c in self.classes if c.weak]

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow run metrics."""
        judged = [c.delta for c in self.classes if c.judged]
        out = {
            "gate.f1_weighted": self.candidate_f1,
            "gate.champion_f1_weighted": self.champion_f1,
            "gate.f1_delta": self.f1_delta,
            "gate.worst_class_delta": min(judged) if judged else 0.0,
            "gate.n_eval": float(self.n_eval),
            "gate.passed": float(self.passed),
        }
        return out | {f"gate.class_{c.code}.f1_delta": c.delta for c in self.weak}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["f1_delta"] = self.f1_delta
        out["classes"] = [asdict(c) | {"delta": c.delta} for c in self.classes]
        out["weak_classes"] = {str(c.code): asdict(c) | {"delta": c.delta} for c in self.weak}
        return out


def gate_verdict(
    candidate: EvaluationReport,
    champion: EvaluationReport,
    policy: GateSettings,
    *,
    weak_classes: Sequence[int] = WEAK_CLASSES,
) -> GateVerdict:
    """Pure decision from two reports computed on the same rows."""
    tolerance, guardrail, min_support = policy.f1_tolerance, policy.class_guardrail, policy.min_class_support
    if candidate.metrics["n_eval"] != champion.metrics["n_eval"]:
        raise GateError(f"reports cover {candidate.metrics['n_eval']:.0f} and {champion.metrics['n_eval']:.0f} rows; the gate needs the same evaluation set")
    classes = []
    for code, champ in champion.per_class.items():
        cand = candidate.per_class[code]
        support = int(champ["support"])
        judged = support >= min_support
        delta = cand["f1"] - champ["f1"]
        if support or code in weak_classes:
            classes.append(ClassDelta(code, CLASS_NAMES[code], support, champ["f1"], cand["f1"], code in weak_classes, judged, judged and delta < -guardrail))
    cand_f1, champ_f1 = candidate.metrics["f1_weighted"], champion.metrics["f1_weighted"]
    reasons = []
    if cand_f1 < champ_f1 - tolerance:
        reasons.append(f"weighted F1 {cand_f1:.4f} < champion {champ_f1:.4f} - tolerance {tolerance}")
    for c in classes:
        if c.breach:
            reasons.append(f"class {c.code} ({c.name}{', weak' if c.weak else ''}) F1 {c.champion_f1:.3f} -> {c.candidate_f1:.3f} drops more than {guardrail}")
    passed = not reasons
    if passed:
        reasons.append(f"weighted F1 {cand_f1:.4f} vs champion {champ_f1:.4f} (tolerance {tolerance}); no class drops more than {guardrail}")
    return GateVerdict(passed, tuple(reasons), cand_f1, champ_f1, tolerance, guardrail, int(champion.metrics["n_eval"]), tuple(classes))


@dataclass(frozen=True)
class GateOutcome:
    """What happened to a candidate: became champion (no champion yet), challenger, or stayed out."""

    candidate: str
    champion: str | None
    result: GateResult
    verdict: GateVerdict | None
    move: AliasMove | None
    reason: str | None = None  # why, when there is no verdict to tell it

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "result": self.result,
            "passed": None if self.verdict is None else self.verdict.passed,
            "reasons": list(self.verdict.reasons) if self.verdict is not None else [self.reason] if self.reason else [],
            "metrics": {} if self.verdict is None else self.verdict.metrics(),
            "move": None if self.move is None else self.move.summary(),
        }


def _evaluation_frame(platform: Platform, registry: ModelRegistry, champion: str) -> tuple[Any, dict[str, Any]]:
    """The champion's frozen evaluation rows, in their logged order, and where they come from."""
    from rakuten_ml.data.snapshot import load_products

    info = registry.version(champion)
    if not info.run_id:
        raise GateError(f"champion version {champion} has no run; the gate needs its {EVAL_PRODUCTIDS_ARTIFACT}")
    payload = registry.load_run_dict(info.run_id, EVAL_PRODUCTIDS_ARTIFACT)
    snapshot_id, productids = payload.get("snapshot_id"), [int(p) for p in payload.get("productids", [])]
    if not snapshot_id or not productids:
        raise GateError(f"{EVAL_PRODUCTIDS_ARTIFACT} of run {info.run_id} names no snapshot or products; retrain the champion")
    products = load_products(platform.store, snapshot_id).set_index("productid", drop=False)
    missing = sorted(set(productids) - set(products.index.astype(int)))
    if missing:
        raise GateError(f"snapshot {snapshot_id} lacks {len(missing)} evaluation products (e.g. {missing[:5]}); was it rewritten?")
    source = {"snapshot_id": snapshot_id, "n_products": len(productids), "artifact": f"runs:/{info.run_id}/{EVAL_PRODUCTIDS_ARTIFACT}"}
    return products.loc[productids].reset_index(drop=True), source


def _score(platform: Platform, version: str, frame: Any) -> EvaluationReport:
    from rakuten_ml.evaluation.metrics import evaluate_proba
    from rakuten_ml.registry.resolve import ResolvedModel, load_classifier

    settings = platform.settings
    classifier = load_classifier(settings, ResolvedModel(settings.registered_model_name, version, None))
    # image models read their images by object-store key, as batch scoring does
    images = frame["image_key"].tolist() if "image" in classifier.modalities and "image_key" in frame else None
    proba, _modality = classifier.predict_proba(frame[["designation", "description"]], images, store=platform.store)
    return evaluate_proba(frame["prdtypecode"].to_numpy(), proba, DEFAULT_MAPPING, settings.training.confidence_threshold)


def _audit_and_tag(platform: Platform, registry: ModelRegistry, event: PromotionEvent, tags: Mapping[str, object]) -> None:
    """The gate's audit row, then its copy on the candidate version (verdict, reason, last action)."""
    record(platform.engine, event)
    registry.set_tags(
        str(event.to_version),
        {**tags, "gate.reason": event.reason[:4900], LAST_ACTION_TAG: event.action},  # tags cap at 5000 chars
    )


def _record_verdict(
    platform: Platform, registry: ModelRegistry, candidate: str, champion: str, verdict: GateVerdict, eval_set: dict[str, Any], actor: Actor
) -> None:
    """Audit row, version tags, run metrics and a JSON report: the gate's inputs and verdict, kept."""
    action: Action = "gate_pass" if verdict.passed else "gate_fail"
    report = verdict.as_dict() | {"candidate": candidate, "champion": champion, "evaluation_set": eval_set}
    # one HTTP call per version tag: the headline numbers here, all of them as run metrics below
    tags: Mapping[str, object] = {
        GATE_VERDICT_TAG: "pass" if verdict.passed else "fail",
        "gate.champion_version": champion,
        "gate.f1_weighted": f"{verdict.candidate_f1:.6f}",
        "gate.champion_f1_weighted": f"{verdict.champion_f1:.6f}",
    }
    _audit_and_tag(platform, registry, PromotionEvent(registry.name, action, actor, "; ".join(verdict.reasons), champion, candidate, report), tags)
    run_id = registry.version(candidate).run_id
    if run_id:
        registry.log_run_metrics(run_id, verdict.metrics())
        registry.log_run_dict(run_id, report, f"promotion/gate_vs_v{champion}.json")


def training_fingerprint(registry: ModelRegistry, version: str) -> dict[str, str] | None:
    """What determined ``version``'s model: its run's params and code commit, as training.train logged them.

    None when its run recorded no training params (a version registered by hand, a purged run):
    such a version is never taken for a twin, it goes through the gate.
    """
    info = registry.version(version)
    try:
        params = registry.run_params(info.run_id) if info.run_id else {}
    except RegistryNotFoundError:
        return None
    if "snapshot_id" not in params:
        return None
    return params | {f"tag.{key}": info.tags.get(key, "") for key in FINGERPRINT_TAGS}


def _twin(registry: ModelRegistry, fingerprint: Mapping[str, str], state: RegistryState) -> tuple[str, str] | None:
    """(role, version) of the champion or challenger trained exactly like ``fingerprint``, if any."""
    for role, version in (("champion", state.champion), ("challenger", state.challenger)):
        if version is not None and training_fingerprint(registry, version) == fingerprint:
            return role, version
    return None


def _skip_if_identical(platform: Platform, registry: ModelRegistry, candidate: str, state: RegistryState, actor: Actor) -> GateOutcome | None:
    """An identical retrain of the champion or challenger stays out, audited and tagged; None when the candidate is new."""
    fingerprint = training_fingerprint(registry, candidate)
    if fingerprint is None:
        return None
    twin = _twin(registry, fingerprint, state)
    if twin is None:
        return None
    role, version = twin
    reason = (
        f"identical to the {role} v{version}: same snapshot {fingerprint['snapshot_id']}, training configuration and code; "
        "nothing new to test"
    )
    log.info("gate skipped for %s v%s: %s", registry.name, candidate, reason)
    metrics = {"identical_to": version, "role": role, "training": fingerprint}  # the audit keeps what matched
    _audit_and_tag(
        platform, registry, PromotionEvent(registry.name, "gate_skip", actor, reason, version, candidate, metrics),
        {GATE_VERDICT_TAG: "identical", "gate.identical_to": version},
    )
    return GateOutcome(candidate, state.champion, "identical", None, None, reason)


def run_gate(platform: Platform, candidate: str, *, actor: Actor, registry: ModelRegistry | None = None) -> GateOutcome:
    """Compare ``candidate`` with the champion (unless it is an identical retrain) and move the aliases accordingly."""
    settings = platform.settings
    registry = registry or ModelRegistry(settings)
    candidate = str(candidate)
    registry.version(candidate)  # clear error for an unknown version
    state = registry.state()
    if state.champion is None:
        move = aliases.promote(
            platform, candidate, actor=actor, reason="first version: no champion to compare with", expected_champion=None, registry=registry
        )
        return GateOutcome(candidate, None, "champion" if move.changed else "unchanged", None, move)
    if candidate in (state.champion, state.challenger):
        log.info("%s v%s is already %s: gate skipped", registry.name, candidate, "champion" if candidate == state.champion else "challenger")
        return GateOutcome(candidate, state.champion, "unchanged", None, None)
    identical = _skip_if_identical(platform, registry, candidate, state, actor)
    if identical is not None:
        return identical
    frame, eval_set = _evaluation_frame(platform, registry, state.champion)
    verdict = gate_verdict(
        _score(platform, candidate, frame),
        _score(platform, state.champion, frame),
        settings.gate,
    )
    log.info("gate %s v%s vs champion v%s: %s", "PASS" if verdict.passed else "FAIL", candidate, state.champion, "; ".join(verdict.reasons))
    _record_verdict(platform, registry, candidate, state.champion, verdict, eval_set, actor)
    if not verdict.passed:
        return GateOutcome(candidate, state.champion, "rejected", verdict, None)
    move = aliases.set_challenger(
        platform,
        candidate,
        actor=actor,
        reason=f"passed the gate against champion v{state.champion}",
        expected_champion=state.champion,  # the verdict is only valid against that champion
        metrics=verdict.metrics(),
        registry=registry,
    )
    return GateOutcome(candidate, state.champion, "challenger", verdict, move)
