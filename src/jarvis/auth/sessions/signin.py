"""Signing in with a password and signing out: the workflows the API and the sign-in page
share (``POST /api/login`` and ``POST /login``, ``POST /api/logout`` and ``POST /logout``).

Both take the request (its cookies, address, and the app's database, configuration,
rate limiter and credential cache) and the response the cookies are set on; they raise
``JarvisError`` (401, 429) and leave the answer's shape to the caller.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import Response

from jarvis.auth.announce import announce_revocation
from jarvis.auth.dependencies import client_ip, count_against, secret_key
from jarvis.auth.models import User
from jarvis.auth.sessions.cookies import (
    SESSION_COOKIE,
    clear_session_cookies,
    set_session_cookies,
)
from jarvis.auth.sessions.service import end_session, start_session
from jarvis.auth.users.lockout import INCORRECT_CREDENTIALS, attempt_login
from jarvis.auth.users.schemas import UserOut
from jarvis.auth.users.service import get_user_with_profile
from jarvis.config.service import ConfigService
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.session import DATABASE, unit_of_work
from jarvis.errors import Unauthorized
from jarvis.settings import SETTINGS

LOGIN_LIMIT_KEY = "ratelimit.login_attempts_per_minute"


async def limit_login(request: HTTPConnection, email: str) -> None:
    """429 when this account or this address has tried to sign in too often."""
    for identity, what in (
        (f"account:{email}", "sign-in attempts for this account"),
        (f"ip:{client_ip(request)}", "sign-in attempts from this address"),
    ):
        await count_against(request, LOGIN_LIMIT_KEY, GLOBAL, identity, what)


async def start_browser_session(
    request: HTTPConnection,
    response: Response,
    config: ConfigService,
    session: AsyncSession,
    user: User,
    via: str,
) -> None:
    """Start a fresh session for ``user`` (ending the browser's previous one: no fixation,
    announced to every instance) and hand its cookies to the browser on ``response``."""
    days = await config.get("auth.session_days", Scope(persona=user.persona), as_type=int)
    started = await start_session(
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


async def sign_in_with_password(
    request: HTTPConnection,
    response: Response,
    config: ConfigService,
    email: str,
    password: str,
) -> UserOut:
    """Check e-mail and password (rate limit, lockout, audit), start a session and set its
    cookies on ``response``; 401 (or 429) otherwise."""
    await limit_login(request, email)
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
            await start_browser_session(
                request, response, config, session, attempt.user, "password"
            )
            user = await get_user_with_profile(session, attempt.user.id)
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


async def sign_out(request: HTTPConnection, response: Response, session: AsyncSession) -> None:
    """End the browser's session (announced to every instance) and clear its cookies."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        ended = await end_session(session, token, secret_key=secret_key(request))
        if ended is not None:
            announce_revocation(request, session, session_ids=[ended])
    clear_session_cookies(response)
