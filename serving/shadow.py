"""Shadow scoring: the model that did not answer a live product predicts it too, after the response.

While a challenger is loaded, each product with a ``productid`` (a ``shadow_share`` slice of them,
chosen by hash) is queued with the answer the client got; one thread, which yields to clients, predicts it with
the other variant's classifier and writes the pair to ``paired_predictions`` (origin ``online``),
which feeds the paired A/B test and the disagreement rate. The thread never uses the batcher's
inference thread, defers each batch while the worker serves predict requests (which also makes the
batches big, hence cheap per product), and runs torch on one thread, so client requests keep the
CPU. A full queue, a failing model or a dead database drops pairs (counted, one warning per 30 s);
nothing here blocks or fails a prediction.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from rakuten_ml.promotion.routing import CHAMPION, bucket
from rakuten_ml.storage.database import paired_predictions, upsert
from serving.metrics import ServingMetrics
from serving.model_manager import LoadedModel, ModelSet
from serving.prediction_logger import WARN_EVERY_S
from serving.queues import wait_drained
from serving.schemas import PredictionOut, ProductIn

log = logging.getLogger(__name__)

PAIRED_ONLINE = "online"  # paired_predictions.origin of serving (nightly scoring writes "batch")
# Salted apart from the A/B hash, so which products are shadowed is independent of which variant answered.
SHADOW_SALT = "shadow"
# One classifier call at most this many products: the batcher's default micro-batch, so a shadow call
# holds the GIL no longer than one client batch does.
MAX_BATCH_PRODUCTS = 64
# How often the deferring thread looks whether clients are still in flight: rarely enough not to take
# the GIL from the event loop, as a 1 ms poll did in the batcher (serving/batcher.py).
IDLE_POLL_S = 0.01
# Longest a shadow batch defers to busy clients; then it runs anyway, so a saturated server still
# pairs its traffic instead of dropping it. Well under the time a worker's peak rate takes to fill the
# default queue: with a longer wait, `benchmarks.serving_load --scenarios shadow` showed pairs turn into drops.
MAX_DEFER_S = 0.25
# No OS niceness for the thread: a deprioritised thread that holds the GIL stalls the whole worker
# (priority inversion): with it, `benchmarks.serving_load --scenarios shadow` showed a higher client P99, not a lower one.

THREAD_NAME = "shadow-scorer"
_STOP = object()


@dataclass(frozen=True)
class _Product:
    productid: int
    designation: str
    description: str
    image: bytes | None  # the request's own bytes, not a copy: the queue bound is the memory bound
    served_by: str
    code: int
    confidence: float


@dataclass(frozen=True)
class _Work:
    request_id: str
    champion: LoadedModel
    challenger: LoadedModel
    products: tuple[_Product, ...]

    def other(self, product: _Product) -> LoadedModel:
        return self.challenger if product.served_by == CHAMPION else self.champion


class ShadowScorer:
    """Bounded queue + one daemon thread; ``submit`` never blocks and never raises."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        *,
        share: float,
        salt: str,
        max_queue: int,
        metrics: ServingMetrics | None = None,
        busy: Callable[[], int] | None = None,
        max_defer_s: float = MAX_DEFER_S,
        torch_threads: int = 1,
    ) -> None:
        self._engine_factory = engine_factory
        self.share = share
        self.salt = salt
        self.metrics = metrics
        self.busy = busy  # predict requests in flight in this worker; None: never wait
        self.max_defer_s = max_defer_s
        self.torch_threads = torch_threads
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._last_warning = 0.0
        self.scored = 0
        self.written = 0
        self.dropped: dict[str, int] = defaultdict(int)

    def selected(self, productid: int | None) -> bool:
        """Whether this product is shadow-scored: sticky, like the A/B assignment."""
        if productid is None or self.share <= 0.0:
            return False
        return self.share >= 1.0 or bucket(productid, f"{self.salt}:{SHADOW_SALT}") < self.share

    def start(self) -> None:
        if self._thread is not None:
            return
        import torch

        process_default = torch.get_num_threads()
        self._closing.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        self._ready.wait(30.0)
        # torch.set_num_threads is also the default of threads yet to start: the shadow thread's own
        # limit must not become the inference thread's.
        torch.set_num_threads(process_default)

    def submit(
        self,
        request_id: str,
        models: ModelSet,
        products: Sequence[ProductIn],
        images: Sequence[bytes | None],
        predictions: Sequence[PredictionOut],
    ) -> int:
        """Queue the other model's prediction of this request's selected products; returns how many."""
        try:
            work = self._work(request_id, models, products, images, predictions)
        except Exception as exc:  # noqa: BLE001 - shadow scoring must never fail the client's request
            self._drop(len(products), "error", f"{type(exc).__name__}: {exc}")
            return 0
        if work is None:
            return 0
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            self._drop(len(work.products), "queue_full", "the shadow queue is full")
            return 0
        self._gauge()
        return len(work.products)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued request is scored or dropped (tests, benchmarks); False on timeout."""
        return wait_drained(self._queue, self._thread, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued without deferring to clients (none are coming), then stop the thread."""
        if self._thread is None:
            return
        self._closing.set()
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("shadow queue still full at shutdown; %d requests are not paired", self._queue.qsize())
        self._thread.join(timeout)
        self._thread = None

    def _work(
        self,
        request_id: str,
        models: ModelSet,
        products: Sequence[ProductIn],
        images: Sequence[bytes | None],
        predictions: Sequence[PredictionOut],
    ) -> _Work | None:
        if models.champion is None or models.challenger is None:
            return None
        chosen: dict[int, _Product] = {}  # one pair per (request, productid): the table's key
        for product, image, prediction in zip(products, images, predictions, strict=True):
            pid = product.productid
            if pid is None or pid in chosen or not self.selected(pid):
                continue
            chosen[pid] = _Product(pid, product.designation, product.description or "", image, prediction.variant,
                                   prediction.prdtypecode, prediction.probability)
        if not chosen:
            return None
        return _Work(request_id, models.champion, models.challenger, tuple(chosen.values()))

    # ------------------------------------------------------------------ shadow thread
    def _run(self) -> None:
        self._limit_threads()
        self._ready.set()
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            self._defer_to_clients()
            batch, stopping = self._gather(first)
            try:
                self._score(batch)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug
                log.exception("shadow scoring: unexpected error on %d requests", len(batch))
                self._drop(sum(len(w.products) for w in batch), "error", f"{type(exc).__name__}: {exc}")
            finally:
                for _ in batch:
                    self._queue.task_done()
                self._gauge()
        self._queue.task_done()  # the stop marker _gather took

    def _limit_threads(self) -> None:
        """``torch_threads`` intra-op threads for this thread only: the inference thread keeps its cores."""
        import torch

        torch.get_num_threads()  # torch's per-thread setup first, or it would undo the limit on the first op
        torch.set_num_threads(self.torch_threads)

    def _defer_to_clients(self) -> None:
        """Wait until this worker serves no predict request, at most ``max_defer_s`` and only while the
        queue is less than half full: deferring must not turn into dropping."""
        if self.busy is None:
            return
        deadline = time.monotonic() + self.max_defer_s
        half = self._queue.maxsize // 2
        while (self.busy() > 0 and time.monotonic() < deadline and self._queue.qsize() < half
               and not self._closing.wait(IDLE_POLL_S)):
            pass

    def _gather(self, first: _Work) -> tuple[list[_Work], bool]:
        """``first`` plus what is queued, up to ``MAX_BATCH_PRODUCTS``; True when the stop marker came."""
        batch, rows = [first], len(first.products)
        while rows < MAX_BATCH_PRODUCTS:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            rows += len(item.products)
        return batch, False

    def _score(self, batch: list[_Work]) -> None:
        started = time.perf_counter()
        groups: dict[int, list[tuple[_Work, _Product]]] = defaultdict(list)
        for work in batch:
            for product in work.products:
                groups[id(work.other(product).classifier)].append((work, product))
        rows: list[dict[str, Any]] = []
        for members in groups.values():
            rows += self._predict_group(members)
        if rows:
            self._write(rows)
        if self.metrics is not None:
            self.metrics.shadow_batch.observe(time.perf_counter() - started)

    def _predict_group(self, members: list[tuple[_Work, _Product]]) -> list[dict[str, Any]]:
        """The pairs of products the same classifier shadow-scores, in one call."""
        classifier = members[0][0].other(members[0][1]).classifier
        frame = pd.DataFrame({"designation": [p.designation for _, p in members], "description": [p.description for _, p in members]})
        images = [p.image for _, p in members]
        try:
            result = classifier.predict(frame, images if any(i is not None for i in images) else None)
            if len(result) != len(frame):
                raise RuntimeError(f"the classifier returned {len(result)} rows for {len(frame)} products")
        except Exception as exc:  # noqa: BLE001 - a shadow model that fails costs pairs, nothing else
            self._drop(len(members), "error", f"{type(exc).__name__}: {exc}")
            return []
        now = datetime.now(UTC)
        rows = [_pair(work, product, int(code), float(confidence), now)
                for (work, product), code, confidence in zip(members, result["prdtypecode"], result["probability"], strict=True)]
        self.scored += len(rows)
        if self.metrics is not None:
            self.metrics.shadow_predictions.inc(len(rows))
            self.metrics.shadow_disagreements.inc(sum(r["champion_code"] != r["challenger_code"] for r in rows))
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            upsert(self._engine_factory(), paired_predictions, rows, update=False)
        except Exception as exc:  # noqa: BLE001 - a dead database must never take serving down
            self._drop(len(rows), "database", f"{type(exc).__name__}: {str(exc)[:300]}")  # SQL errors echo every bound row
        else:
            self.written += len(rows)

    def _drop(self, n: int, reason: str, why: str) -> None:
        self.dropped[reason] += n
        if self.metrics is not None:
            self.metrics.shadow_dropped.labels(reason).inc(n)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning("dropped %d shadow pairs (%s; %d in total so far): %s", n, reason, sum(self.dropped.values()), why)

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.shadow_queue.set(self._queue.qsize())


def _pair(work: _Work, product: _Product, code: int, confidence: float, now: datetime) -> dict[str, Any]:
    """One ``paired_predictions`` row: the served answer on its variant's side, the shadow one on the other."""
    served, shadow = (product.code, product.confidence), (code, confidence)
    champion, challenger = (served, shadow) if product.served_by == CHAMPION else (shadow, served)
    return {
        "source_id": work.request_id,
        "productid": product.productid,
        "origin": PAIRED_ONLINE,
        "model_name": work.champion.name,
        "champion_version": work.champion.version,
        "challenger_version": work.challenger.version,
        "champion_code": champion[0],
        "challenger_code": challenger[0],
        "champion_confidence": champion[1],
        "challenger_confidence": challenger[1],
        "scored_at": now,
    }
