"""What a review label writes, all in one transaction: the reviewer's row, the product's current label
(``feedback``) and its labelled-products row, which the next ingest turns into the snapshot's label.

The labelled row carries the product's text and ``imageid`` from the snapshot but not the snapshot's
``image_key``: that key is the platform store's content-addressed copy, while ingestion reads image
keys from the catalogue store, where it would not exist (a ``require`` policy would quarantine the
row). Without a key, ingestion finds the catalogue's own ``image_<imageid>_product_<productid>.jpg``,
the photo the snapshot's copy came from; a key someone already wrote to the row is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rakuten_ml.storage.database import database_errors, feedback, review_labels, review_skips, upsert_rows
from serving.review.order import QueueItem

FEEDBACK_SOURCE_PREFIX = "review:"


def feedback_source(reviewer: str) -> str:
    """``feedback.source`` of a reviewer's label (the column holds 64 characters)."""
    return (FEEDBACK_SOURCE_PREFIX + reviewer)[:64]


def _none_if_missing(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value  # NaN from parquet


def write_label(
    engine: Engine, labelled: sa.Table | None, *, reviewer: str, item: QueueItem, prdtypecode: int,
    product: Mapping[str, Any], now: datetime | None = None,
) -> None:
    """Record ``reviewer``'s label of ``item``: a repeat replaces their own row, never another reviewer's."""
    at = now or datetime.now(UTC)
    with database_errors(engine, "writing a review label", then="label the product again: it is idempotent"), engine.begin() as conn:
        upsert_rows(conn, review_labels, [{
            "productid": item.productid, "reviewer": reviewer, "prdtypecode": prdtypecode,
            "model_version": item.model_version, "predicted_code": item.predicted_code, "labelled_at": at,
        }])
        upsert_rows(conn, feedback, [{
            "productid": item.productid, "prdtypecode": prdtypecode, "source": feedback_source(reviewer), "received_at": at,
        }])
        if labelled is not None:
            kept_key = conn.execute(sa.select(labelled.c.image_key).where(labelled.c.productid == item.productid)).scalar()
            imageid = _none_if_missing(product.get("imageid"))
            upsert_rows(conn, labelled, [{
                "productid": item.productid, "imageid": int(imageid) if imageid is not None else None,
                "designation": _none_if_missing(product.get("designation")),
                "description": _none_if_missing(product.get("description")),
                "prdtypecode": prdtypecode, "image_key": kept_key, "labelled_at": at,
            }])


def write_skip(engine: Engine, *, reviewer: str, productid: int, now: datetime | None = None) -> None:
    with database_errors(engine, "recording a skip"), engine.begin() as conn:
        upsert_rows(conn, review_skips, [{"productid": productid, "reviewer": reviewer, "skipped_at": now or datetime.now(UTC)}])
