"""The serving app: ``create_app(settings)`` wires models, cache, prediction log, shadow scoring and metrics.

``app`` at module level is what ``uvicorn serving.app:app`` (compose, Helm, ``rakuten-ml
serve``) runs, configured from ``RAKUTEN_*``. Building it touches nothing: models load, and
threads start, in the lifespan, so importing this module is free.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rakuten_ml.cpus import available_cpus
from rakuten_ml.resources import Platform
from rakuten_ml.settings import Settings
from serving.batcher import InFlight, MicroBatcher
from serving.cache import PredictionCache
from serving.metrics import MULTIPROC_ENV, ServingMetrics
from serving.model_manager import ModelManager
from serving.prediction_logger import PredictionLogger
from serving.review import include_review
from serving.routes import admin, feedback, health, predict, reports
from serving.routes.deps import ServingState
from serving.routes.errors import REQUEST_ID_HEADER, error_response, install_error_handlers
from serving.routes.predict import PREDICT_PATH
from serving.shadow import ShadowScorer

log = logging.getLogger(__name__)

# 64 products with typical 100-300 KB photos make 10-25 MB of base64 JSON; 64 MiB leaves room
# for larger photos while a runaway client still cannot make a worker buffer gigabytes.
MAX_BODY_BYTES = 64 * 1024 * 1024
_RID_HEADER = REQUEST_ID_HEADER.lower().encode()
TORCH_THREADS_ENV = "RAKUTEN_SERVING_TORCH_THREADS"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class ObservabilityMiddleware:
    """Request id, body cap, request metrics by route template and variant, and the last-resort 500.

    A plain ASGI middleware (no BaseHTTPMiddleware) so it adds no task per request and sees
    every exception no route handled.
    """

    def __init__(
        self, app: ASGIApp, metrics: ServingMetrics, max_body_bytes: int = MAX_BODY_BYTES, predicting: InFlight | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.predicting = predicting or InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                headers = list(message.get("headers", []))
                if not any(k.lower() == _RID_HEADER for k, _ in headers):
                    headers.append((_RID_HEADER, rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)  # FastAPI re-raises HTTPExceptions from body reading
            return message

        self.metrics.in_flight.inc()
        predicting = scope.get("path") == PREDICT_PATH and scope.get("method") == "POST"
        if predicting:
            self.predicting.enter()
        try:
            if _declared_length(scope) > self.max_body_bytes:
                await error_response(413, "payload_too_large", f"request body is larger than {self.max_body_bytes} bytes", rid)(
                    scope, receive, send_with_id
                )
            else:
                await self.app(scope, capped_receive, send_with_id)
        except Exception:  # noqa: BLE001 - the one place that turns any bug into a clean 500
            log.exception("unhandled error in %s %s (request id %s)", scope.get("method"), scope.get("path"), rid)
            if not status["sent"]:
                message = f"internal error; quote request id {rid} when reporting it"
                await error_response(500, "internal_error", message, rid)(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            if predicting:
                self.predicting.leave()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            variant = str(state.get("variant", "none"))
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"  # clients choose the method: keep label values bounded
            self.metrics.requests.labels(template, method, str(status["code"]), variant).inc()
            self.metrics.latency.labels(template, variant).observe(time.perf_counter() - started)


def _declared_length(scope: Scope) -> int:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def create_app(
    settings: Settings | None = None,
    *,
    metrics: ServingMetrics | None = None,
    manager: ModelManager | None = None,
    cache: PredictionCache | None = None,
    prediction_logger: PredictionLogger | None = None,
    batcher: MicroBatcher | None = None,
    shadow: ShadowScorer | None = None,
    load_models: bool = True,
) -> FastAPI:
    """A serving app; any piece can be injected (tests). ``load_models=False`` skips the initial
    load and the alias poller (the app stays not-ready until ``manager.refresh()``)."""
    settings = settings or Settings()
    metrics = metrics or ServingMetrics()
    platform = Platform(settings)
    predicting = InFlight()  # counted by the middleware, read by the batcher
    state = ServingState(
        settings=settings,
        platform=platform,
        metrics=metrics,
        manager=manager or ModelManager(settings, metrics=metrics),
        cache=cache or PredictionCache.from_settings(settings, metrics),
        prediction_logger=prediction_logger
        or PredictionLogger(
            lambda: platform.prepare().engine,
            batch_size=settings.serving.log_batch_size,
            flush_interval_s=settings.serving.log_flush_s,
            metrics=metrics,
        ),
        batcher=batcher
        or MicroBatcher(
            max_products=settings.serving.batch_max_products,
            max_wait_s=settings.serving.batch_wait_ms / 1000.0,
            metrics=metrics,
            requests_in_flight=predicting,
        ),
        shadow=shadow
        or ShadowScorer(
            lambda: platform.prepare().engine,
            share=settings.serving.shadow_share,
            salt=settings.ab.salt,
            max_queue=settings.serving.shadow_queue_size,
            metrics=metrics,
            busy=predicting,
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:  # plain `uvicorn serving.app:app`: make INFO logs visible
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        state.prediction_logger.start()
        import torch

        # Unset: every CPU this container may use (torch's own default counts the node's cores).
        torch.set_num_threads(settings.serving.torch_threads or available_cpus())
        state.batcher.start()
        state.shadow.start()
        if load_models:
            await run_in_threadpool(state.manager.start)  # first load: seconds of I/O, off the event loop
        try:
            yield
        finally:
            state.manager.stop()
            await run_in_threadpool(state.batcher.close)
            await run_in_threadpool(state.shadow.close)
            await run_in_threadpool(state.prediction_logger.close)
            state.cache.close()
            if os.environ.get(MULTIPROC_ENV):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="Rakuten product classifier",
        version="1",
        summary="Classifies Rakuten France products into the 27 prdtypecode classes (champion/challenger A/B).",
        lifespan=lifespan,
    )
    app.state.serving = state
    install_error_handlers(app)
    for module in (predict, feedback, admin, reports, health):
        app.include_router(module.router)
    include_review(app, state)  # before the observability middleware, which stays outermost
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, predicting=predicting)
    return app


app = create_app()


def torch_threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Workers share ``cpus`` (default: the usable CPUs, a container's CPU limit, not the node's cores):
    each gets its slice, so their torch thread pools do not oversubscribe them."""
    return max(1, (cpus or available_cpus()) // workers)


def run_server(host: str = "127.0.0.1", port: int = 8000, workers: int | None = None, *, access_log: bool = True) -> None:
    """Run ``serving.app:app`` under uvicorn; several workers share one Prometheus view.

    Each worker is a separate process with its own models, cache client and log writer;
    ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder unless already set) lets ``/metrics`` on any
    worker report the sum over all of them.
    """
    import tempfile

    import uvicorn

    workers = workers or Settings().serving.workers
    if workers > 1 and not os.environ.get(TORCH_THREADS_ENV):
        os.environ[TORCH_THREADS_ENV] = str(torch_threads_per_worker(workers))
    if workers > 1 and not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="rakuten-prometheus-")
        log.info("%d workers: Prometheus multiprocess folder %s", workers, os.environ[MULTIPROC_ENV])
    uvicorn.run("serving.app:app", host=host, port=port, workers=workers, proxy_headers=True, access_log=access_log)
