"""Signing in at an identity provider: what GitHub and OpenID Connect sign-in share.

The browser is sent to the provider with a random ``state`` and a PKCE challenge (and, for
OIDC, a nonce). The state is kept only as a digest in ``oauth_login_states``, single use
and valid for ten minutes, and is bound to the browser that started the sign-in by an
HttpOnly cookie holding its HMAC, so a callback carrying someone else's state fails (login
CSRF). The provider sends the browser back with a code, which Authlib's client exchanges
(with the PKCE verifier) for tokens. This module holds that flow, the ``next`` sanitiser,
the helpers every provider uses to talk HTTP and to clean what it sends, and the
``SignInProvider`` protocol; the providers are ``jarvis.auth.sso.github`` and
``jarvis.auth.sso.oidc``, and ``jarvis.auth.sso.providers`` lists the configured ones.

Every failure raises a ``JarvisError`` whose ``extra["reason"]`` names it (the problem
document carries it, and the audit entry records it); nothing a provider does turns into
a 500. Network calls never run inside a database transaction: see ``jarvis.auth.sso.routes``.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx2
import structlog
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
    AsyncOAuth2Client,
    OAuthError,
)
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.models import OAuthLoginState
from jarvis.auth.sso.identities import (
    EMAIL_LENGTH,
    NAME_LENGTH,
    URL_LENGTH,
    ProviderIdentity,
    refused,
)
from jarvis.errors import BadGateway, BadRequest, JarvisError
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.secrets import keyed_digest, new_token, sha256_hex

log = structlog.get_logger(__name__)

GITHUB = "github"
OIDC = "oidc"
CALLBACK_PATHS = {GITHUB: "/api/callback", OIDC: "/api/callback/oidc"}
LOGIN_PATHS = {GITHUB: "/api/login/github", OIDC: "/api/login/oidc"}
# The state cookie goes only to the callbacks (both live under this path).
STATE_COOKIE_PATH = "/api/callback"
STATE_LIFETIME = timedelta(minutes=10)
# How long one call to a provider may take before the sign-in fails with 502.
PROVIDER_TIMEOUT_SECONDS = 10.0
# Token-endpoint errors that mean the code (not our client registration) was refused.
CODE_ERRORS = frozenset({"invalid_grant", "bad_verification_code", "invalid_request"})
MAX_NEXT_LENGTH = 2048
MAX_STATE_LENGTH = 512


# --- failures -----------------------------------------------------------------------------


def bad_request(reason: str, detail: str) -> BadRequest:
    return BadRequest(detail, extra={"reason": reason})


def bad_gateway(reason: str, detail: str) -> BadGateway:
    return BadGateway(detail, extra={"reason": reason})


def failure_reason(exc: JarvisError) -> str:
    """The short reason a sign-in failed, as audited."""
    reason = exc.extra.get("reason")
    return reason if isinstance(reason, str) else exc.slug


# --- the return path ----------------------------------------------------------------------


def safe_next_path(value: str | None) -> str:
    """``value`` when it is a path on this site ("/..."), else "/" (no open redirect)."""
    if not value or len(value) > MAX_NEXT_LENGTH:
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        return "/"
    # Browsers read "\" as "/" ("/\evil.com" is "//evil.com"), and drop tabs and newlines.
    if "\\" in value or any(
        ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf"} for ch in value
    ):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


# --- login state --------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingLogin:
    """A sign-in on its way to the provider: what the callback will need back."""

    provider: str
    state: str
    code_verifier: str
    nonce: str | None
    next_path: str


def new_pending_login(provider: str, *, next_path: str, with_nonce: bool) -> PendingLogin:
    return PendingLogin(
        provider=provider,
        state=new_token(),
        # RFC 7636: 43 to 128 unreserved characters; this is 86.
        code_verifier=secrets.token_urlsafe(64),
        nonce=new_token() if with_nonce else None,
        next_path=next_path,
    )


async def store_pending_login(session: AsyncSession, pending: PendingLogin) -> None:
    """Keep the state (as a digest) until the callback; sweep states that expired."""
    now = utcnow()
    await session.execute(delete(OAuthLoginState).where(OAuthLoginState.expires_at < now))
    session.add(
        OAuthLoginState(
            state_hash=sha256_hex(pending.state),
            provider=pending.provider,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            next_path=pending.next_path,
            created_at=now,
            expires_at=now + STATE_LIFETIME,
        )
    )
    await session.flush()


def state_cookie_name(provider: str) -> str:
    return f"jarvis_oauth_{provider}"


def state_binding(secret_key: str, state: str) -> str:
    """The state cookie's value: ties the state to the browser without revealing it."""
    return keyed_digest(secret_key, "oauth-state:" + state)


def check_state_binding(secret_key: str, state: str | None, cookie: str | None) -> str:
    """The state, when the callback carries one and this browser started that sign-in."""
    if not state or len(state) > MAX_STATE_LENGTH:
        raise bad_request("state_missing", "the sign-in callback carries no valid state")
    if not cookie:
        raise bad_request(
            "state_mismatch",
            "this browser did not start this sign-in (no sign-in cookie); start again",
        )
    expected = state_binding(secret_key, state)
    if not hmac.compare_digest(expected.encode(), cookie.encode()):
        raise bad_request(
            "state_mismatch", "the sign-in state does not belong to this browser; start again"
        )
    return state


@dataclass(frozen=True)
class StoredLogin:
    code_verifier: str
    nonce: str | None
    next_path: str
    expires_at: datetime


async def take_login_state(session: AsyncSession, provider: str, state: str) -> StoredLogin | None:
    """Remove the state (single use) and return what was stored with it, if it existed."""
    row = (
        await session.execute(
            delete(OAuthLoginState)
            .where(
                OAuthLoginState.state_hash == sha256_hex(state),
                OAuthLoginState.provider == provider,
            )
            .returning(
                OAuthLoginState.code_verifier,
                OAuthLoginState.nonce,
                OAuthLoginState.next_path,
                OAuthLoginState.expires_at,
            )
        )
    ).first()
    if row is None:
        return None
    verifier, nonce, next_path, expires_at = row
    return StoredLogin(verifier, nonce, safe_next_path(next_path), as_utc(expires_at))


def require_live(stored: StoredLogin | None) -> StoredLogin:
    """400 for a state that is unknown, already used or expired."""
    if stored is None:
        raise bad_request(
            "state_unknown", "the sign-in state is unknown or was already used; start again"
        )
    if stored.expires_at <= utcnow():
        raise bad_request(
            "state_expired", "the sign-in took too long (over 10 minutes); start again"
        )
    return stored


def provider_error(provider_name: str, error: str, description: str | None) -> JarvisError:
    """The failure for an ``error=`` the provider sent the browser back with."""
    said = f"{error}: {description}" if description else error
    said = clean_text(said, 300) or "unknown"
    if error == "access_denied":
        return refused(
            "access_denied", f"sign-in at {provider_name} was cancelled or refused ({said})"
        )
    if error in {"server_error", "temporarily_unavailable"}:
        return bad_gateway("provider_error", f"{provider_name} could not sign you in ({said})")
    return bad_request("authorization_error", f"{provider_name} refused the sign-in ({said})")


# --- talking to providers -------------------------------------------------------------------


def clean_text(value: Any, limit: int) -> str | None:
    """Provider text fit to store: a string without control characters, trimmed."""
    if not isinstance(value, str):
        return None
    text = "".join(ch for ch in value if unicodedata.category(ch) not in {"Cc", "Cs"}).strip()
    return text[:limit] or None


def clean_url(value: Any) -> str | None:
    """An http(s) URL from a provider, fit to store, or None."""
    text = clean_text(value, URL_LENGTH + 1)
    if text is None or len(text) > URL_LENGTH or urlsplit(text).scheme not in {"http", "https"}:
        return None
    return text


def clean_email(value: Any) -> str | None:
    """An e-mail address from a provider, lower-cased, or None when it is not one."""
    text = clean_text(value, EMAIL_LENGTH + 1)
    if text is None or len(text) > EMAIL_LENGTH:
        return None
    local, at, domain = text.lower().rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in text):
        return None
    return f"{local}@{domain}"


def split_name(name: str | None) -> tuple[str | None, str | None]:
    """A display name as (first, last), split at the first space."""
    if not name:
        return None, None
    first, _, last = name.partition(" ")
    return first[:NAME_LENGTH] or None, last.strip()[:NAME_LENGTH] or None


def provider_client(**kwargs: Any) -> Any:
    """Authlib's OAuth 2.0 client (an httpx2 client) with our timeout."""
    return AsyncOAuth2Client(timeout=PROVIDER_TIMEOUT_SECONDS, **kwargs)


async def get_json(
    http: Any,
    url: str,
    *,
    provider_name: str,
    what: str,
    with_token: bool = False,
    accept: str = "application/json",
) -> Any:
    """GET ``url`` and return its JSON; 502 when the provider cannot be reached or answers
    with an error or something that is not JSON."""
    try:
        response = await http.request(
            "GET", url, withhold_token=not with_token, headers={"Accept": accept}
        )
    except (httpx2.HTTPError, httpx2.InvalidURL, OAuthError) as exc:
        raise _unreachable(provider_name, what, exc) from exc
    if response.status_code >= 400:
        raise bad_gateway(
            "provider_error", f"{provider_name} answered HTTP {response.status_code} to {what}"
        )
    try:
        return response.json()
    except ValueError as exc:
        raise bad_gateway(
            "provider_error", f"{provider_name} sent {what} that is not JSON"
        ) from exc


def _unreachable(provider_name: str, what: str, exc: Exception) -> BadGateway:
    log.warning("oauth_provider_unreachable", provider=provider_name, what=what, error=str(exc))
    return bad_gateway(
        "provider_unreachable",
        f"{provider_name} could not be reached for {what} ({type(exc).__name__})",
    )


async def exchange_code(
    http: Any, token_url: str, *, provider_name: str, code: str, verifier: str
) -> dict[str, Any]:
    """The token response for ``code``; 400 when the provider refuses the code."""
    try:
        token = await http.fetch_token(
            token_url, grant_type="authorization_code", code=code, code_verifier=verifier
        )
    except OAuthError as exc:
        said = clean_text(f"{exc.error}: {exc.description}" if exc.description else exc.error, 300)
        if exc.error in CODE_ERRORS:
            raise bad_request(
                "code_rejected", f"{provider_name} refused the sign-in code ({said})"
            ) from exc
        raise bad_gateway(
            "client_rejected",
            f"{provider_name} refused this server's sign-in request ({said}); check the "
            "client id, secret and callback URL registered there",
        ) from exc
    except httpx2.HTTPStatusError as exc:
        raise bad_gateway(
            "provider_error",
            f"{provider_name} answered HTTP {exc.response.status_code} to the code exchange",
        ) from exc
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        raise _unreachable(provider_name, "the code exchange", exc) from exc
    except ValueError as exc:  # a 2xx answer that is not a JSON object
        raise bad_gateway(
            "provider_error", f"{provider_name} answered the code exchange with no JSON object"
        ) from exc
    if not isinstance(token.get("access_token"), str):
        raise bad_gateway("provider_error", f"{provider_name} issued no access token")
    return dict(token)


class SignInProvider(Protocol):
    """One way to sign in: where to send the browser, and who came back."""

    id: str
    name: str

    @property
    def uses_nonce(self) -> bool: ...

    async def authorize_url(self, pending: PendingLogin, redirect_uri: str) -> str: ...

    async def identity(
        self, code: str, stored: StoredLogin, redirect_uri: str
    ) -> ProviderIdentity: ...
