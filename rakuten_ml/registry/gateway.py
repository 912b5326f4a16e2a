"""The registry gateway: the MLflow calls the platform makes on its registered model, each with an
explicit tracking URI and the one error mapping of :mod:`rakuten_ml.registry.errors`.

Promotion moves aliases only through :mod:`rakuten_ml.promotion.aliases`, which adds the lock and
the audit on top of :meth:`ModelRegistry.move`; everything else here reads, or writes tags and run
artifacts that are a convenience copy.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rakuten_ml.errors import RegistryNotFoundError
from rakuten_ml.registry.client import mlflow_client
from rakuten_ml.registry.contract import CHALLENGER, CHAMPION, LAST_MOVE_TAG, PREVIOUS_CHAMPION
from rakuten_ml.registry.errors import registry_errors
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)

ALIASES: tuple[str, ...] = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryState:
    """Where the three aliases point (None = alias not set); ``registered`` is False before the first version."""

    model_name: str
    champion: str | None = None
    challenger: str | None = None
    previous_champion: str | None = None
    registered: bool = True

    def get(self, alias: str) -> str | None:
        return {CHAMPION: self.champion, CHALLENGER: self.challenger, PREVIOUS_CHAMPION: self.previous_champion}[alias]

    def as_dict(self) -> dict[str, str | None]:
        return {alias: self.get(alias) for alias in ALIASES}


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]
    created_at: datetime | None


class ModelRegistry:
    """The few MLflow registry calls promotion needs; every MLflow failure becomes :class:`RegistryError`."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.registered_model_name
        self.uri = settings.mlflow_tracking_uri
        self.client = mlflow_client(settings)

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with registry_errors(self.uri, what):
            return fn(*args, **kwargs)

    def _unless_unregistered(self, default: T, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`_call`, but ``default`` while the model is not registered: a fresh install, not an error."""
        try:
            return self._call(what, fn, *args, **kwargs)
        except RegistryNotFoundError:
            log.info("%s is not registered yet (%s)", self.name, what)
            return default

    def state(self) -> RegistryState:
        """The aliases; an empty state, ``registered=False``, before the first version is registered."""
        return self.state_and_last_move()[0]

    def state_and_last_move(self) -> tuple[RegistryState, dict[str, Any] | None]:
        """The aliases and the write-ahead record of the last move (None when there is none), in one read."""
        model = self._unless_unregistered(None, f"read registered model {self.name!r}", self.client.get_registered_model, self.name)
        if model is None:
            return RegistryState(self.name, registered=False), None
        aliases = {k: str(v) for k, v in (model.aliases or {}).items()}
        state = RegistryState(self.name, aliases.get(CHAMPION), aliases.get(CHALLENGER), aliases.get(PREVIOUS_CHAMPION))
        raw = (model.tags or {}).get(LAST_MOVE_TAG)
        try:
            record = json.loads(raw) if raw else None
        except ValueError:
            log.warning("%s: unreadable %s tag ignored: %r", self.name, LAST_MOVE_TAG, str(raw)[:200])
            record = None
        return state, record if isinstance(record, dict) else None

    def write_last_move(self, record: Mapping[str, Any]) -> None:
        self._call(
            f"record the alias move {record.get('move_id')} of {self.name!r}",
            self.client.set_registered_model_tag, self.name, LAST_MOVE_TAG, json.dumps(dict(record), sort_keys=True),
        )

    def version(self, version: str) -> VersionInfo:
        mv = self._call(f"read {self.name!r} version {version}", self.client.get_model_version, self.name, str(version))
        return _version_info(mv)

    def versions(self, limit: int = 20) -> list[VersionInfo]:
        """Newest first; empty while the model is not registered."""
        found: list[Any] = self._unless_unregistered(
            [],
            f"list versions of {self.name!r}",
            self.client.search_model_versions,
            f"name='{self.name}'",
            order_by=["version_number DESC"],
            max_results=limit,
        )
        return [_version_info(mv) for mv in found]

    def move(self, alias: str, version: str | None) -> None:
        """Point ``alias`` at ``version``; None removes the alias."""
        if version is None:
            self._call(f"remove alias {alias!r} of {self.name!r}", self.client.delete_registered_model_alias, self.name, alias)
        else:
            self._call(
                f"set alias {alias!r} of {self.name!r} to {version}", self.client.set_registered_model_alias, self.name, alias, str(version)
            )

    def run_params(self, run_id: str) -> dict[str, str]:
        run = self._call(f"read run {run_id}", self.client.get_run, run_id)
        return dict(run.data.params)

    def set_tags(self, version: str, tags: Mapping[str, object]) -> None:
        for key, value in tags.items():
            self._call(f"tag {self.name!r} version {version}", self.client.set_model_version_tag, self.name, str(version), key, str(value))

    def log_run_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
        self._call(f"log metrics on run {run_id}", self.client.log_batch, run_id, metrics=batch)

    def log_run_dict(self, run_id: str, payload: dict[str, Any], path: str) -> None:
        self._call(f"log {path} on run {run_id}", self.client.log_dict, run_id, payload, path)

    def load_run_dict(self, run_id: str, path: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            local = self._call(f"download {path} of run {run_id}", self.client.download_artifacts, run_id, path, tmp)
            return dict(json.loads(Path(local).read_text(encoding="utf-8")))


def _version_info(mv: Any) -> VersionInfo:
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC) if mv.creation_timestamp else None
    return VersionInfo(str(mv.version), mv.run_id or None, str(mv.source), dict(mv.tags or {}), created)
