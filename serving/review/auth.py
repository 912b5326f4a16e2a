"""Reviewer login and CSRF for the review pages: tokens from ``RAKUTEN_REVIEW_REVIEWER_TOKENS``, a signed
session cookie (Starlette's ``SessionMiddleware``, key ``RAKUTEN_REVIEW_SESSION_SECRET``), and a CSRF
token kept in that session that every form POST must echo (form field or ``X-CSRF-Token`` header).

Like the admin routes, no tokens (or no session key) means the pages answer 503, never "no auth".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import MutableMapping
from typing import Annotated, Any

from fastapi import Depends, Form, Header, Request

from serving.routes.deps import State
from serving.routes.errors import ApiError

log = logging.getLogger(__name__)

TOKENS_VARIABLE = "RAKUTEN_REVIEW_REVIEWER_TOKENS"
SECRET_VARIABLE = "RAKUTEN_REVIEW_SESSION_SECRET"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def reviewer_for(tokens: dict[str, str], presented: str) -> str | None:
    """The reviewer whose token is ``presented``; every token is compared, in constant time."""
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8")):
            found = name
    return found


def token_fingerprint(token: str) -> str:
    """Kept in the session: rotating a reviewer's token ends their open sessions."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's CSRF token, made on first use."""
    if not isinstance(session.get("csrf"), str):
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def start_session(session: MutableMapping[str, Any], reviewer: str, token: str) -> str:
    """A fresh session for ``reviewer`` (nothing of the anonymous one survives); its CSRF token."""
    session.clear()
    session.update(reviewer=reviewer, key=token_fingerprint(token))
    return csrf_token(session)


def configured_tokens(state: State) -> dict[str, str]:
    """The reviewers, or 503 when the review pages are not configured."""
    review = state.settings.review
    tokens = review.reviewers()
    if not tokens or review.session_secret is None or not review.session_secret.get_secret_value():
        raise ApiError(503, "review_disabled",
                       f"the review queue is disabled: set {TOKENS_VARIABLE} ('name:token,...') and {SECRET_VARIABLE} on the server")
    return tokens


Reviewers = Annotated[dict[str, str], Depends(configured_tokens)]


def session_reviewer(request: Request, tokens: Reviewers) -> str | None:
    """The logged-in reviewer, if the session names one whose token is still the one they logged in with."""
    name = request.session.get("reviewer")
    if isinstance(name, str) and name in tokens and hmac.compare_digest(str(request.session.get("key", "")), token_fingerprint(tokens[name])):
        return name
    return None


MaybeReviewer = Annotated[str | None, Depends(session_reviewer)]


def require_reviewer(reviewer: MaybeReviewer) -> str:
    if reviewer is None:
        raise ApiError(401, "login_required", "log in at /review/login first")
    return reviewer


Reviewer = Annotated[str, Depends(require_reviewer)]


def require_csrf(
    request: Request, _: Reviewers,
    form_token: Annotated[str | None, Form(alias=CSRF_FIELD)] = None,
    header_token: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
) -> None:
    """403 unless the POST carries this session's CSRF token."""
    expected = request.session.get("csrf")
    presented = form_token or header_token or ""
    if not isinstance(expected, str) or not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
        log.warning("review POST %s without a valid CSRF token refused", request.url.path)
        raise ApiError(403, "csrf_failed", "missing or stale CSRF token: reload the page and try again")


CsrfChecked = Depends(require_csrf)
