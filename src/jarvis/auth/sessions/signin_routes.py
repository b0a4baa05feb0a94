"""Signing in and out: ``POST /api/login``, ``POST /api/logout`` and ``GET /api/csrf``.

The workflows are ``jarvis.auth.sessions.signin``'s (the sign-in page calls them too)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from jarvis.auth.dependencies import secret_key
from jarvis.auth.sessions.cookies import SESSION_COOKIE, csrf_token_for
from jarvis.auth.sessions.schemas import CsrfOut, LoginRequest
from jarvis.auth.sessions.signin import sign_in_with_password, sign_out
from jarvis.auth.users.schemas import UserOut
from jarvis.config.dependencies import Config
from jarvis.core.guards import Authenticated
from jarvis.db.session import DbSession

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/login", response_model=UserOut, summary="Sign in with e-mail and password")
async def login(
    body: LoginRequest, request: Request, response: Response, config: Config
) -> UserOut:
    return await sign_in_with_password(request, response, config, body.email, body.password)


@router.post("/logout", status_code=204, summary="Sign out (ends the session)")
async def logout(request: Request, response: Response, session: DbSession) -> Response:
    await sign_out(request, response, session)
    response.status_code = 204
    return response


@router.get("/csrf", response_model=CsrfOut, summary="The CSRF token of your session")
async def csrf(principal: Authenticated, request: Request) -> CsrfOut:
    """Pages and scripts signed in by cookie send this in ``X-CSRF-Token`` with every unsafe
    request (it is also in the readable ``jarvis_csrf`` cookie). Callers with a bearer token
    need none: ``csrfToken`` is then null."""
    cookie = request.cookies.get(SESSION_COOKIE) if principal.via == "session" else None
    token = csrf_token_for(secret_key(request), cookie) if cookie else None
    return CsrfOut(csrf_token=token)
