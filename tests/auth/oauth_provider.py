"""A small OAuth 2.0 / OpenID Connect provider on loopback, for the sign-in tests.

It speaks GitHub's dialect (``/login/oauth/authorize``, ``/login/oauth/access_token``,
``/api/user``, ``/api/user/emails``) and OpenID Connect's (discovery, ``/authorize``,
``/token`` issuing RS256-signed ID tokens, ``/jwks``, ``/userinfo``) over a real socket,
so the production client code (Authlib, httpx2, joserfc) runs unchanged. Codes are real:
random, single use, bound to the client, the redirect URI and the PKCE challenge.

Tests say who signs in next (``provider.next_account``), whether they consent
(``provider.consent = "deny"``) and how the next ID token is spoiled (``id_token_claims``,
``drop_claims``, ``sign_with_wrong_key``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

GITHUB_CLIENT_ID = "gh-client-id"
GITHUB_CLIENT_SECRET = "gh-client-secret"
OIDC_CLIENT_ID = "jarvis-oidc-client"
OIDC_CLIENT_SECRET = "oidc-client-secret"
KEY_ID = "loopback-1"


@lru_cache(maxsize=2)
def signing_key(which: str = "real") -> RSAKey:
    """The provider's RS256 key ("real"), or another key under the same id ("wrong")."""
    return RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"})


@dataclass
class Account:
    """A user at the provider."""

    id: int = 583231
    login: str = "octocat"
    name: str | None = "Mona Lisa Octocat"
    email: str = "mona@example.com"
    email_verified: bool = True
    avatar_url: str | None = "https://avatars.example.com/u/583231"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    account: Account
    nonce: str | None
    used: bool = False


@dataclass
class Issued:
    account: Account


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def form_of(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (what token requests send)."""
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


@dataclass
class LoopbackProvider:
    base: str = ""
    next_account: Account = field(default_factory=Account)
    consent: Literal["allow", "deny"] = "allow"
    # Claims to override (or add) in the next ID tokens, claims to leave out, and whether
    # to sign with a key the JWKS does not publish.
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    drop_claims: set[str] = field(default_factory=set)
    sign_with_wrong_key: bool = False
    # The key id the next ID tokens name (None: the published key's).
    id_token_kid: str | None = None
    # Answer the discovery document with HTTP 500 this many more times.
    discovery_failures: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    # What the token endpoints received, newest last (form fields and auth header).
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    _grants: dict[str, Grant] = field(default_factory=dict)
    _tokens: dict[str, Issued] = field(default_factory=dict)

    # --- shared -------------------------------------------------------------------------

    def _authorize(self, request: Request, client_id: str) -> Response:
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        redirect_uri = params.get("redirect_uri", "")
        if params.get("client_id") != client_id or not redirect_uri:
            return PlainTextResponse("unknown client or no redirect_uri", status_code=400)
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return PlainTextResponse("PKCE (S256) is required", status_code=400)
        state = params.get("state", "")
        if self.consent == "deny":
            query = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "state": state,
            }
            return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)
        code = secrets.token_urlsafe(16)
        self._grants[code] = Grant(
            client_id=client_id,
            redirect_uri=redirect_uri,
            challenge=params["code_challenge"],
            account=self.next_account,
            nonce=params.get("nonce"),
        )
        query = {"code": code, "state": state}
        return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)

    def _redeem(self, form: dict[str, str], client_id: str) -> Grant | str:
        """The grant behind the form's code, or the OAuth error code refusing it."""
        grant = self._grants.get(form.get("code", ""))
        if grant is None or grant.used or grant.client_id != client_id:
            return "bad_code"
        grant.used = True  # single use, even when the rest of the request is wrong
        if form.get("redirect_uri") != grant.redirect_uri:
            return "redirect_uri_mismatch"
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return "pkce"
        return grant

    def _account_for(self, request: Request) -> Account | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in {"bearer", "token"}:
            return None
        issued = self._tokens.get(token.strip())
        return issued.account if issued else None

    def _issue(self, account: Account) -> str:
        token = "tok_" + secrets.token_urlsafe(16)
        self._tokens[token] = Issued(account)
        return token

    # --- GitHub -------------------------------------------------------------------------

    async def github_authorize(self, request: Request) -> Response:
        self.hits["github_authorize"] += 1
        return self._authorize(request, GITHUB_CLIENT_ID)

    async def github_access_token(self, request: Request) -> Response:
        self.hits["github_access_token"] += 1
        form = await form_of(request)
        self.token_requests.append(form)
        if (
            form.get("client_id") != GITHUB_CLIENT_ID
            or form.get("client_secret") != GITHUB_CLIENT_SECRET
        ):
            return JSONResponse(
                {
                    "error": "incorrect_client_credentials",
                    "error_description": "The client_id and/or client_secret passed are incorrect.",
                }
            )
        grant = self._redeem(form, GITHUB_CLIENT_ID)
        if isinstance(grant, str):
            # GitHub answers refusals with 200 and an error object.
            error = (
                "redirect_uri_mismatch"
                if grant == "redirect_uri_mismatch"
                else ("bad_verification_code")
            )
            return JSONResponse(
                {"error": error, "error_description": "The code passed is incorrect or expired."}
            )
        return JSONResponse(
            {
                "access_token": self._issue(grant.account),
                "token_type": "bearer",
                "scope": "read:user,user:email",
            }
        )

    async def github_user(self, request: Request) -> Response:
        self.hits["github_user"] += 1
        account = self._account_for(request)
        if account is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(
            {
                "id": account.id,
                "login": account.login,
                "name": account.name,
                "email": None,
                "avatar_url": account.avatar_url,
            }
        )

    async def github_emails(self, request: Request) -> Response:
        self.hits["github_emails"] += 1
        account = self._account_for(request)
        if account is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(
            [
                {
                    "email": f"{account.login}@users.noreply.example.com",
                    "primary": False,
                    "verified": True,
                    "visibility": None,
                },
                {
                    "email": account.email,
                    "primary": True,
                    "verified": account.email_verified,
                    "visibility": "public",
                },
            ]
        )

    # --- OpenID Connect -----------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        self.hits["discovery"] += 1
        if self.discovery_failures > 0:
            self.discovery_failures -= 1
            return PlainTextResponse("temporarily broken", status_code=500)
        return JSONResponse(
            {
                "issuer": self.base,
                "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token",
                "jwks_uri": f"{self.base}/jwks",
                "userinfo_endpoint": f"{self.base}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def oidc_authorize(self, request: Request) -> Response:
        self.hits["oidc_authorize"] += 1
        if request.query_params.get("response_type") != "code" or "openid" not in (
            request.query_params.get("scope", "").split()
        ):
            return PlainTextResponse("response_type=code and scope openid needed", 400)
        return self._authorize(request, OIDC_CLIENT_ID)

    def _client_of(self, request: Request, form: dict[str, str]) -> str | None:
        """The authenticated client id (client_secret_basic or _post), or None."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id == OIDC_CLIENT_ID and secret == OIDC_CLIENT_SECRET:
            return client_id
        return None

    async def oidc_token(self, request: Request) -> Response:
        self.hits["oidc_token"] += 1
        form = await form_of(request)
        self.token_requests.append(
            {**form, "authorization": request.headers.get("authorization", "")}
        )
        client_id = self._client_of(request, form)
        if client_id is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        grant = self._redeem(form, client_id)
        if isinstance(grant, str):
            return JSONResponse(
                {"error": "invalid_grant", "error_description": f"code refused ({grant})"},
                status_code=400,
            )
        return JSONResponse(
            {
                "access_token": self._issue(grant.account),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant),
            }
        )

    def id_token(self, grant: Grant) -> str:
        account = grant.account
        now = int(time.time())
        given, _, family = (account.name or "").partition(" ")
        claims: dict[str, Any] = {
            "iss": self.base,
            "aud": grant.client_id,
            "sub": f"user-{account.id}",
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "email": account.email,
            "email_verified": account.email_verified,
            "name": account.name,
            "given_name": given or None,
            "family_name": family or None,
            "preferred_username": account.login,
            "picture": account.avatar_url,
        }
        claims.update(self.id_token_claims)
        for name in self.drop_claims:
            claims.pop(name, None)
        key = signing_key("wrong" if self.sign_with_wrong_key else "real")
        return jwt.encode({"alg": "RS256", "kid": self.id_token_kid or KEY_ID}, claims, key)

    async def jwks(self, request: Request) -> Response:
        self.hits["jwks"] += 1
        return JSONResponse({"keys": [signing_key("real").as_dict(private=False)]})

    async def userinfo(self, request: Request) -> Response:
        self.hits["userinfo"] += 1
        account = self._account_for(request)
        if account is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(
            {
                "sub": f"user-{account.id}",
                "email": account.email,
                "email_verified": account.email_verified,
                "name": account.name,
                "preferred_username": account.login,
            }
        )

    async def garbage(self, request: Request) -> Response:
        """200 with an HTML page where JSON belongs (a captive portal, a proxy's page)."""
        self.hits["garbage"] += 1
        return PlainTextResponse("<html>Welcome to the hotel network</html>", 200)

    async def broken(self, request: Request) -> Response:
        self.hits["broken"] += 1
        return PlainTextResponse("upstream exploded", status_code=503)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/oauth/authorize", self.github_authorize),
                Route("/login/oauth/access_token", self.github_access_token, methods=["POST"]),
                Route("/api/user", self.github_user),
                Route("/api/user/emails", self.github_emails),
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.oidc_authorize),
                Route("/token", self.oidc_token, methods=["POST"]),
                Route("/jwks", self.jwks),
                Route("/userinfo", self.userinfo),
                Route("/garbage/{rest:path}", self.garbage, methods=["GET", "POST"]),
                Route("/broken/{rest:path}", self.broken, methods=["GET", "POST"]),
            ]
        )


@asynccontextmanager
async def running_provider() -> AsyncIterator[LoopbackProvider]:
    """A provider listening on 127.0.0.1 (a free port) for the duration of the block."""
    provider = LoopbackProvider()
    config = uvicorn.Config(
        provider.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    provider.base = f"http://127.0.0.1:{port}"
    try:
        yield provider
    finally:
        server.should_exit = True
        await task


def closed_port_url() -> str:
    """A loopback URL nothing listens on ("the provider is down")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
