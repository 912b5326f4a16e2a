"""The review pages under ``/review``: login, the queue (HTML and JSON), a label or a skip per POST, product images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from rakuten_ml.labels import CLASS_CODES, CLASS_NAMES, KNOWN_CODES
from serving.review.auth import CSRF_FIELD, CsrfChecked, MaybeReviewer, Reviewer, Reviewers, csrf_token, reviewer_for, start_session
from serving.review.labels import write_label, write_skip
from serving.review.order import RankedItem
from serving.review.sanitize import sanitize_description
from serving.review.service import ReviewService
from serving.routes.errors import ApiError

log = logging.getLogger(__name__)

PREFIX = "/review"
HERE = Path(__file__).parent
# The page loads nothing but itself: no inline script, no remote image, font or frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store", "X-Frame-Options": "DENY",
}
templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True))
ALL_CLASSES = [(code, CLASS_NAMES[code]) for code in sorted(CLASS_CODES, key=lambda c: CLASS_NAMES[c])]

router = APIRouter(prefix=PREFIX, tags=["review"], include_in_schema=False)


def service(request: Request) -> ReviewService:
    return request.app.state.review


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _see(path: str) -> Response:
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


# ----------------------------------------------------------------------------- login
@router.get("/login")
def login_page(request: Request, _: Reviewers, reviewer: MaybeReviewer) -> Response:
    if reviewer is not None and not _wants_json(request):
        return _see(PREFIX)
    token = csrf_token(request.session)
    if _wants_json(request):
        return JSONResponse({"csrf_token": token, "reviewer": reviewer})
    return _page(request, "login.html", {"csrf_token": token, "error": None})


@router.post("/login", dependencies=[CsrfChecked])
def login(request: Request, tokens: Reviewers, token: Annotated[str, Form(max_length=512)] = "") -> Response:
    name = reviewer_for(tokens, token)
    if name is None:
        log.warning("review login with a wrong token refused")
        if _wants_json(request):
            raise ApiError(401, "unauthorized", "invalid reviewer token")
        return _page(request, "login.html", {"csrf_token": csrf_token(request.session), "error": "Unknown token."}, status_code=401)
    fresh = start_session(request.session, name, tokens[name])
    log.info("reviewer %s logged in", name)
    return JSONResponse({"reviewer": name, "csrf_token": fresh}) if _wants_json(request) else _see(PREFIX)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    request.session.clear()
    return _see(f"{PREFIX}/login")


# ----------------------------------------------------------------------------- the queue
def _item_json(ranked: RankedItem) -> dict[str, Any]:
    item = ranked.item
    return {
        "productid": item.productid, "predicted_code": item.predicted_code, "predicted_name": CLASS_NAMES.get(item.predicted_code, ""),
        "confidence": item.confidence, "model_version": item.model_version, "disagreement": item.disagreement,
        "challenger_code": item.challenger_code, "priority": ranked.priority, "image_url": f"{PREFIX}/image/{item.productid}",
    }


@router.get("")
def queue_page(request: Request, reviewer: MaybeReviewer) -> Response:
    if reviewer is None:
        return _see(f"{PREFIX}/login")
    review = service(request)
    items, total = review.queue.for_reviewer(reviewer)
    card: dict[str, Any] | None = None
    if items:
        first = items[0]
        product = review.product(first.item.productid)
        top, champion_version = review.top_classes(product)
        card = {
            "item": first.item, "priority": first.priority, "top": top, "champion_version": champion_version,
            "designation": product.get("designation") or "", "has_image": bool(product.get("image_key")),
            "description": Markup(sanitize_description(product.get("description"))),  # noqa: S704 - nh3 allow-list output
            "predicted_name": CLASS_NAMES.get(first.item.predicted_code, ""),
        }
    context = {"reviewer": reviewer, "csrf_token": csrf_token(request.session), "card": card, "upcoming": items[1:],
               "total": total, "classes": ALL_CLASSES, "names": CLASS_NAMES, "csrf_field": CSRF_FIELD}
    return _page(request, "queue.html", context)


@router.get("/queue.json")
def queue_json(request: Request, reviewer: Reviewer, limit: Annotated[int | None, Query(ge=1, le=500)] = None) -> JSONResponse:
    items, total = service(request).queue.for_reviewer(reviewer, limit)
    return JSONResponse({"reviewer": reviewer, "csrf_token": csrf_token(request.session), "total": total,
                         "items": [_item_json(r) for r in items]}, headers={"Cache-Control": "no-store"})


def _queued(review: ReviewService, productid: int) -> RankedItem:
    found = review.queue.find(productid)
    if found is None:
        raise ApiError(404, "not_queued", f"product {productid} is not in the review queue")
    return found


@router.get("/image/{productid}")
def product_image(request: Request, productid: int, _: Reviewer) -> Response:
    """The photo of a queued product, by productid: never an arbitrary object-store key."""
    review = service(request)
    _queued(review, productid)
    data = review.image(review.product(productid))
    if data is None:
        raise ApiError(404, "no_image", f"product {productid} has no readable image")
    media_type = "image/png" if data.startswith(b"\x89PNG") else "image/webp" if data[8:12] == b"WEBP" else "image/jpeg"
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff",
                                                           "Content-Security-Policy": "default-src 'none'"})


# ----------------------------------------------------------------------------- labels and skips
@router.post("/label", dependencies=[CsrfChecked])
def label(request: Request, reviewer: Reviewer, productid: Annotated[int, Form(ge=1)], prdtypecode: Annotated[int, Form()]) -> Response:
    if prdtypecode not in KNOWN_CODES:
        raise ApiError(422, "unknown_prdtypecode", f"prdtypecode {prdtypecode} is not one of the 27 classes")
    review = service(request)
    item = _queued(review, productid).item
    write_label(review.state.platform.prepare().engine, review.labelled(), reviewer=reviewer, item=item, prdtypecode=prdtypecode,
                product=review.product(productid))
    review.metrics.labels.labels(reviewer).inc()
    if prdtypecode == item.predicted_code:
        review.metrics.agreements.labels(reviewer).inc()
    log.info("reviewer %s labelled product %d as %d (model said %d)", reviewer, productid, prdtypecode, item.predicted_code)
    if _wants_json(request):
        return JSONResponse({"productid": productid, "prdtypecode": prdtypecode, "reviewer": reviewer,
                             "agrees": prdtypecode == item.predicted_code})
    return _see(PREFIX)


@router.post("/skip", dependencies=[CsrfChecked])
def skip(request: Request, reviewer: Reviewer, productid: Annotated[int, Form(ge=1)]) -> Response:
    review = service(request)
    _queued(review, productid)
    write_skip(review.state.platform.prepare().engine, reviewer=reviewer, productid=productid)
    review.metrics.skips.labels(reviewer).inc()
    return JSONResponse({"productid": productid, "skipped": True, "reviewer": reviewer}) if _wants_json(request) else _see(PREFIX)
