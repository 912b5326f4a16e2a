"""One JSON error shape for every failure, and no stack trace ever sent to a client.

Handled errors (validation, HTTP, platform errors) answer ``ErrorOut`` with a stable code;
anything unexpected is caught by the observability middleware, logged with its traceback
under the request id, and answered as a generic 500 naming that id.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rakuten_ml.errors import DatabaseError, ModelLoadError, ObjectStoreError
from serving.schemas import ErrorOut

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error", 503: "unavailable"}


class ApiError(Exception):
    """An error the API answers on purpose: HTTP status, stable code, human message."""

    def __init__(self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(status_code: int, code: str, message: str, rid: str, *, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorOut(error=code, message=message, request_id=rid, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status_code, headers=(headers or {}) | {REQUEST_ID_HEADER: rid})


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    # never echo "input" back: it may be a 10 MB image or a 30,000-character description
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, request_id(request), details=exc.details, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _clean_validation_errors(exc.errors())
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        message = f"{where}: {first['msg']}" + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
        return error_response(422, "validation_error", message, request_id(request), details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), request_id(request), headers=dict(exc.headers or {}))

    @app.exception_handler(ModelLoadError)
    async def _no_model(request: Request, exc: ModelLoadError) -> JSONResponse:
        log.warning("model unavailable: %s", exc)
        return error_response(503, "model_unavailable", "no model is loaded yet; retry shortly", request_id(request),
                              headers={"Retry-After": "5"})

    @app.exception_handler(DatabaseError)
    async def _database(request: Request, exc: DatabaseError) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return error_response(503, "database_unavailable", "the platform database is unavailable; retry later",
                              request_id(request), headers={"Retry-After": "10"})

    @app.exception_handler(ObjectStoreError)
    async def _store(request: Request, exc: ObjectStoreError) -> JSONResponse:
        log.error("object store unavailable: %s", exc)
        return error_response(503, "object_store_unavailable", "the object store is unavailable; retry later",
                              request_id(request), headers={"Retry-After": "10"})
