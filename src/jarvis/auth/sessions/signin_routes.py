"""Sign-in routes: ``POST /api/login``, ``POST /api/logout``, ``GET /api/user``,
``POST /api/user/password`` and ``GET /api/csrf``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.announce import announce_revocation
from jarvis.auth.dependencies import client_ip, count_against, secret_key
from jarvis.auth.models import User
from jarvis.auth.sessions.cookies import (
    SESSION_COOKIE,
    clear_session_cookies,
    csrf_token_for,
    set_session_cookies,
)
from jarvis.auth.users import service
from jarvis.auth.users.lockout import INCORRECT_CREDENTIALS, attempt_login
from jarvis.auth.users.lockout import change_password as change_own_password
from jarvis.auth.users.schemas import CsrfOut, LoginRequest, PasswordChange, UserOut
from jarvis.config.dependencies import Config
from jarvis.config.service import ConfigService
from jarvis.core.guards import Authenticated
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.session import DATABASE, DbSession, unit_of_work
from jarvis.errors import Unauthorized
from jarvis.settings import SETTINGS

router = APIRouter(prefix="/api", tags=["auth"])

LOGIN_LIMIT_KEY = "ratelimit.login_attempts_per_minute"


async def _limit_login(request: Request, email: str) -> None:
    """429 when this account or this address has tried to sign in too often."""
    for identity, what in (
        (f"account:{email}", "sign-in attempts for this account"),
        (f"ip:{client_ip(request)}", "sign-in attempts from this address"),
    ):
        await count_against(request, LOGIN_LIMIT_KEY, GLOBAL, identity, what)


async def _start(
    request: Request,
    response: Response,
    config: ConfigService,
    session: DbSession,
    user: User,
    via: str,
) -> None:
    """Start a fresh session for ``user`` (ending the browser's previous one: no fixation)
    and hand its cookies to the browser."""
    days = await config.get("auth.session_days", Scope(persona=user.persona), as_type=int)
    started = await service.start_session(
        session,
        user,
        secret_key=secret_key(request),
        lifetime=timedelta(days=days),
        previous_token=request.cookies.get(SESSION_COOKIE),
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        via=via,
    )
    if started.replaced_session_id is not None:
        announce_revocation(request, session, session_ids=[started.replaced_session_id])
    set_session_cookies(
        response,
        started.token,
        max_age=days * 24 * 3600,
        secret_key=secret_key(request),
        settings=SETTINGS.get(request),
    )


@router.post("/login", response_model=UserOut, summary="Sign in with e-mail and password")
async def login(
    body: LoginRequest, request: Request, response: Response, config: Config
) -> UserOut:
    return await sign_in_with_password(request, response, config, body.email, body.password)


async def sign_in_with_password(
    request: Request, response: Response, config: ConfigService, email: str, password: str
) -> UserOut:
    """Check e-mail and password (rate limit, lockout, audit), start a session and set its
    cookies on ``response``; 401 (or 429) otherwise. The sign-in page shares it."""
    await _limit_login(request, email)
    threshold = await config.get("auth.lockout_threshold", GLOBAL, as_type=int)
    minutes = await config.get("auth.lockout_minutes", GLOBAL, as_type=int)
    # Its own transaction, not the request's: a refused attempt is recorded (failure count,
    # lockout, audit) and committed before the 401 goes out.
    async with unit_of_work(DATABASE.get(request)) as session:
        attempt = await attempt_login(
            session,
            email,
            password,
            lockout_threshold=threshold,
            lockout_minutes=minutes,
            ip_address=client_ip(request),
        )
        if attempt.user is not None:
            await _start(request, response, config, session, attempt.user, "password")
            user = await service.get_user_with_profile(session, attempt.user.id)
            out = UserOut.model_validate(user)
    if attempt.user is None:
        if attempt.reason in ("locked", "bad_password_locked") and attempt.locked_until:
            raise Unauthorized(
                "the account is locked after repeated failed sign-ins until "
                f"{attempt.locked_until.isoformat(timespec='seconds')}; an administrator "
                "can unlock it sooner"
            )
        raise Unauthorized(INCORRECT_CREDENTIALS)
    return out


@router.post("/logout", status_code=204, summary="Sign out (ends the session)")
async def logout(request: Request, response: Response, session: DbSession) -> Response:
    await sign_out(request, response, session)
    response.status_code = 204
    return response


async def sign_out(request: Request, response: Response, session: AsyncSession) -> None:
    """End the browser's session (announced to every instance) and clear its cookies."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        ended = await service.end_session(session, token, secret_key=secret_key(request))
        if ended is not None:
            announce_revocation(request, session, session_ids=[ended])
    clear_session_cookies(response)


@router.get("/user", response_model=UserOut, summary="The signed-in user")
async def current_user(principal: Authenticated, session: DbSession) -> UserOut:
    return UserOut.model_validate(await service.get_user_with_profile(session, principal.user_id))


@router.post(
    "/user/password",
    response_model=UserOut,
    summary="Change your password (ends your other sessions; this one gets a new id)",
)
async def change_password(
    body: PasswordChange,
    principal: Authenticated,
    request: Request,
    response: Response,
    session: DbSession,
    config: Config,
) -> UserOut:
    min_length = await config.get("auth.password_min_length", GLOBAL, as_type=int)
    user, ended = await change_own_password(
        session,
        principal.user_id,
        body.current_password,
        body.new_password,
        password_min_length=min_length,
    )
    announce_revocation(request, session, session_ids=ended)
    if principal.via == "session":
        await _start(request, response, config, session, user, "password")
    return UserOut.model_validate(await service.get_user_with_profile(session, user.id))


@router.get("/csrf", response_model=CsrfOut, summary="The CSRF token of your session")
async def csrf(principal: Authenticated, request: Request) -> CsrfOut:
    """Pages and scripts signed in by cookie send this in ``X-CSRF-Token`` with every unsafe
    request (it is also in the readable ``jarvis_csrf`` cookie). Callers with a bearer token
    need none: ``csrfToken`` is then null."""
    cookie = request.cookies.get(SESSION_COOKIE) if principal.via == "session" else None
    token = csrf_token_for(secret_key(request), cookie) if cookie else None
    return CsrfOut(csrf_token=token)
