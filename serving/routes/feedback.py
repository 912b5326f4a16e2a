"""``POST /v1/feedback``: the true class of a product, upserted into ``feedback``.

One current label per product (a later correction overwrites), which is what the sliding
accuracy of the champion and the A/B evaluation join against ``prediction_log``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter

from rakuten_ml.storage.database import feedback, upsert
from serving.routes.deps import State
from serving.schemas import ErrorOut, FeedbackIn, FeedbackOut

log = logging.getLogger(__name__)

router = APIRouter(tags=["feedback"])


@router.post(
    "/v1/feedback", response_model=FeedbackOut, summary="Record the true class of a product",
    responses={422: {"model": ErrorOut, "description": "unknown productid/prdtypecode"},
               503: {"model": ErrorOut, "description": "database unavailable"}},
)
def record_feedback(body: FeedbackIn, state: State) -> FeedbackOut:
    received_at = datetime.now(UTC)
    row = {"productid": body.productid, "prdtypecode": body.prdtypecode, "source": body.source, "received_at": received_at}
    upsert(state.platform.prepare().engine, feedback, [row])  # DatabaseError -> 503 by the app's handler
    state.metrics.feedback.labels(body.source).inc()
    champion = state.manager.models.champion
    return FeedbackOut(productid=body.productid, prdtypecode=body.prdtypecode, source=body.source, received_at=received_at,
                       champion_version=champion.version if champion else None)
