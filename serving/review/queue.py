"""What the review queue reads: the latest prediction and pair of every product, a reviewer's done set, the snapshot.

The latest prediction of a product is the newest of its batch (``predictions``) and online
(``prediction_log``) rows; it queues the product when its decision is ``review``. The latest pair
(``paired_predictions``) queues it when champion and challenger disagree. Only products of the
latest snapshot are queued: the card and the labelled-products row need their text and image.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.data.snapshot import latest_snapshot_id, load_products
from rakuten_ml.settings import ReviewSettings
from rakuten_ml.storage.database import database_errors, paired_predictions, prediction_log, predictions, review_labels, review_skips
from rakuten_ml.storage.object_store import ObjectStore
from serving.review.order import QueueItem, RankedItem, review_order

REVIEW_DECISION = "review"


def _latest_predictions() -> sa.Subquery:
    batch = sa.select(
        predictions.c.productid, predictions.c.prdtypecode, predictions.c.confidence, predictions.c.decision,
        predictions.c.model_version, predictions.c.scored_at.label("at"),
    )
    online = sa.select(
        prediction_log.c.productid, prediction_log.c.prdtypecode, prediction_log.c.confidence, prediction_log.c.decision,
        prediction_log.c.model_version, prediction_log.c.created_at.label("at"),
    ).where(prediction_log.c.productid.is_not(None))
    both = sa.union_all(batch, online).subquery("both_predictions")
    rank = sa.func.row_number().over(partition_by=both.c.productid, order_by=both.c.at.desc()).label("rank")
    ranked = sa.select(both, rank).subquery("ranked_predictions")
    return sa.select(ranked).where(ranked.c.rank == 1).subquery("latest_predictions")


def _latest_disagreements() -> sa.Select:
    rank = sa.func.row_number().over(
        partition_by=paired_predictions.c.productid, order_by=paired_predictions.c.scored_at.desc()
    ).label("rank")
    ranked = sa.select(paired_predictions, rank).subquery("ranked_pairs")
    return sa.select(ranked).where(ranked.c.rank == 1, ranked.c.champion_code != ranked.c.challenger_code)


@dataclass(frozen=True)
class QueueState:
    """Every queued product (any reviewer) and the class shares among the latest predictions."""

    items: dict[int, QueueItem]
    class_share: dict[int, float]


def read_queue_state(engine: Engine) -> QueueState:
    """Products whose latest prediction says ``review`` or whose latest pair disagrees."""
    latest = _latest_predictions()
    with database_errors(engine, "reading the review queue"), engine.connect() as conn:
        counts = {int(c): int(n) for c, n in conn.execute(sa.select(latest.c.prdtypecode, sa.func.count()).group_by(latest.c.prdtypecode))}
        review_rows = conn.execute(sa.select(latest).where(latest.c.decision == REVIEW_DECISION)).mappings().all()
        pairs = conn.execute(_latest_disagreements()).mappings().all()
    total = sum(counts.values())
    items = {
        int(r["productid"]): QueueItem(int(r["productid"]), int(r["prdtypecode"]), float(r["confidence"]), r["model_version"])
        for r in review_rows
    }
    for pair in pairs:
        pid = int(pair["productid"])
        # the champion's side of the pair is what the label is compared with
        items[pid] = QueueItem(
            pid, int(pair["champion_code"]), float(pair["champion_confidence"]), pair["champion_version"],
            disagreement=True, challenger_code=int(pair["challenger_code"]),
        )
    share = {code: n / total for code, n in counts.items()} if total else {}
    return QueueState(items, share)


def done_by(engine: Engine, reviewer: str) -> set[int]:
    """Products ``reviewer`` already labelled or skipped."""
    stmt = sa.union(
        sa.select(review_labels.c.productid).where(review_labels.c.reviewer == reviewer),
        sa.select(review_skips.c.productid).where(review_skips.c.reviewer == reviewer),
    )
    with database_errors(engine, "reading a reviewer's labels"), engine.connect() as conn:
        return {int(pid) for pid in conn.execute(stmt).scalars()}


def labelled_by_anyone(engine: Engine) -> set[int]:
    with database_errors(engine, "reading review labels"), engine.connect() as conn:
        return {int(pid) for pid in conn.execute(sa.select(review_labels.c.productid).distinct()).scalars()}


class ReviewQueue:
    """The ordered queue of one reviewer, over a short-lived cache of the queue state and the latest snapshot.

    The window queries scan every prediction, so their result is kept ``ttl_s`` seconds; a reviewer's
    own labels and skips are read on every call, so a labelled product leaves their queue at once.
    """

    def __init__(self, engine: Callable[[], Engine], store: Callable[[], ObjectStore], settings: ReviewSettings, *,
                 ttl_s: float = 10.0, on_backlog: Callable[[int], None] | None = None) -> None:
        self._engine = engine
        self._store = store
        self.settings = settings
        self.ttl_s = ttl_s
        self._on_backlog = on_backlog
        self._lock = threading.Lock()
        self._state: tuple[float, list[RankedItem], dict[int, RankedItem]] | None = None
        self._snapshot: tuple[str, pd.DataFrame] | None = None

    def products(self) -> pd.DataFrame:
        """The latest snapshot's products by productid (re-read when a newer snapshot appears)."""
        engine = self._engine()
        with database_errors(engine, "finding the latest snapshot"):
            snapshot_id = latest_snapshot_id(engine)
        if self._snapshot is None or self._snapshot[0] != snapshot_id:
            frame = load_products(self._store(), snapshot_id).set_index("productid", drop=False)
            self._snapshot = (snapshot_id, frame)
        return self._snapshot[1]

    def ranked(self) -> list[RankedItem]:
        """Every queued product of the latest snapshot, in :func:`review_order`."""
        with self._lock:
            now = time.monotonic()
            if self._state is None or now - self._state[0] >= self.ttl_s:
                engine = self._engine()
                state = read_queue_state(engine)
                known = self.products().index
                queued = [item for pid, item in state.items.items() if pid in known]
                ranked = review_order(queued, state.class_share, boost_cap=self.settings.rare_class_boost_cap)
                self._state = (now, ranked, {r.item.productid: r for r in ranked})
                if self._on_backlog is not None:
                    labelled = labelled_by_anyone(engine)
                    self._on_backlog(sum(1 for r in ranked if r.item.productid not in labelled))
            return self._state[1]

    def for_reviewer(self, reviewer: str, limit: int | None = None) -> tuple[list[RankedItem], int]:
        """(the first ``limit`` products ``reviewer`` has neither labelled nor skipped, how many there are)."""
        done = done_by(self._engine(), reviewer)
        mine = [r for r in self.ranked() if r.item.productid not in done]
        return mine[: limit if limit is not None else self.settings.page_size], len(mine)

    def find(self, productid: int) -> RankedItem | None:
        """A queued product (any reviewer's queue), or None: only these may be labelled or have their image served."""
        self.ranked()
        with self._lock:
            return self._state[2].get(productid) if self._state is not None else None

    def invalidate(self) -> None:
        with self._lock:
            self._state = None
