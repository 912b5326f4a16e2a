"""Shadow scoring: the model that did not answer a live product predicts it too, after the response.

While a challenger is loaded, each product with a ``productid`` (a ``shadow_share`` slice of them,
chosen by hash) is queued with the answer the client got; one thread predicts it with the other
variant's classifier and writes the pair to ``paired_predictions`` (origin ``online``), which feeds
the paired A/B test and the disagreement rate. Clients come first: the thread works only while the
worker serves no predict request, in slices of a few products (one classifier call and its write),
and looks again before each slice, so a request that arrives mid-shadow waits one slice at most. It
never uses the batcher's inference thread and runs torch on one thread. A saturated worker is never
idle: its queue fills and the new work is dropped; so do a failing model and a dead database (all
counted, one warning per 30 s). Nightly batch scoring pairs the whole catalogue anyway. Nothing here
blocks or fails a prediction.
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
# Most products of one shadow slice (one classifier call and its write), which is what a request arriving
# mid-slice waits for: a text-model call of this size costs a few milliseconds, most of it fixed (one product
# costs over half of what four do), so smaller slices would pair far fewer products per idle second and
# bigger ones would make that request wait longer.
MAX_SLICE_PRODUCTS = 4
# How often the waiting thread looks whether the worker is idle: rarely enough not to take the GIL from
# the event loop, as a 1 ms poll did in the batcher (serving/batcher.py).
IDLE_POLL_S = 0.01
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
        slice_products: int = MAX_SLICE_PRODUCTS,
        torch_threads: int = 1,
    ) -> None:
        self._engine_factory = engine_factory
        self.share = share
        self.salt = salt
        self.metrics = metrics
        self.busy = busy  # predict requests in flight in this worker; None: never wait
        self.slice_products = max(1, slice_products)
        self.torch_threads = torch_threads
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        # Taken off the queue and not yet scored: one request, or as many as top up a slice.
        self._pending: list[tuple[_Work, _Product]] = []
        self._left: dict[int, int] = {}  # id of a taken request -> its products still pending
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
        """Score what is queued without waiting for idle (no client is coming), then stop the thread."""
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
        while self._pending or not stopping:
            if not self._pending:
                stopping = self._take(self._queue.get())
                continue
            self._wait_until_idle()
            while not stopping and len(self._pending) < self.slice_products:  # top up from what came meanwhile
                try:
                    stopping = self._take(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._slice()

    def _take(self, item: Any) -> bool:
        """Move one queued request to the pending products; True for the stop marker."""
        if item is _STOP:
            self._queue.task_done()
            return True
        self._pending += [(item, product) for product in item.products]
        self._left[id(item)] = len(item.products)
        return False

    def _limit_threads(self) -> None:
        """``torch_threads`` intra-op threads for this thread only: the inference thread keeps its cores."""
        import torch

        torch.get_num_threads()  # torch's per-thread setup first, or it would undo the limit on the first op
        torch.set_num_threads(self.torch_threads)

    def _wait_until_idle(self) -> None:
        """Until this worker serves no predict request, however long: under saturation the queue fills
        and drops instead. ``close`` ends the wait (no client is coming)."""
        if self.busy is None:
            return
        while self.busy() > 0 and not self._closing.wait(IDLE_POLL_S):
            pass

    def _slice(self) -> None:
        """Score and write the oldest pending products that share a shadow classifier, at most
        ``slice_products``: one call, so a request arriving now waits no longer than that."""
        classifier = self._pending[0][0].other(self._pending[0][1]).classifier
        members: list[tuple[_Work, _Product]] = []
        rest: list[tuple[_Work, _Product]] = []
        for work, product in self._pending:
            same = len(members) < self.slice_products and work.other(product).classifier is classifier
            (members if same else rest).append((work, product))
        self._pending = rest
        started = time.perf_counter()
        try:
            rows = self._predict_group(members)
            if rows:
                self._write(rows)
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug
            log.exception("shadow scoring: unexpected error on %d products", len(members))
            self._drop(len(members), "error", f"{type(exc).__name__}: {exc}")
        finally:
            for work, _ in members:
                self._left[id(work)] -= 1
                if not self._left[id(work)]:
                    del self._left[id(work)]
                    self._queue.task_done()
            self._gauge()
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
