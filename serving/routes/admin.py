"""Admin routes (bearer token): reload the aliases now, shift the challenger's share."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from serving.auth import AdminOnly
from serving.routes.deps import State
from serving.routes.health import model_status
from serving.schemas import ErrorOut, ReloadRequest, ReloadResponse, TrafficRequest, TrafficResponse

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[AdminOnly],
    responses={401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
               503: {"model": ErrorOut, "description": "admin API disabled (no token configured)"}},
)


@router.post("/reload", response_model=ReloadResponse, summary="Re-read the champion/challenger aliases now")
def reload_models(state: State, body: ReloadRequest | None = None) -> ReloadResponse:
    # a sync route: FastAPI runs it in the threadpool, so seconds of loading never block the event loop
    report = state.manager.refresh(force=bool(body and body.force))
    log.info("admin reload: changed=%s errors=%s", list(report.changed), report.errors)
    return ReloadResponse(changed=list(report.changed), errors=report.errors, models=model_status(state.manager))


@router.post("/traffic", response_model=TrafficResponse, summary="Set the challenger's traffic share (this process)")
def set_traffic(body: TrafficRequest, state: State) -> TrafficResponse:
    previous = state.manager.set_challenger_share(body.challenger_share)
    challenger = state.manager.models.challenger
    return TrafficResponse(
        previous_share=previous, challenger_share=body.challenger_share,
        challenger_version=challenger.version if challenger else None,
    )
