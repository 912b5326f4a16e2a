"""Adaptive micro-batching: one inference thread per worker predicts concurrent requests together.

Request threads hand their products to :class:`MicroBatcher` and wait. The inference thread takes
every job already queued for the same classifier (up to ``max_products`` rows) and runs one
``classifier.predict`` over all of them: a lone request is served at once, and under load the
batch grows by itself, which is where the model's per-call cost is amortised (one backbone pass
for all images in flight, one vectorised TF-IDF transform). One thread also means torch's
intra-op threads are never oversubscribed by many concurrent forward passes, and never a
half-placed network under a concurrent one.

A batch that fails is retried job by job, so one request's failure never fails its neighbours.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

_STOP = object()


class BatcherClosedError(RuntimeError):
    """The app is shutting down: no new inference is accepted."""


@dataclass
class _Job:
    classifier: Any
    frame: pd.DataFrame
    images: list[bytes | None]
    future: Future = field(default_factory=Future)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def has_images(self) -> bool:
        return any(image is not None for image in self.images)


class InFlight:
    """How many requests a route is serving now: the event loop counts, the inference thread reads."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1

    def __call__(self) -> int:
        return self._count


class MicroBatcher:
    """``predict(classifier, frame, images)`` from any thread; batches are run on one thread.

    ``requests_in_flight`` (the number of predict requests the server holds now, see
    :class:`InFlight`) ends a batch's wait for company early: once every request in flight has
    its job in the batch, nobody else is coming and waiting would only leave the core idle.
    """

    def __init__(
        self,
        *,
        max_products: int = 64,
        max_wait_s: float = 0.0,
        metrics: ServingMetrics | None = None,
        requests_in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.max_products = max(1, max_products)
        self.max_wait_s = max(0.0, max_wait_s)
        self.requests_in_flight = requests_in_flight
        self.metrics = metrics
        self._queue: queue.Queue[Any] = queue.Queue()
        self._backlog: collections.deque[_Job] = collections.deque()  # taken off the queue, other classifier
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start (or, after ``close``, restart: an app's lifespan may run again) the inference thread."""
        with self._lock:
            self._closed = False
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closed:
            raise BatcherClosedError("the inference thread was stopped; the app is shutting down")
        if self._thread is None or not self._thread.is_alive():
            self._queue = queue.Queue()  # a stopped thread's queue holds at most its stop marker
            self._thread = threading.Thread(target=self._run, name="inference-batcher", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish every accepted job, then stop the thread; later ``predict`` calls are refused."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None and thread.is_alive():
                self._queue.put(_STOP)  # after every accepted job: jobs are queued under this lock
        if thread is not None:
            thread.join(timeout_s)

    def predict(self, classifier: Any, frame: pd.DataFrame, images: list[bytes | None]) -> pd.DataFrame:
        """``classifier.predict`` of these rows, batched with whatever else is in flight."""
        if len(frame) != len(images):
            raise ValueError(f"{len(frame)} rows but {len(images)} images")
        job = _Job(classifier, frame.reset_index(drop=True), list(images))
        with self._lock:
            self._start_locked()  # lazily, so an app used without its lifespan (tests) still predicts
            self._queue.put(job)
        return job.future.result()

    # ------------------------------------------------------------------ inference thread
    def _run(self) -> None:
        while True:
            first = self._backlog.popleft() if self._backlog else self._queue.get()
            if first is _STOP:
                self._drain_backlog()
                return
            batch = self._gather(first)
            try:
                self._execute(batch)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any bug: waiters get the error
                log.exception("inference thread: unexpected error on a batch of %d requests", len(batch))
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _gather(self, first: _Job) -> list[_Job]:
        """``first`` plus the queued jobs for the same classifier that fit in ``max_products``.

        A batch with images waits up to ``max_wait_s`` for company: one image-model call costs tens
        of milliseconds whatever its size, so sharing it is worth a short wait. The wait ends early
        once the batch holds a job for every request in flight (nobody else is coming); a request
        that leaves without a job (a 422) does not end it, the deadline does. A text-only call costs
        a few milliseconds: it takes what is queued and never waits.
        """
        batch, rows = [first], first.rows
        wait_s = self.max_wait_s if first.has_images else 0.0
        deadline = time.monotonic() + wait_s
        while rows < self.max_products:
            # Checked as jobs arrive, not by polling: a thread woken every millisecond takes the GIL
            # from the event loop parsing the next requests, and served fewer photos per second.
            remaining = 0.0 if self._everyone_in(batch) else deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                self._queue.put(_STOP)  # handled after this batch
                break
            if job.classifier is first.classifier and rows + job.rows <= self.max_products:
                batch.append(job)
                rows += job.rows
            else:
                self._backlog.append(job)
                if job.classifier is first.classifier:
                    break  # full: keep arrival order for the next batch
        return batch

    def _everyone_in(self, batch: list[_Job]) -> bool:
        return self.requests_in_flight is not None and len(batch) >= self.requests_in_flight()

    def _execute(self, batch: list[_Job]) -> None:
        if self.metrics is not None:
            self.metrics.inference_batch.observe(sum(job.rows for job in batch))
        try:
            results = self._predict_together(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the failing job: retry one by one
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            log.warning("a batch of %d requests failed (%s: %s); retrying them one by one", len(batch), type(exc).__name__, exc)
            for job in batch:
                self._execute([job])
            return
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)

    @staticmethod
    def _predict_together(batch: list[_Job]) -> list[pd.DataFrame]:
        frame = pd.concat([job.frame for job in batch], ignore_index=True) if len(batch) > 1 else batch[0].frame
        images = [image for job in batch for image in job.images] if any(job.has_images for job in batch) else None
        result = batch[0].classifier.predict(frame, images)
        if len(result) != len(frame):
            raise RuntimeError(f"the classifier returned {len(result)} rows for {len(frame)} products")
        parts, start = [], 0
        for job in batch:
            parts.append(result.iloc[start : start + job.rows].reset_index(drop=True))
            start += job.rows
        return parts

    def _drain_backlog(self) -> None:
        """After the stop: run what was already accepted, refuse nothing silently."""
        pending = list(self._backlog)
        self._backlog.clear()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                pending.append(job)
        for job in pending:
            self._execute([job])
