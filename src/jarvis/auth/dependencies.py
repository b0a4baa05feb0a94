"""Request guards: who the caller is, what they may do, CSRF and rate limits.

A caller authenticates with ``Authorization: Bearer <token>`` or the session cookie.
``request_guard`` runs before every HTTP route (an application-wide dependency): it resolves
the caller once, checks the CSRF token of unsafe requests authenticated by the cookie and
counts the request against the caller's rate limit. Routes then declare what they
need with the guards of ``jarvis.core.guards`` (``Authenticated``, ``AgentsWriter``, ...),
which read the caller this module resolved (``create_app`` installs ``resolve_principal``
as the application's identity resolver).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request
from starlette.requests import HTTPConnection

from jarvis.auth.credentials import CREDENTIALS
from jarvis.auth.sessions.cookies import CSRF_FORM_FIELD, CSRF_HEADER, SESSION_COOKIE, csrf_matches
from jarvis.config.dependencies import CONFIG
from jarvis.core.identity import Principal
from jarvis.core.scope import GLOBAL, Scope
from jarvis.errors import Forbidden, TooManyRequests, Unauthorized
from jarvis.kit.ratelimit import RATE_LIMITER
from jarvis.settings import SECRET_KEY, SETTINGS

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
API_LIMIT_KEY = "ratelimit.api_requests_per_minute"
EXECUTIONS_LIMIT_KEY = "ratelimit.executions_per_minute"
FORM_TYPE = "application/x-www-form-urlencoded"
_RESOLVED = "jarvis_principal_resolved"
# Signing in draws no authority from the session the browser already has (it replaces it),
# so a stale page's sign-in form works without that session's token (the API's and the
# sign-in page's).
CSRF_EXEMPT_PATHS = frozenset({"/api/login", "/login"})

__all__ = ["SESSION_COOKIE", "request_guard", "resolve_principal"]


def secret_key(request: HTTPConnection) -> str:
    """The application's secret key (signs CSRF tokens and OAuth state)."""
    return SECRET_KEY.get(request)


def client_ip(request: HTTPConnection) -> str:
    return request.client.host if request.client else "unknown"


def bearer_token(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized(
            "the Authorization header must be 'Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return value.strip()


async def resolve_principal(request: HTTPConnection) -> Principal | None:
    """The caller (None without credentials), resolved once per request."""
    if getattr(request.state, _RESOLVED, False):
        principal: Principal | None = request.state.principal
        return principal
    credentials = CREDENTIALS.get(request)
    token = bearer_token(request)
    if token is not None:
        principal = await credentials.from_token(token)
        if principal is None:
            raise Unauthorized(
                "the bearer token is unknown, expired or revoked",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        # An unknown or ended session is no session: the caller is anonymous.
        principal = await credentials.from_session(cookie) if cookie else None
    request.state.principal = principal
    setattr(request.state, _RESOLVED, True)
    return principal


async def still_authenticated(request: HTTPConnection) -> bool:
    """Whether the request's credential still works now (for long-lived answers: a
    revocation drops the cached identity on every instance, so this sees it at once)."""
    credentials = CREDENTIALS.get(request)
    try:
        token = bearer_token(request)
    except Unauthorized:
        return False
    if token is not None:
        return await credentials.from_token(token) is not None
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return False
    return await credentials.from_session(cookie) is not None


async def _presented_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    # A plain HTML form (no JavaScript) posts the token as a field.
    if request.headers.get("content-type", "").startswith(FORM_TYPE):
        fields = parse_qs((await request.body()).decode("latin-1"), max_num_fields=1000)
        values = fields.get(CSRF_FORM_FIELD)
        return values[0] if values else None
    return None


async def check_csrf(request: Request) -> None:
    """403 unless the request echoes the session's CSRF token (header or form field)."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    presented = await _presented_csrf(request)
    if not csrf_matches(secret_key(request), cookie, presented):
        why = "missing" if not presented else "wrong"
        raise Forbidden(
            f"the CSRF token is {why}: requests signed in by cookie must send the "
            f"jarvis_csrf cookie's value in the X-CSRF-Token header (or a {CSRF_FORM_FIELD} "
            "form field); API clients should use a bearer token instead",
            extra={"reason": "csrf"},
        )


async def count_against(
    request: HTTPConnection, limit_key: str, scope: Scope, identity: str, what: str
) -> None:
    """Count one request against the limit configured under ``limit_key`` (per minute, read
    at ``scope``) for ``identity``; 429 with ``Retry-After`` once it is used up."""
    if not SETTINGS.get(request).rate_limits:
        return
    per_minute = await CONFIG.get(request).get(limit_key, scope, as_type=int)
    wait = await RATE_LIMITER.get(request).hit(limit_key, per_minute, identity)
    if wait is not None:
        raise TooManyRequests.retry_after(
            f"more than {per_minute} {what} a minute ({limit_key})", wait
        )


async def enforce_api_limit(request: HTTPConnection, principal: Principal | None) -> None:
    """429 when the caller (user, token, or anonymous IP) exceeds their API rate limit."""
    if principal is None:
        scope, identity = GLOBAL, f"ip:{client_ip(request)}"
    elif principal.via == "token":
        scope, identity = Scope(persona=principal.persona), f"token:{principal.credential_id}"
    else:
        scope, identity = Scope(persona=principal.persona), f"user:{principal.user_id}"
    await count_against(request, API_LIMIT_KEY, scope, identity, "API requests")


async def limit_executions(request: Request, principal: Principal) -> None:
    """429 when the user starts more executions a minute than their persona allows."""
    await count_against(
        request,
        EXECUTIONS_LIMIT_KEY,
        Scope(persona=principal.persona),
        f"user:{principal.user_id}",
        "executions started",
    )


async def request_guard(request: HTTPConnection) -> None:
    """Application-wide: resolve the caller, check CSRF, count the request."""
    if request.scope["type"] != "http":
        return  # the WebSocket endpoint authenticates its own way (docs/realtime.md)
    assert isinstance(request, Request)  # noqa: S101 - HTTP scopes get a Request
    principal = await resolve_principal(request)
    if (
        request.method not in SAFE_METHODS
        and principal is not None
        and principal.via == "session"
        and request.url.path not in CSRF_EXEMPT_PATHS
    ):
        await check_csrf(request)
    await enforce_api_limit(request, principal)
