"""Request guards: ``require_auth`` (401) and ``require_admin`` (403).

A caller authenticates with ``Authorization: Bearer <token>`` or the session cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jarvis.auth.service import Principal, principal_from_session, principal_from_token
from jarvis.db.session import DbSession
from jarvis.errors import Forbidden, Unauthorized

SESSION_COOKIE = "jarvis_session"


def secret_key(request: Request) -> str:
    key: str = request.app.state.secret_key
    return key


def bearer_token(request: Request) -> str | None:
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


async def current_principal(request: Request, session: DbSession) -> Principal | None:
    """The caller, or None when the request carries no credential."""
    token = bearer_token(request)
    if token is not None:
        principal = await principal_from_token(session, token)
        if principal is None:
            raise Unauthorized(
                "the bearer token is unknown, expired or revoked",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await principal_from_session(session, cookie, secret_key=secret_key(request))
    return None


async def require_auth(
    principal: Annotated[Principal | None, Depends(current_principal)],
) -> Principal:
    """The authenticated caller; 401 when there is none."""
    if principal is None:
        raise Unauthorized(
            "sign in (POST /api/login) or send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_auth)]) -> Principal:
    """The authenticated caller if they act as the admin persona; 403 otherwise."""
    if not principal.is_admin:
        raise Forbidden(
            f"this needs the admin persona; {principal.email} acts as '{principal.persona}'"
        )
    return principal


Authenticated = Annotated[Principal, Depends(require_auth)]
Admin = Annotated[Principal, Depends(require_admin)]
