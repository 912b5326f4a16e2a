"""The human review queue (``/review``): reviewers label the products the models are unsure of or disagree on.

``include_review(app, state)`` adds it to a serving app; see docs/review.md.
"""

from __future__ import annotations

import secrets

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from serving.review.routes import HERE, PREFIX, router
from serving.review.service import ReviewService
from serving.routes.deps import ServingState

SESSION_COOKIE = "rakuten_review"
SESSION_MAX_AGE_S = 8 * 3600  # a working day: a stolen cookie stops working by the next one


def include_review(app: FastAPI, state: ServingState, *, queue_ttl_s: float | None = None) -> None:
    """Mount the review pages, their static files and the signed session cookie on ``app`` (before it starts)."""
    secret = state.settings.review.session_secret
    # Without a secret the pages answer 503 before reading a session; a random key keeps the middleware harmless.
    key = secret.get_secret_value() if secret is not None and secret.get_secret_value() else secrets.token_urlsafe(32)
    ttl_s = state.settings.review.queue_cache_s if queue_ttl_s is None else queue_ttl_s
    app.state.review = ReviewService.build(state, ttl_s=ttl_s)
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="review-static")
    app.add_middleware(SessionMiddleware, secret_key=key, session_cookie=SESSION_COOKIE, max_age=SESSION_MAX_AGE_S,
                       path=PREFIX, same_site="strict")


__all__ = ["include_review"]
