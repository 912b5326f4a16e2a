"""Online predictions written to ``prediction_log`` off the request path, in batches.

Requests only put rows on a bounded queue; one thread writes them every ``batch_size`` rows or
``flush_interval_s`` seconds, and once more on shutdown. The log feeds A/B evaluation and drift
monitoring, which tolerate a gap, so a slow or dead database drops rows (logged and counted)
instead of slowing or failing a prediction.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from rakuten_ml.storage.database import prediction_log, upsert
from serving.metrics import ServingMetrics
from serving.queues import wait_drained

log = logging.getLogger(__name__)

# About a minute of traffic at the seed's 100 products/s; beyond it memory matters more than rows.
DEFAULT_MAX_QUEUE = 10_000
# One warning per this many seconds while the database is failing, not one per batch.
WARN_EVERY_S = 30.0

_STOP = object()


class PredictionLogger:
    """Bounded queue + writer thread; ``log`` never blocks and never raises."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        *,
        batch_size: int = 200,
        flush_interval_s: float = 2.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self._engine_factory = engine_factory
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.metrics = metrics
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            self._thread.start()

    def log(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for writing; a full queue drops them (counted) rather than wait."""
        for i, row in enumerate(rows):
            try:
                self._queue.put_nowait(dict(row))
            except queue.Full:
                self._drop(len(rows) - i, "queue full")
                break
        self._gauge()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row is written or dropped (tests, shutdown); False on timeout."""
        return wait_drained(self._queue, self._thread, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("prediction log queue still full at shutdown; %d rows are lost", self._queue.qsize())
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[dict[str, Any]] = []
            deadline: float | None = None
            while len(batch) < self.batch_size:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break  # flush interval elapsed since the batch's first row
                if item is _STOP:
                    self._queue.task_done()
                    stopping = True
                    break
                batch.append(item)
                if deadline is None:
                    deadline = time.monotonic() + self.flush_interval_s
            if batch:
                self._write(batch)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            upsert(self._engine_factory(), prediction_log, batch, update=False)
        except Exception as exc:  # noqa: BLE001 - a dead database must never take serving down
            self._drop(len(batch), f"{type(exc).__name__}: {str(exc)[:300]}")  # SQL errors echo every bound row
        else:
            self.written += len(batch)
            if self.metrics is not None:
                self.metrics.log_rows.labels("written").inc(len(batch))
        finally:
            for _ in batch:
                self._queue.task_done()
            self._gauge()

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        if self.metrics is not None:
            self.metrics.log_rows.labels("dropped").inc(n)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning("dropped %d prediction_log rows (%d in total so far): %s", n, self.dropped, why)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.log_queue.set(self._queue.qsize())
