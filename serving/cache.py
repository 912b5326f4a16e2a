"""Optional Redis cache of predictions keyed by (model name, model version, input hash).

The model version is in the key, so a hot swap needs no invalidation: the new version simply
misses. Redis is an accelerator, never a dependency: any Redis error counts as a miss, and
after one the cache stays off for a few seconds so a dead Redis costs one timeout, not one
per request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rakuten_ml.settings import Settings
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

# Loopback or same-zone Redis answers in about a millisecond; past this, serving without it is faster.
SOCKET_TIMEOUT_S = 0.25
# After a Redis error, how long to predict without the cache before trying Redis again.
BACKOFF_S = 5.0


def input_digest(designation: str, description: str | None, image: bytes | None) -> str:
    """sha256 of the normalised input.

    Normalisation is only what no model can tell apart (missing vs empty description, outer
    whitespace): the model owns its text cleaning, and a cache must never answer what the
    model itself would not.
    """
    image_hash = hashlib.sha256(image).hexdigest() if image else ""
    canonical = json.dumps([designation.strip(), (description or "").strip(), image_hash], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class PredictionCache:
    """``get_many`` / ``put_many`` over Redis; a disabled cache (``client=None``) always misses."""

    def __init__(self, client: Any | None, *, prefix: str, ttl_s: int, metrics: ServingMetrics | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.metrics = metrics
        self._down_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: ServingMetrics | None = None) -> PredictionCache:
        client = None
        if settings.serving.cache_enabled:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # no retries (redis-py's default backs off for seconds): a miss costs less than waiting
            client = redis.Redis.from_url(
                settings.serving.redis_url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
        return cls(client, prefix=settings.serving.cache_prefix, ttl_s=settings.serving.cache_ttl_s, metrics=metrics)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def key(self, model_name: str, model_version: str, digest: str) -> str:
        return f"{self.prefix}:{model_name}:{model_version}:{digest}"

    def get_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        if not keys or not self._usable():
            return [None] * len(keys)
        try:
            raw = self.client.mget(list(keys))  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - redis-py raises RedisError and OSError subclasses
            self._fail("read", exc)
            self._count("error", len(keys))
            return [None] * len(keys)
        values = [self._decode(v) for v in raw]
        hits = sum(v is not None for v in values)
        self._count("hit", hits)
        self._count("miss", len(keys) - hits)
        return values

    def put_many(self, items: Mapping[str, Mapping[str, Any]]) -> None:
        if not items or not self._usable():
            return
        try:
            pipe = self.client.pipeline(transaction=False)  # type: ignore[union-attr]
            for key, value in items.items():
                pipe.set(key, json.dumps(value, separators=(",", ":")), ex=self.ttl_s)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - see get_many
            self._fail("write", exc)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def _usable(self) -> bool:
        return self.client is not None and time.monotonic() >= self._down_until

    def _fail(self, action: str, exc: Exception) -> None:
        with self._lock:
            first = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + BACKOFF_S
        if first:
            log.warning("prediction cache %s failed (%s: %s); predicting without it for %.0fs", action, type(exc).__name__, exc, BACKOFF_S)

    def _count(self, result: str, n: int) -> None:
        if self.metrics is not None and n:
            self.metrics.cache.labels(result).inc(n)

    @staticmethod
    def _decode(raw: bytes | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None  # a foreign or corrupt entry is a miss, and put_many overwrites it
        return value if isinstance(value, dict) else None
