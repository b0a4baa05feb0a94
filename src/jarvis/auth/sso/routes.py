"""Sign-in with GitHub or OpenID Connect: ``GET /api/login/providers``,
``GET /api/login/{github,oidc}`` and the callbacks ``GET /api/callback`` (GitHub, the
seed's path) and ``GET /api/callback/oidc``.

These routes own their transactions instead of taking the request's: the callback talks to
the provider between them (no database transaction waits on the network), the used state
must stay deleted even when the sign-in then fails, and every failure is audited as
``auth.login_failed`` in a transaction that commits although the request answers an error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from jarvis.audit.service import record_audit
from jarvis.auth.sessions.cookies import SESSION_COOKIE, set_session_cookies
from jarvis.auth.sessions.service import start_session
from jarvis.auth.sso.identities import SSO_ACTOR, ProviderIdentity, sign_in_identity
from jarvis.auth.sso.oauth import (
    CALLBACK_PATHS,
    GITHUB,
    LOGIN_PATHS,
    OIDC,
    STATE_COOKIE_PATH,
    STATE_LIFETIME,
    SignInProvider,
    check_state_binding,
    failure_reason,
    new_pending_login,
    provider_error,
    require_live,
    safe_next_path,
    state_binding,
    state_cookie_name,
    store_pending_login,
    take_login_state,
)
from jarvis.auth.sso.oauth import bad_request as oauth_bad_request
from jarvis.auth.sso.providers import sign_in_providers
from jarvis.config.dependencies import CONFIG
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.session import DATABASE, unit_of_work
from jarvis.errors import JarvisError
from jarvis.kit.schema import ApiModel
from jarvis.settings import SECRET_KEY, SETTINGS

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api", tags=["auth"])

LOGIN_FAILED = "auth.login_failed"


class ProviderOut(ApiModel):
    id: str
    name: str
    login_url: str


class ProvidersOut(ApiModel):
    items: list[ProviderOut]


def callback_url(request: Request, provider: str) -> str:
    """Where the provider sends the browser back: on ``JARVIS_PUBLIC_URL`` when set."""
    settings = SETTINGS.get(request)
    base = settings.public_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK_PATHS[provider]


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _clear_state_cookie(response: Response, provider: str) -> None:
    response.delete_cookie(state_cookie_name(provider), path=STATE_COOKIE_PATH)


async def _record_failure(
    request: Request,
    provider: str,
    reason: str,
    detail: str,
    identity: ProviderIdentity | None,
) -> None:
    """Append ``auth.login_failed`` in a transaction of its own (the attempt's rolled back)."""
    after: dict[str, str | None] = {
        "via": provider,
        "reason": reason,
        "detail": detail[:500],
        "ipAddress": _client_ip(request),
    }
    if identity is not None:
        after.update(email=identity.email, subject=identity.subject)
    try:
        async with unit_of_work(DATABASE.get(request)) as session:
            await record_audit(
                session,
                actor=SSO_ACTOR,
                action=LOGIN_FAILED,
                entity_type="sign_in",
                entity_id=provider,
                after=after,
            )
    except Exception:
        # The answer the browser gets must not change because the ledger could not be
        # written; the failure is logged instead.
        log.exception("oauth_failure_not_audited", via=provider, reason=reason)


def _forget_state_cookie_on(exc: JarvisError, provider: str) -> None:
    """Make the error answer clear the (now useless) state cookie too."""
    scratch = Response()
    _clear_state_cookie(scratch, provider)
    exc.headers = {**exc.headers, "set-cookie": scratch.headers["set-cookie"]}


@router.get(
    "/login/providers",
    response_model=ProvidersOut,
    summary="The identity providers this server offers sign-in with",
)
async def list_providers(request: Request) -> ProvidersOut:
    return ProvidersOut(
        items=[
            ProviderOut(id=p.id, name=p.name, login_url=LOGIN_PATHS[p.id])
            for p in sign_in_providers(request)
        ]
    )


async def _begin(request: Request, provider_id: str, next_path: str | None) -> Response:
    provider = sign_in_providers(request).get(provider_id)
    pending = new_pending_login(
        provider_id, next_path=safe_next_path(next_path), with_nonce=provider.uses_nonce
    )
    try:
        url = await provider.authorize_url(pending, callback_url(request, provider_id))
        async with unit_of_work(DATABASE.get(request)) as session:
            await store_pending_login(session, pending)
    except JarvisError as exc:
        await _record_failure(request, provider_id, failure_reason(exc), exc.detail, None)
        raise
    settings = SETTINGS.get(request)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        state_cookie_name(provider_id),
        state_binding(SECRET_KEY.get(request), pending.state),
        max_age=int(STATE_LIFETIME.total_seconds()),
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.is_production,
    )
    return response


NextPath = Annotated[
    str | None,
    Query(alias="next", description="A path on this site to return to after signing in"),
]


@router.get(
    "/login/github",
    status_code=302,
    response_class=RedirectResponse,
    summary="Sign in with GitHub (redirects to GitHub)",
)
async def login_github(request: Request, next_path: NextPath = None) -> Response:
    return await _begin(request, GITHUB, next_path)


@router.get(
    "/login/oidc",
    status_code=302,
    response_class=RedirectResponse,
    summary="Sign in with the OpenID Connect provider (redirects to it)",
)
async def login_oidc(request: Request, next_path: NextPath = None) -> Response:
    return await _begin(request, OIDC, next_path)


class _Attempt:
    """One callback: carries what is known so far, for the failure's audit entry."""

    def __init__(self, request: Request, provider: SignInProvider) -> None:
        self.request = request
        self.provider = provider
        self.identity: ProviderIdentity | None = None

    async def complete(
        self, code: str | None, state: str | None, error: str | None, error_description: str | None
    ) -> Response:
        request, provider = self.request, self.provider
        db = DATABASE.get(request)
        config = CONFIG.get(request)
        secret_key = SECRET_KEY.get(request)
        state = check_state_binding(
            secret_key, state, request.cookies.get(state_cookie_name(provider.id))
        )
        async with unit_of_work(db) as session:
            taken = await take_login_state(session, provider.id, state)
        stored = require_live(taken)
        if error:
            raise provider_error(provider.name, error, error_description)
        if not code:
            raise oauth_bad_request("code_missing", "the sign-in callback carries no code")
        redirect_uri = callback_url(request, provider.id)
        self.identity = await provider.identity(code, stored, redirect_uri)
        default_persona = await config.get("auth.sso_default_persona", GLOBAL, as_type=str)
        allowed_domains = await config.get("auth.sso_allowed_domains", GLOBAL, as_type=list[str])
        async with unit_of_work(db) as session:
            user = await sign_in_identity(
                session,
                self.identity,
                default_persona=default_persona,
                allowed_domains=allowed_domains,
            )
            days = await config.get("auth.session_days", Scope(persona=user.persona), as_type=int)
            started = await start_session(
                session,
                user,
                secret_key=secret_key,
                lifetime=timedelta(days=days),
                previous_token=request.cookies.get(SESSION_COOKIE),
                ip_address=_client_ip(request),
                user_agent=request.headers.get("user-agent"),
                via=provider.id,
            )
        response = RedirectResponse(stored.next_path, status_code=303)
        set_session_cookies(
            response,
            started.token,
            max_age=days * 24 * 3600,
            secret_key=secret_key,
            settings=SETTINGS.get(request),
        )
        _clear_state_cookie(response, provider.id)
        return response


async def _finish(
    request: Request,
    provider_id: str,
    code: str | None,
    state: str | None,
    error: str | None,
    error_description: str | None,
) -> Response:
    attempt = _Attempt(request, sign_in_providers(request).get(provider_id))
    try:
        return await attempt.complete(code, state, error, error_description)
    except JarvisError as exc:
        await _record_failure(
            request, provider_id, failure_reason(exc), exc.detail, attempt.identity
        )
        _forget_state_cookie_on(exc, provider_id)
        raise
    except Exception as exc:
        # Only the type: an unexpected error's text may hold what must not be stored.
        await _record_failure(
            request, provider_id, "internal_error", type(exc).__name__, attempt.identity
        )
        raise


@router.get(
    "/callback",
    status_code=303,
    response_class=RedirectResponse,
    summary="GitHub sends the browser back here; signs in and redirects to 'next'",
)
async def github_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    return await _finish(request, GITHUB, code, state, error, error_description)


@router.get(
    "/callback/oidc",
    status_code=303,
    response_class=RedirectResponse,
    summary="The OpenID Connect provider sends the browser back here",
)
async def oidc_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    return await _finish(request, OIDC, code, state, error, error_description)
