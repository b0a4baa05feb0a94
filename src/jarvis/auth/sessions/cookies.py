"""The session and CSRF cookies, and the CSRF token derived from the session.

The session cookie holds a random id (HttpOnly). The CSRF token is an HMAC of that id under
the secret key, so it needs no storage, changes whenever the session id does and cannot be
forged without the key. It is sent to the browser in a readable ``jarvis_csrf`` cookie and
in ``GET /api/csrf``; unsafe requests authenticated by the session cookie must echo it in
the ``X-CSRF-Token`` header (or a ``csrf_token`` form field).
"""

from __future__ import annotations

import hmac

from starlette.responses import Response

from jarvis.kit.secrets import keyed_digest
from jarvis.settings import Settings

SESSION_COOKIE = "jarvis_session"
CSRF_COOKIE = "jarvis_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "csrf_token"


def csrf_token_for(secret_key: str, session_token: str) -> str:
    """The CSRF token that goes with a session id."""
    return keyed_digest(secret_key, "csrf:" + session_token)


def csrf_matches(secret_key: str, session_token: str, presented: str | None) -> bool:
    """True when ``presented`` is the session's CSRF token (compared in constant time)."""
    if not presented:
        return False
    expected = csrf_token_for(secret_key, session_token)
    return hmac.compare_digest(expected.encode(), presented.encode())


def set_session_cookies(
    response: Response, token: str, *, max_age: int, secret_key: str, settings: Settings
) -> None:
    """Hand the browser a new session id and the CSRF token that goes with it."""
    secure = settings.is_production
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token_for(secret_key, token),
        max_age=max_age,
        httponly=False,
        samesite="lax",
        secure=secure,
    )


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
