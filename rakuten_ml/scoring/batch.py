"""Batch scoring of a snapshot's products: partitioned, resumable, idempotent, A/B-aware.

A run pins its model versions once (champion, and challenger when one is under A/B test),
splits the products into productid ranges and scores each range independently — the DAG maps
one task per partition, on the ``gpu`` queue when the deployment has GPU workers. A finished
partition is recorded in ``scoring_partitions`` and skipped when a killed run is resumed.
Predictions are upserted keyed by (run id, product id), so rerunning overwrites, never duplicates.
Products with a missing or corrupt image are scored on text alone and flagged by their modality.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.errors import DatabaseError, ObjectStoreError, ScoringRunConflictError
from rakuten_ml.models.fusion import class_probabilities
from rakuten_ml.monitoring.performance_estimate import ConfusionSums
from rakuten_ml.promotion.routing import CHALLENGER, CHAMPION, assign_variants
from rakuten_ml.registry.resolve import ResolvedModel, alias_version, load_classifier, resolve_model
from rakuten_ml.resources import Platform
from rakuten_ml.scoring.device import halve_batch_size, onnx_export_cache, tune_image_model
from rakuten_ml.scoring.image_cache import ImageScoreCache, output_tag, prune_image_scores
from rakuten_ml.scoring.metrics import textfile_path, write_textfile
from rakuten_ml.scoring.partitions import Partition, plan_partitions, split_partitions
from rakuten_ml.storage.database import (
    CONNECTION_ERRORS,
    confusion_sums,
    database_errors,
    paired_predictions,
    scoring_partitions,
    scoring_runs,
    upsert,
)
from rakuten_ml.storage.database import predictions as predictions_table

log = logging.getLogger(__name__)

# image_reused: products whose image-model output was read from an earlier run (image_cache), not recomputed;
# paired: products both champion and challenger scored (shadow scoring), disagreed: those they classed apart.
COUNT_KEYS = ("scored", "fused", "text_only", "image_only", "failed", "auto", "challenger", "image_reused", "paired", "disagreed")
DONE, RUNNING, FAILED = "done", "running", "failed"
PAIRED_BATCH = "batch"  # paired_predictions.origin of nightly scoring (serving's is "online")
# One load per worker process and version, not per partition; bounded, since a long-lived Celery worker
# sees every version the registry ever promotes: champion and challenger, the two an A/B run needs.
_MODEL_CACHE: OrderedDict[str, Any] = OrderedDict()
MODEL_CACHE_SIZE = 2
_SNAPSHOT_CACHE: dict[tuple[str, str], pd.DataFrame] = {}  # snapshots are immutable: read once per process


def rerun_hint(run_id: str) -> str:
    """What to do after a run stopped on an outage: resuming is always safe."""
    return (
        f"rerun the same run id (`rakuten-ml score --run-id {run_id}`, or clear the failed DAG tasks): finished "
        "partitions are skipped and predictions are upserted by (run id, product id), so nothing is lost or duplicated"
    )


@contextmanager
def _run_step(platform: Platform, run_id: str, action: str) -> Iterator[None]:
    """An outage inside the block (the database, the object store) is a typed error that names the step and
    says to resume the run; other errors pass unchanged."""
    hint = rerun_hint(run_id)
    try:
        with database_errors(platform.engine, action, then=hint):
            yield
    except (DatabaseError, ObjectStoreError) as exc:
        if hint in str(exc) or type(exc) not in (DatabaseError, ObjectStoreError):
            raise  # already says what to do, or bad data (a missing or invalid key), not an outage
        store = "database" if isinstance(exc, DatabaseError) else "object store"
        raise type(exc)(f"{action} failed: {exc}; once the {store} is back, {hint}") from exc


@dataclass(frozen=True)
class RunModels:
    """The versions a whole run uses, pinned at its start."""

    champion: ResolvedModel
    challenger: ResolvedModel | None = None
    challenger_share: float = 0.0
    salt: str = ""
    shadow: bool = False  # both models score every product (paired A/B test); only with a challenger

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RunModels:
        challenger = payload.get("challenger")
        return cls(
            champion=ResolvedModel(**payload["champion"]),
            challenger=ResolvedModel(**challenger) if challenger else None,
            challenger_share=float(payload.get("challenger_share", 0.0)),
            salt=str(payload.get("salt", "")),
            shadow=bool(payload.get("shadow", False)),  # runs recorded before shadow scoring existed had none
        )


@dataclass(frozen=True)
class RunPlan:
    """What a run is bound to: recorded by its first start, read back by every resume.

    A resumed run scores the snapshot and models it recorded, never "latest": its finished
    partitions were scored on them, and ``scoring_runs`` names them.
    """

    run_id: str
    snapshot_id: str
    models: RunModels
    partitions: list[Partition]
    resumed: bool


@dataclass
class ScoreResult:
    run_id: str
    snapshot_id: str
    model_version: str
    n_partitions: int
    counts: dict[str, int] = field(default_factory=dict)
    parquet_prefix: str = ""
    status: str = DONE  # FAILED while a partition is not scored
    n_partitions_done: int = 0

    @property
    def n_scored(self) -> int:
        return self.counts.get("scored", 0)

    def summary(self) -> dict[str, object]:
        return asdict(self) | {"n_scored": self.n_scored}


def resolve_run_models(platform: Platform, *, version: str | None = None) -> RunModels:
    """Champion (or a pinned version) plus the challenger alias when an A/B test is running."""
    settings = platform.settings
    champion = resolve_model(settings, version=version)
    challenger = None
    if version is None and settings.ab.challenger_share > 0:
        # MLflow gone between the two reads is an error: a run without its challenger would silently stop the A/B test
        found = alias_version(settings, CHALLENGER, then="rerun the scoring (nothing was scored yet)")
        if found is not None and found != champion.version:
            challenger = ResolvedModel(settings.registered_model_name, found, CHALLENGER)
    return RunModels(champion, challenger, settings.ab.challenger_share if challenger else 0.0, settings.ab.salt,
                     shadow=challenger is not None and settings.ab.shadow_scoring)


def _classifier(platform: Platform, model: ResolvedModel) -> Any:
    settings = platform.settings
    key = "|".join(str(part) for part in (settings.mlflow_tracking_uri, model.uri, settings.vision.num_workers,
                                           settings.vision.cpu_bf16, settings.vision.cpu_runtime, settings.vision.cpu_int8))
    if key not in _MODEL_CACHE:
        classifier = load_classifier(platform.settings, model)
        tune_image_model(getattr(classifier, "image_model", None), num_workers=settings.vision.num_workers,
                         cpu_bf16=settings.vision.cpu_bf16, cpu_runtime=settings.vision.cpu_runtime,
                         cpu_int8=settings.vision.cpu_int8, onnx_cache=onnx_export_cache(settings))
        _MODEL_CACHE[key] = classifier
        while len(_MODEL_CACHE) > MODEL_CACHE_SIZE:
            evicted, _ = _MODEL_CACHE.popitem(last=False)
            log.info("model cache full: unloaded %s", evicted.split("|")[1])
    _MODEL_CACHE.move_to_end(key)
    return _MODEL_CACHE[key]


def _snapshot_products(platform: Platform, snapshot_id: str) -> pd.DataFrame:
    key = (platform.store.url, snapshot_id)
    if key not in _SNAPSHOT_CACHE:
        _SNAPSHOT_CACHE.clear()  # keep one snapshot in memory: a run scores one
        _SNAPSHOT_CACHE[key] = load_products(platform.store, snapshot_id)
    return _SNAPSHOT_CACHE[key]


def _predict(classifier: Any, chunk: pd.DataFrame, store: Any, cache: ImageScoreCache | None = None) -> pd.DataFrame:
    """Batched prediction; on a CUDA out-of-memory error, halve the image batch and retry."""
    import torch

    while True:
        try:
            if cache is not None:  # only for a model with an image modality (_image_cache)
                return _predict_reusing_images(classifier, chunk, store, cache)
            images = chunk["image_key"].tolist() if "image" in classifier.modalities else None
            return classifier.predict(chunk[["designation", "description"]], images, store=store)
        except torch.cuda.OutOfMemoryError:
            if not halve_batch_size(classifier.image_model):
                raise


def _predict_reusing_images(classifier: Any, chunk: pd.DataFrame, store: Any, cache: ImageScoreCache) -> pd.DataFrame:
    """:meth:`FusedClassifier.predict`, with the image model run only on photos it has no stored output for."""
    frame = chunk[["designation", "description"]]
    p_text, _, has_text, _ = classifier.modality_probabilities(frame, None, store)
    n_classes = classifier.mapping.n_classes
    keys = chunk["image_key"].tolist()
    digests = chunk["image_sha256"].tolist() if "image_sha256" in chunk else [None] * len(chunk)
    has_image, p_image = cache.lookup(digests, n_classes)
    reused = int(has_image.sum())
    todo = [i for i, key in enumerate(keys) if not has_image[i] and isinstance(key, str)]
    if todo:
        p_new, usable = classifier.image_model.predict_proba_images([keys[i] for i in todo], store=store)
        p_image[todo], has_image[todo] = p_new, usable
        cache.save([digests[i] for i in todo], p_new, usable)
    p_image[~has_image] = 1.0 / n_classes  # what the image model gives an unusable photo
    proba, modality = classifier.fuse(p_text, p_image, has_text, has_image)
    cache.hits += reused  # after the image model succeeded: a CUDA out-of-memory retry does not count twice
    return classifier.result_frame(proba, modality, frame.index)


def _image_cache(platform: Platform, classifier: Any, model: ResolvedModel) -> ImageScoreCache | None:
    if not platform.settings.scoring.image_cache or "image" not in classifier.modalities:
        return None
    tag = output_tag(classifier.image_model)
    return ImageScoreCache(platform.engine, model.name, model.version, tag) if tag else None


def _prediction_rows(run_id: str, chunk: pd.DataFrame, result: pd.DataFrame, model: ResolvedModel, variant: str, at: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": run_id,
            "productid": chunk["productid"].astype("int64").to_numpy(),
            "model_name": model.name,
            "model_version": model.version,
            "variant": variant,
            "prdtypecode": result["prdtypecode"].astype("int64").to_numpy(),
            "confidence": result["probability"].astype(float).to_numpy(),
            "decision": result["decision"].to_numpy(),
            "modality": result["modality"].to_numpy(),
            "scored_at": at,
        }
    )


def _score_subset(platform: Platform, model: ResolvedModel, subset: pd.DataFrame, batch_size: int) -> tuple[pd.DataFrame, int]:
    """One model's results on ``subset`` (same index), in batches; and how many image outputs it reused."""
    classifier = _classifier(platform, model)
    cache = _image_cache(platform, classifier, model)
    parts = [_predict(classifier, subset.iloc[start : start + batch_size], platform.store, cache)
             for start in range(0, len(subset), batch_size)]
    return pd.concat(parts), (cache.hits if cache else 0)


def _paired_rows(run_id: str, chunk: pd.DataFrame, results: dict[str, pd.DataFrame], models: RunModels, at: datetime) -> list[dict[str, Any]]:
    """One row per product both models scored: what the paired A/B test and the disagreement rate read."""
    champion, challenger = results.get(CHAMPION), results.get(CHALLENGER)
    if champion is None or challenger is None or models.challenger is None:
        return []
    frame = pd.DataFrame({
        "source_id": run_id,
        "productid": chunk["productid"].astype("int64").to_numpy(),
        "origin": PAIRED_BATCH,
        "model_name": models.champion.name,
        "champion_version": models.champion.version,
        "challenger_version": models.challenger.version,
        "champion_code": champion["prdtypecode"].astype("int64").to_numpy(),
        "challenger_code": challenger.loc[champion.index, "prdtypecode"].astype("int64").to_numpy(),
        "champion_confidence": champion["probability"].astype(float).to_numpy(),
        "challenger_confidence": challenger.loc[champion.index, "probability"].astype(float).to_numpy(),
        "scored_at": at,
    })
    return frame.to_dict("records")


def _store_confusion_sums(
    platform: Platform, run_id: str, partition_id: int, models: RunModels, results: dict[str, pd.DataFrame], at: datetime
) -> None:
    """The expected confusion counts of each version's fused probabilities: the label-free performance estimate's input."""
    rows = []
    for variant, result in results.items():
        model = models.champion if variant == CHAMPION else models.challenger
        proba, codes = class_probabilities(result)
        if model is None or not codes or result.empty:
            continue
        sums = ConfusionSums.from_probabilities(proba)
        rows.append({"run_id": run_id, "partition_id": partition_id, "model_version": model.version, "model_name": model.name,
                     "n": sums.n, "sums": sums.as_dict() | {"codes": codes, "variant": variant}, "scored_at": at})
    upsert(platform.engine, confusion_sums, rows)


def _counts(scored: pd.DataFrame, n_failed: int) -> dict[str, int]:
    modality = scored["modality"].value_counts()
    return {
        "scored": len(scored),
        "fused": int(modality.get("fused", 0)),
        "text_only": int(modality.get("text", 0)),
        "image_only": int(modality.get("image", 0)),
        "failed": n_failed + int(modality.get("none", 0)),
        "auto": int((scored["decision"] == "auto").sum()),
        "challenger": int((scored["variant"] == CHALLENGER).sum()),
    }


def _partition_state(platform: Platform, run_id: str, partition_id: int) -> dict[str, Any] | None:
    stmt = sa.select(scoring_partitions).where(
        scoring_partitions.c.run_id == sa.bindparam("run_id"), scoring_partitions.c.partition_id == sa.bindparam("pid")
    )
    with platform.engine.connect() as conn:
        row = conn.execute(stmt, {"run_id": run_id, "pid": partition_id}).first()
    return dict(row._mapping) if row else None


def _record_partition(platform: Platform, run_id: str, partition_id: int, status: str, counts: dict[str, int], attempts: int, error: str | None = None) -> None:
    upsert(platform.engine, scoring_partitions, [{
        "run_id": run_id, "partition_id": partition_id, "status": status, "n_scored": counts.get("scored", 0),
        "counts": counts, "attempts": attempts, "error": error, "updated_at": datetime.now(UTC),
    }])


def parquet_prefix(run_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return f"predictions/{safe}"


def score_partition(
    platform: Platform, *, run_id: str, snapshot_id: str, partition: Partition, models: RunModels, batch_size: int = 4096,
    scored_at: datetime | None = None,
) -> dict[str, int]:
    """Score one productid range; a partition already done in this run is skipped (resume).

    A recorded run's models win over ``models`` (a cleared DAG run re-resolves the aliases, and
    one run must not mix versions); a snapshot other than the recorded one is an error.
    ``scored_at`` is the time the predictions stand for (the DAG passes its run's day, so a rerun of a
    night's run keeps that night and the drift check of that day sees them); default now.
    """
    with _run_step(platform, run_id, f"scoring partition {partition.partition_id} of run {run_id!r}"):
        return _score_partition(platform, run_id=run_id, snapshot_id=snapshot_id, partition=partition, models=models,
                                batch_size=batch_size, scored_at=scored_at)


def _score_partition(
    platform: Platform, *, run_id: str, snapshot_id: str, partition: Partition, models: RunModels, batch_size: int,
    scored_at: datetime | None,
) -> dict[str, int]:
    models = _bound_models(platform, run_id, snapshot_id, models)
    state = _partition_state(platform, run_id, partition.partition_id)
    if state and state["status"] == DONE:
        log.info("partition %d of run %s already scored: skipped", partition.partition_id, run_id)
        return dict(state["counts"])
    attempts = (state["attempts"] if state else 0) + 1
    _record_partition(platform, run_id, partition.partition_id, RUNNING, {}, attempts)
    try:
        products = _snapshot_products(platform, snapshot_id)
        chunk_all = products[(products["productid"] >= partition.first_productid) & (products["productid"] <= partition.last_productid)]
        variants = assign_variants(chunk_all["productid"].tolist(), models.challenger_share, models.salt)
        scored_at = scored_at or datetime.now(UTC)
        frames, results = [], {}
        image_reused = 0
        for variant, model in ((CHAMPION, models.champion), (CHALLENGER, models.challenger)):
            # shadow scoring: each model scores every product, each product keeps its own variant's answer
            subset = chunk_all if models.shadow else chunk_all[variants == variant]
            if model is None or subset.empty:
                continue
            result, reused = _score_subset(platform, model, subset, batch_size)
            image_reused += reused
            results[variant] = result
            served = (variants == variant) if models.shadow else slice(None)
            frames.append(_prediction_rows(run_id, subset[served], result[served], model, variant, scored_at))
        scored = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c.name for c in predictions_table.columns])
        upsert(platform.engine, predictions_table, scored.to_dict("records"))
        paired = _paired_rows(run_id, chunk_all, results, models, scored_at) if models.shadow else []
        upsert(platform.engine, paired_predictions, paired)
        _store_confusion_sums(platform, run_id, partition.partition_id, models, results, scored_at)
        buffer = io.BytesIO()
        scored.to_parquet(buffer, index=False)
        platform.store.put_bytes(f"{parquet_prefix(run_id)}/part-{partition.partition_id:05d}.parquet", buffer.getvalue())
        counts = _counts(scored, n_failed=len(chunk_all) - len(scored)) | {
            "image_reused": image_reused, "paired": len(paired),
            "disagreed": sum(row["champion_code"] != row["challenger_code"] for row in paired),
        }
    except Exception as exc:
        try:
            _record_partition(platform, run_id, partition.partition_id, FAILED, {}, attempts, f"{type(exc).__name__}: {exc}"[:2000])
        except (DatabaseError, *CONNECTION_ERRORS) as record_exc:
            # the database is the outage: the partition stays 'running' (not done), which a resume rescores just the same
            log.warning("partition %d of run %s failed and the failure could not be recorded: %s", partition.partition_id, run_id, record_exc)
        raise
    _record_partition(platform, run_id, partition.partition_id, DONE, counts, attempts)
    log.info("partition %d of run %s: %s", partition.partition_id, run_id, counts)
    return counts


def recorded_run(platform: Platform, run_id: str) -> dict[str, Any] | None:
    """The ``scoring_runs`` row of ``run_id``, or None for a run never started."""
    stmt = sa.select(scoring_runs).where(scoring_runs.c.run_id == sa.bindparam("run_id"))
    with database_errors(platform.engine, f"reading scoring run {run_id!r}", then=rerun_hint(run_id)), platform.engine.connect() as conn:
        row = conn.execute(stmt, {"run_id": run_id}).first()
    return dict(row._mapping) if row else None


def _bound_models(platform: Platform, run_id: str, snapshot_id: str, models: RunModels) -> RunModels:
    """The models ``run_id`` recorded (``models`` when it recorded none), after checking its snapshot."""
    recorded = recorded_run(platform, run_id)
    if recorded is None:
        return models
    _check_snapshot(recorded, snapshot_id)
    bound = RunModels.from_dict(recorded["models"])
    if bound != models:
        log.warning("run %s scores with the models it recorded (%s), not %s", run_id, _versions(bound), _versions(models))
    return bound


def _versions(models: RunModels) -> str:
    challenger = f", challenger {models.challenger.version}" if models.challenger else ""
    return f"champion {models.champion.version}{challenger}"


def _check_snapshot(recorded: dict[str, Any], snapshot_id: str | None) -> None:
    """An explicit snapshot must be the one the run recorded: a run id names one scoring of one snapshot."""
    if snapshot_id and snapshot_id != recorded["snapshot_id"]:
        raise ScoringRunConflictError(
            f"scoring run {recorded['run_id']!r} was started on snapshot {recorded['snapshot_id']!r}, not {snapshot_id!r}; "
            "to score another snapshot use a new run id (omit the snapshot to resume this run as recorded)"
        )


def _check_model(recorded: dict[str, Any], model: ResolvedModel | None) -> None:
    """A pinned model must be the champion the run recorded: resuming never swaps the model mid-run."""
    champion = RunModels.from_dict(recorded["models"]).champion
    if model is not None and (model.name, model.version) != (champion.name, champion.version):
        raise ScoringRunConflictError(
            f"scoring run {recorded['run_id']!r} was started with {champion.name} version {champion.version}, not "
            f"version {model.version}; to score with another version use a new run id (omit the version to resume this run)"
        )


def _record_new_run(platform: Platform, *, run_id: str, snapshot_id: str | None, models: RunModels, partition_size: int) -> dict[str, Any]:
    """Insert the run's row and read it back: when two starts race, both bind to the one that won."""
    snapshot_id = snapshot_id or latest_snapshot_id(platform.engine)
    upsert(platform.engine, scoring_runs, [{
        "run_id": run_id, "snapshot_id": snapshot_id, "models": models.as_dict(),
        "n_partitions": len(plan_partitions(_snapshot_products(platform, snapshot_id)["productid"].to_numpy(), partition_size)),
        "status": RUNNING, "counts": {}, "started_at": datetime.now(UTC), "finished_at": None,
    }], update=False)
    recorded = recorded_run(platform, run_id)
    if recorded is None:
        raise DatabaseError(f"scoring run {run_id!r} is not in scoring_runs right after its insert; check the database URL")
    return recorded


def plan_run(platform: Platform, *, run_id: str, snapshot_id: str | None, models: RunModels, partition_size: int) -> RunPlan:
    """Record a new run, or bind to the one already recorded under ``run_id`` (a resume).

    A resume keeps the run's snapshot, models and partitions (its recorded count, whatever
    ``partition_size`` says), so its finished partitions are the ones it skips. Raises
    :class:`ScoringRunConflictError` when ``snapshot_id`` is given and is not the run's.
    """
    with _run_step(platform, run_id, f"planning scoring run {run_id!r}"):
        return _plan_run(platform, run_id=run_id, snapshot_id=snapshot_id, models=models, partition_size=partition_size)


def _plan_run(platform: Platform, *, run_id: str, snapshot_id: str | None, models: RunModels, partition_size: int) -> RunPlan:
    recorded = recorded_run(platform, run_id)
    resumed = recorded is not None
    if recorded is None:
        recorded = _record_new_run(platform, run_id=run_id, snapshot_id=snapshot_id, models=models, partition_size=partition_size)
    _check_snapshot(recorded, snapshot_id)
    bound_models = RunModels.from_dict(recorded["models"])
    if resumed:
        log.info("run %s resumes on its recorded snapshot %s in %d partitions with %s", run_id, recorded["snapshot_id"],
                 recorded["n_partitions"], _versions(bound_models))
    products = _snapshot_products(platform, recorded["snapshot_id"])
    partitions = split_partitions(products["productid"].to_numpy(), recorded["n_partitions"])
    return RunPlan(run_id, recorded["snapshot_id"], bound_models, partitions, resumed)


def start_run(platform: Platform, *, run_id: str, snapshot_id: str | None, models: RunModels, partition_size: int) -> tuple[str, list[Partition]]:
    """:func:`plan_run` as (snapshot id, partitions), the DAG's plan task's shape; a resumed run keeps its start time."""
    plan = plan_run(platform, run_id=run_id, snapshot_id=snapshot_id, models=models, partition_size=partition_size)
    return plan.snapshot_id, plan.partitions


def finish_run(platform: Platform, *, run_id: str) -> ScoreResult:
    """Add up the partitions' counts; the run is done only when every partition is."""
    with _run_step(platform, run_id, f"finishing scoring run {run_id!r}"):
        return _finish_run(platform, run_id=run_id)


def _finish_run(platform: Platform, *, run_id: str) -> ScoreResult:
    with platform.engine.connect() as conn:
        run = conn.execute(sa.select(scoring_runs).where(scoring_runs.c.run_id == sa.bindparam("r")), {"r": run_id}).one()._mapping
        parts = [dict(r._mapping) for r in conn.execute(sa.select(scoring_partitions).where(scoring_partitions.c.run_id == sa.bindparam("r")), {"r": run_id})]
    counts = {key: sum(int(p["counts"].get(key, 0)) for p in parts) for key in COUNT_KEYS}
    n_done = len([p for p in parts if p["status"] == DONE])
    complete = n_done == run["n_partitions"]
    with platform.engine.begin() as conn:
        conn.execute(
            sa.update(scoring_runs).where(scoring_runs.c.run_id == sa.bindparam("r"))
            .values(status=sa.bindparam("s"), counts=sa.bindparam("c"), finished_at=sa.bindparam("f")),
            {"r": run_id, "s": DONE if complete else FAILED, "c": counts, "f": datetime.now(UTC)},
        )
    _write_metrics(platform)
    models = RunModels.from_dict(run["models"])
    if complete and models.champion.alias == CHAMPION:  # a run that follows the aliases retires older versions' outputs
        keep = [models.champion.version, *([models.challenger.version] if models.challenger else [])]
        prune_image_scores(platform.engine, models.champion.name, keep)
    return ScoreResult(run_id, run["snapshot_id"], models.champion.version, run["n_partitions"], counts, parquet_prefix(run_id),
                       DONE if complete else FAILED, n_done)


def _write_metrics(platform: Platform) -> None:
    """Refresh the Prometheus textfile; a metrics folder that cannot be written never fails the run."""
    try:
        write_textfile(platform.engine, textfile_path(platform.settings))
    except OSError as exc:
        log.warning("batch scoring metrics not written (%s); dashboards show the previous run", exc)


def score_products(
    platform: Platform,
    *,
    run_id: str,
    snapshot_id: str | None = None,
    model: ResolvedModel | None = None,
    partition_size: int = 20_000,
) -> ScoreResult:
    """The whole run in one process (CLI, tests); the DAG runs the same steps as mapped tasks.

    A ``run_id`` already recorded resumes as recorded (its snapshot and models, whatever is
    latest now); an explicit ``snapshot_id`` or ``model`` that differs from it raises
    :class:`ScoringRunConflictError`.
    """
    with _run_step(platform, run_id, f"scoring run {run_id!r}"):
        return _score_products(platform, run_id=run_id, snapshot_id=snapshot_id, model=model, partition_size=partition_size)


def _score_products(
    platform: Platform, *, run_id: str, snapshot_id: str | None, model: ResolvedModel | None, partition_size: int,
) -> ScoreResult:
    recorded = recorded_run(platform, run_id)
    if recorded is not None:
        _check_model(recorded, model)
        models = RunModels.from_dict(recorded["models"])
    else:
        models = RunModels(model) if model is not None else resolve_run_models(platform)
    plan = plan_run(platform, run_id=run_id, snapshot_id=snapshot_id, models=models, partition_size=partition_size)
    for partition in plan.partitions:
        score_partition(platform, run_id=run_id, snapshot_id=plan.snapshot_id, partition=partition, models=plan.models)
    result = finish_run(platform, run_id=run_id)
    log.info("scored run %s: %s", run_id, result.summary())
    return result
