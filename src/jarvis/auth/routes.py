"""Sign-in routes: ``POST /api/login``, ``POST /api/logout``, ``GET /api/user``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from jarvis.auth import service
from jarvis.auth.dependencies import SESSION_COOKIE, Authenticated, secret_key
from jarvis.auth.schemas import LoginRequest, UserOut
from jarvis.config.dependencies import Config
from jarvis.config.scope import Scope
from jarvis.db.session import DbSession

router = APIRouter(prefix="/api", tags=["auth"])


@router.post("/login", response_model=UserOut, summary="Sign in with e-mail and password")
async def login(
    body: LoginRequest, request: Request, response: Response, session: DbSession, config: Config
) -> UserOut:
    settings = request.app.state.settings
    user = await service.authenticate(session, body.email, body.password)
    # Business configuration: per persona, changeable without a deploy.
    days = await config.get("auth.session_days", Scope(persona=user.persona), as_type=int)
    started = await service.start_session(
        session,
        user,
        secret_key=secret_key(request),
        lifetime=timedelta(days=days),
        previous_token=request.cookies.get(SESSION_COOKIE),
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        max_age=days * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.is_production,
        path="/",
    )
    return UserOut.model_validate(await service.get_user_with_profile(session, user.id))


@router.post("/logout", status_code=204, summary="Sign out (ends the session)")
async def logout(request: Request, response: Response, session: DbSession) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await service.end_session(session, token, secret_key=secret_key(request))
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/user", response_model=UserOut, summary="The signed-in user")
async def current_user(principal: Authenticated, session: DbSession) -> UserOut:
    return UserOut.model_validate(await service.get_user_with_profile(session, principal.user_id))
