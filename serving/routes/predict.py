"""``POST /v1/predict``: route each product to a variant, answer from cache or model, log it, queue its shadow pair.

One request reads the served :class:`ModelSet` once, so a hot swap in the middle of a batch
never mixes versions of the same variant. Products without a ``productid`` go to the champion
(stickiness needs an id); the others follow :func:`assign_variant`, the same hash batch
scoring and A/B evaluation use.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request, Response

from rakuten_ml.data.contract import MAX_IMAGE_BYTES
from rakuten_ml.errors import InvalidObjectKeyError, ObjectNotFoundError, UnreadableObjectError
from rakuten_ml.labels import CLASS_NAMES
from rakuten_ml.models.fusion import class_probabilities
from rakuten_ml.promotion.routing import assign_variant
from serving.batcher import BatcherClosedError
from serving.cache import input_digest
from serving.model_manager import LoadedModel, ModelSet
from serving.routes.deps import ServingState, State
from serving.routes.errors import ApiError, request_id
from serving.schemas import TOP_K, ClassScore, ErrorOut, PredictionOut, PredictRequest, PredictResponse, ProductIn, check_image

log = logging.getLogger(__name__)

router = APIRouter(tags=["predict"])
PREDICT_PATH = "/v1/predict"

_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "request body too large"},
    422: {"model": ErrorOut, "description": "invalid product, image or batch size"},
    503: {"model": ErrorOut, "description": "no model loaded yet, or the object store is down"},
}


@router.post(PREDICT_PATH, response_model=PredictResponse, responses=_ERRORS, summary="Classify one product or a batch")
def predict(body: PredictRequest, request: Request, response: Response, state: State) -> PredictResponse:
    started = time.perf_counter()
    products = body.products
    limit = state.settings.serving.max_batch_size
    if len(products) > limit:
        raise ApiError(
            422, "batch_too_large", f"batch has {len(products)} products; at most {limit} per request (RAKUTEN_SERVING_MAX_BATCH_SIZE)"
        )
    models = state.manager.models
    if models.champion is None:
        raise ApiError(503, "model_unavailable", "no model is loaded yet; retry shortly", headers={"Retry-After": "5"})
    images = [p.image_bytes if p.image_key is None else _store_image(state, p.image_key, i) for i, p in enumerate(products)]
    share = state.manager.challenger_share if models.challenger is not None else 0.0
    variants = [assign_variant(p.productid, share, state.settings.ab.salt) for p in products]
    predictions = _predict(state, models, products, images, variants)

    rid = request_id(request) or uuid.uuid4().hex
    used = sorted({(p.variant, p.model_version) for p in predictions})
    request.state.variant = used[0][0] if len({v for v, _ in used}) == 1 else "mixed"
    response.headers["X-Model-Variant"] = ",".join(dict.fromkeys(v for v, _ in used))
    response.headers["X-Model-Version"] = ",".join(dict.fromkeys(version for _, version in used))
    _observe(state, predictions)
    state.prediction_logger.log(_log_rows(rid, predictions, (time.perf_counter() - started) * 1000.0))
    if models.challenger is not None and state.shadow.share > 0.0:  # the other model pairs them after the response
        state.shadow.submit(rid, models, products, images, predictions)
    return PredictResponse(request_id=rid, predictions=predictions)


def _store_image(state: ServingState, key: str, position: int) -> bytes:
    """An image from the platform object store, held to the same bounds as an inline one."""
    store = state.platform.store
    where = f"products.{position}.image_key"
    try:
        data = store.get_bytes(key) if store.info(key).size <= MAX_IMAGE_BYTES else None
    except ObjectNotFoundError:
        raise ApiError(422, "image_not_found", f"{where}: no image {key!r} in the object store") from None
    except (UnreadableObjectError, InvalidObjectKeyError, OSError):  # a folder, a link loop, a key with '..'
        raise ApiError(422, "image_not_found", f"{where}: {key!r} is not a readable object") from None
    if data is None:
        raise ApiError(422, "image_too_large", f"{where}: object {key!r} is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        check_image(data)
    except ValueError as exc:
        raise ApiError(422, "invalid_image", f"{where}: {exc}") from None
    return data


def _predict(
    state: ServingState, models: ModelSet, products: list[ProductIn], images: list[bytes | None], variants: list[str]
) -> list[PredictionOut]:
    """Cached answers first, then one classifier call per variant for the misses."""
    chosen: list[LoadedModel] = [models.get(v) or models.champion for v in variants]  # type: ignore[misc]
    keys: list[str] = []
    payloads: list[dict[str, Any] | None] = [None] * len(products)
    if state.cache.enabled:  # hashing inputs (images included) is only worth it with a cache
        keys = [
            state.cache.key(m.name, m.version, input_digest(p.designation, p.description, img))
            for m, p, img in zip(chosen, products, images, strict=True)
        ]
        payloads = state.cache.get_many(keys)
    cached = [p is not None for p in payloads]
    misses: dict[str, list[int]] = defaultdict(list)
    for i, payload in enumerate(payloads):
        if payload is None:
            misses[chosen[i].variant].append(i)
    fresh: dict[str, dict[str, Any]] = {}
    for variant, rows in misses.items():
        model = chosen[rows[0]]
        frame = pd.DataFrame(
            {"designation": [products[i].designation for i in rows], "description": [products[i].description or "" for i in rows]}
        )
        row_images = [images[i] for i in rows]
        tic = time.perf_counter()
        try:
            result = state.batcher.predict(model.classifier, frame, row_images)
        except BatcherClosedError:
            raise ApiError(503, "shutting_down", "this server is shutting down; retry on another", headers={"Retry-After": "1"}) from None
        state.metrics.inference.labels(variant).observe(time.perf_counter() - tic)
        for i, payload in zip(rows, _payloads(result), strict=True):
            payloads[i] = payload
            if keys:
                fresh[keys[i]] = payload
    state.cache.put_many(fresh)
    answered = [p for p in payloads if p is not None]  # every miss was predicted above: zip(strict) checks it
    return [
        PredictionOut(
            productid=product.productid,
            prdtypecode=payload["prdtypecode"],
            label=CLASS_NAMES.get(payload["prdtypecode"], ""),
            probability=payload["probability"],
            decision=payload["decision"],
            modality=payload["modality"],
            top=[ClassScore(prdtypecode=c, probability=p) for c, p in payload["top"]],
            model_name=model.name,
            model_version=model.version,
            variant=model.variant,  # type: ignore[arg-type]
            cached=hit,
        )
        for product, payload, model, hit in zip(products, answered, chosen, cached, strict=True)
    ]


def _payloads(result: pd.DataFrame) -> list[dict[str, Any]]:
    """The model-dependent part of each prediction: what the cache stores."""
    proba, codes = class_probabilities(result)
    top = np.argsort(-proba, axis=1, kind="stable")[:, :TOP_K]
    return [
        {
            "prdtypecode": int(code),
            "probability": float(probability),
            "decision": str(decision),
            "modality": str(modality),
            "top": [[int(codes[j]), float(proba[row, j])] for j in top[row]],
        }
        for row, (code, probability, decision, modality) in enumerate(
            zip(result["prdtypecode"], result["probability"], result["decision"], result["modality"], strict=True)
        )
    ]


def _observe(state: ServingState, predictions: list[PredictionOut]) -> None:
    m = state.metrics
    for p in predictions:
        m.predictions.labels(p.variant, p.model_version, p.decision, p.modality).inc()
        m.predicted_class.labels(p.variant, str(p.prdtypecode)).inc()
        m.confidence.labels(p.variant).observe(p.probability)


def _log_rows(rid: str, predictions: list[PredictionOut], latency_ms: float) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "request_id": rid,
            "position": i,
            "productid": p.productid,
            "model_name": p.model_name,
            "model_version": p.model_version,
            "variant": p.variant,
            "prdtypecode": p.prdtypecode,
            "confidence": p.probability,
            "decision": p.decision,
            "modality": p.modality,
            "latency_ms": latency_ms,
            "created_at": now,
        }
        for i, p in enumerate(predictions)
    ]

