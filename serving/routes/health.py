"""Liveness, readiness, what is served, and the Prometheus exposition."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from rakuten_ml.monitoring.textfiles import METRICS_DIR
from serving.model_manager import LoadedModel, ModelManager
from serving.routes.deps import State
from serving.schemas import HealthOut, ModelStatusOut, ServedModelOut

router = APIRouter(tags=["health"])



def _served(model: LoadedModel | None) -> ServedModelOut | None:
    if model is None:
        return None
    return ServedModelOut(
        name=model.name, version=model.version, alias=model.alias, modalities=model.modalities,
        loaded_at=datetime.fromtimestamp(model.loaded_at, UTC),
    )


def model_status(manager: ModelManager) -> ModelStatusOut:
    models = manager.models
    refreshed = manager.last_refresh_at
    return ModelStatusOut(
        champion=_served(models.champion),
        challenger=_served(models.challenger),
        challenger_share=manager.challenger_share,
        poll_interval_s=manager.settings.serving.poll_interval_s,
        last_refresh_at=datetime.fromtimestamp(refreshed, UTC) if refreshed else None,
        last_errors=dict(manager.last_errors),
    )


def _health(manager: ModelManager, status: str) -> HealthOut:
    models = manager.models
    return HealthOut(
        status=status,  # type: ignore[arg-type]
        champion_version=models.champion.version if models.champion else None,
        challenger_version=models.challenger.version if models.challenger else None,
    )


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
def healthz(state: State) -> HealthOut:
    return _health(state.manager, "ok")


@router.get(
    "/readyz", response_model=HealthOut, summary="Readiness: a champion model is loaded",
    responses={503: {"model": HealthOut, "description": "no model loaded yet"}},
)
def readyz(state: State, response: Response) -> HealthOut:
    if not state.manager.ready:
        response.status_code = 503
        return _health(state.manager, "not_ready")
    return _health(state.manager, "ok")


@router.get("/v1/model", response_model=ModelStatusOut, summary="Champion and challenger being served")
def served_models(state: State) -> ModelStatusOut:
    return model_status(state.manager)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(state: State) -> Response:
    # The batch jobs' textfiles: the drift DAG's rakuten_drift.prom, each scoring run's rakuten_scoring.prom.
    body, content_type = state.metrics.render(state.settings.home / METRICS_DIR)
    return Response(body, media_type=content_type)
