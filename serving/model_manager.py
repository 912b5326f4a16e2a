"""Which classifiers the app serves: the ``champion`` and ``challenger`` aliases, hot-swapped.

A background thread re-reads both aliases every ``serving_poll_interval_s``. A new version is
loaded and smoke-tested *beside* the serving one, then published by replacing one immutable
:class:`ModelSet` reference, so a request that already holds the old set finishes on it and
none ever sees half a swap. A failed resolve or load keeps what is served and says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from rakuten_ml.errors import ModelLoadError
from rakuten_ml.promotion.routing import CHALLENGER, CHAMPION
from rakuten_ml.registry.resolve import ResolvedModel, alias_version, load_classifier, resolve_model
from rakuten_ml.scoring.device import onnx_export_cache, tune_image_model
from rakuten_ml.settings import Settings
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

VARIANTS = (CHAMPION, CHALLENGER)
SERVING_PROBE_BATCH = 4  # the typical micro-batch of a worker under load (serving/batcher.py)

Resolver = Callable[[Settings, str], ResolvedModel | None]
Loader = Callable[[Settings, ResolvedModel], Any]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str | None  # None: no alias was set and the newest version was taken
    variant: str
    classifier: Any = field(repr=False, compare=False)
    loaded_at: float

    @property
    def modalities(self) -> list[str]:
        return list(getattr(self.classifier, "modalities", []))


@dataclass(frozen=True)
class ModelSet:
    """What one request predicts with; replaced as a whole, never mutated."""

    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None

    def get(self, variant: str) -> LoadedModel | None:
        return self.challenger if variant == CHALLENGER else self.champion


@dataclass(frozen=True)
class RefreshReport:
    changed: tuple[str, ...]
    errors: dict[str, str]


def resolve_variant(settings: Settings, variant: str) -> ResolvedModel | None:
    """The version behind a variant's alias; the champion falls back to the newest version.

    A missing challenger alias means "no experiment running" (None), while an unreachable
    registry raises, so the caller keeps serving what it has.
    """
    if variant == CHAMPION:
        return resolve_model(settings, alias=CHAMPION)
    found = alias_version(settings, variant, then="the server keeps serving the models it has")
    return None if found is None else ResolvedModel(settings.registered_model_name, found, variant)


def load_checked(settings: Settings, resolved: ResolvedModel) -> Any:
    """Load a classifier and predict one product with it: a model that cannot predict is never published."""
    classifier = load_classifier(settings, resolved)
    # Requests carry a few images: decoding them in DataLoader worker processes would cost more
    # than it saves, so serving decodes in-process (on the dataset's thread pool).
    # ONNX Runtime sessions are timed on micro-batches of a few requests, the batches serving runs.
    tune_image_model(getattr(classifier, "image_model", None), num_workers=0, cpu_bf16=settings.vision.cpu_bf16,
                     cpu_runtime=settings.vision.cpu_runtime, cpu_int8=settings.vision.cpu_int8,
                     probe_batch=SERVING_PROBE_BATCH, onnx_cache=onnx_export_cache(settings))
    try:
        out = classifier.predict(pd.DataFrame({"designation": ["smoke test"], "description": [""]}), None)
        missing = {"prdtypecode", "probability", "decision", "modality"} - set(out.columns)
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign artifact means "not servable"
        raise ModelLoadError(f"{resolved.uri} loads but cannot predict: {type(exc).__name__}: {exc}") from exc
    if missing or len(out) != 1:
        raise ModelLoadError(f"{resolved.uri} predicts without the columns {sorted(missing)}; not serving it")
    return classifier


class ModelManager:
    """Holds the served :class:`ModelSet`, the runtime challenger share, and the alias poller."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: ServingMetrics | None = None,
        resolver: Resolver = resolve_variant,
        loader: Loader = load_checked,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._resolve = resolver
        self._load = loader
        self._models = ModelSet()
        self._share = settings.ab.challenger_share
        self._refresh_lock = threading.Lock()  # one refresh at a time; requests never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_refresh_at: float | None = None
        self.last_errors: dict[str, str] = {}
        if metrics is not None:
            metrics.challenger_share.set(self._share)

    @property
    def models(self) -> ModelSet:
        """The current set; read it once per request and use that object throughout."""
        return self._models

    @property
    def ready(self) -> bool:
        return self._models.champion is not None

    @property
    def challenger_share(self) -> float:
        return self._share

    def set_challenger_share(self, share: float) -> float:
        """Change the challenger's traffic share for this process; returns the previous share."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"challenger share must be within [0, 1], got {share}")
        previous, self._share = self._share, share
        if self.metrics is not None:
            self.metrics.challenger_share.set(share)
        log.info("challenger share changed from %.3f to %.3f", previous, share)
        return previous

    def refresh(self, *, force: bool = False) -> RefreshReport:
        """Re-read both aliases and load what moved; any failure keeps the served model."""
        with self._refresh_lock:
            current = self._models
            updates: dict[str, LoadedModel | None] = {}
            errors: dict[str, str] = {}
            for variant in VARIANTS:
                try:
                    outcome = self._refresh_variant(variant, current, updates, force)
                except Exception as exc:  # noqa: BLE001 - keeping the current model is the point
                    errors[variant] = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
                    log.error("keeping %s %s: %s", variant, _describe(current.get(variant)), errors[variant])
                    self._count_load(variant, "failure")
                    continue
                if outcome is not _UNCHANGED:
                    updates[variant] = outcome  # type: ignore[assignment]
            if updates:
                self._models = replace(current, **updates)  # the swap: one reference assignment
                for variant, model in updates.items():
                    self._publish(variant, current.get(variant), model)
            self.last_refresh_at = time.time()
            self.last_errors = errors
            return RefreshReport(tuple(updates), errors)

    def _refresh_variant(
        self, variant: str, current: ModelSet, updates: dict[str, LoadedModel | None], force: bool
    ) -> LoadedModel | None | object:
        resolved = self._resolve(self.settings, variant)
        served = current.get(variant)
        if resolved is None:
            return None if served is not None else _UNCHANGED
        if served is not None and served.version == resolved.version and served.name == resolved.name and not force:
            return _UNCHANGED
        # the other variant may already hold this very version: share it instead of loading twice
        siblings = [m for m in (*updates.values(), *(current.get(v) for v in VARIANTS)) if m is not None]
        twin = next((m for m in siblings if (m.name, m.version) == (resolved.name, resolved.version)), None)
        if twin is not None and not force:
            classifier = twin.classifier
        else:
            started = time.perf_counter()
            classifier = self._load(self.settings, resolved)
            log.info("loaded %s v%s for %s in %.2fs", resolved.name, resolved.version, variant, time.perf_counter() - started)
        self._count_load(variant, "success")
        return LoadedModel(resolved.name, resolved.version, resolved.alias, variant, classifier, time.time())

    def _publish(self, variant: str, before: LoadedModel | None, after: LoadedModel | None) -> None:
        log.info("%s now serves %s (was %s)", variant, _describe(after), _describe(before))
        if self.metrics is None:
            return
        self.metrics.set_model(variant, after.name if after else None, after.version if after else None, after.loaded_at if after else None)
        if variant == CHAMPION and before is not None and after is not None and _is_older(after, before):
            self.metrics.rollbacks.labels(after.name).inc()
            log.warning("champion rolled back from v%s to v%s", before.version, after.version)

    def _count_load(self, variant: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.model_loads.labels(variant, outcome).inc()

    def start(self) -> None:
        """Load what the aliases point at now, then keep polling in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="model-alias-poller", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.serving.poll_interval_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the poller must outlive any single bad poll
                log.exception("model alias poll failed; retrying in %.1fs", self.settings.serving.poll_interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


_UNCHANGED = object()


def _describe(model: LoadedModel | None) -> str:
    return f"{model.name} v{model.version}" if model is not None else "nothing"


def _is_older(after: LoadedModel, before: LoadedModel) -> bool:
    """A champion that moves to a lower version number of the same model is a rollback."""
    return after.name == before.name and after.version.isdigit() and before.version.isdigit() and int(after.version) < int(before.version)
