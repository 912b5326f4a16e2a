"""Bearer-token guard of the admin routes (reload, traffic).

The token is ``RAKUTEN_API_ADMIN_TOKEN``, compared in constant time. With no token configured
the admin routes are off (503) rather than open: an unset secret must never mean "no auth".
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.routes.deps import State
from serving.routes.errors import ApiError

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <RAKUTEN_API_ADMIN_TOKEN>")


def token_matches(header_value: str, expected: str) -> bool:
    """Constant-time comparison of the raw header bytes with the UTF-8 token.

    ASGI servers decode header bytes as latin-1, so encoding back to latin-1 recovers exactly
    what the client sent, and a non-ASCII token works when the client sends it as UTF-8.
    """
    return hmac.compare_digest(header_value.encode("latin-1"), expected.encode("utf-8"))


def require_admin(state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    secret = state.settings.serving.admin_token
    expected = secret.get_secret_value() if secret is not None else ""
    if not expected:
        raise ApiError(503, "admin_disabled", "admin API is disabled: set RAKUTEN_API_ADMIN_TOKEN on the server to enable it")
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <token>' header", headers=challenge)
    if not token_matches(credentials.credentials, expected):
        log.warning("admin call with a wrong token refused")
        raise ApiError(401, "unauthorized", "invalid admin token", headers=challenge)


AdminOnly = Depends(require_admin)
