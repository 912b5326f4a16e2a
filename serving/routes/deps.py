"""What routes depend on: the app's shared services, reached through FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from serving.batcher import MicroBatcher
from serving.cache import PredictionCache
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager
from serving.prediction_logger import PredictionLogger
from serving.shadow import ShadowScorer


@dataclass
class ServingState:
    """Everything one app instance owns; built by ``create_app`` and kept on ``app.state``."""

    settings: Settings
    platform: Platform
    metrics: ServingMetrics
    manager: ModelManager
    cache: PredictionCache
    prediction_logger: PredictionLogger
    batcher: MicroBatcher
    shadow: ShadowScorer


def get_state(request: Request) -> ServingState:
    return request.app.state.serving


def get_settings(state: Annotated[ServingState, Depends(get_state)]) -> Settings:
    return state.settings


State = Annotated[ServingState, Depends(get_state)]
