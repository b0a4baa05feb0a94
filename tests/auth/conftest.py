"""Fixtures for the GitHub / OpenID Connect sign-in tests: the loopback provider, an app
configured to use it, and a browser that walks the redirect flow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from jarvis.audit.models import AuditTrail
from jarvis.auth.sso.routes import router as oauth_router
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.main import create_app
from jarvis.settings import Settings
from tests.auth.oauth_provider import (
    GITHUB_CLIENT_ID,
    GITHUB_CLIENT_SECRET,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    LoopbackProvider,
    running_provider,
)
from tests.conftest import TEST_SECRET_KEY
from tests.factories import create_personas

APP_BASE = "http://testserver"
PROBLEM = "application/problem+json"


def sso_settings(database_url: str, base: str, **overrides: Any) -> Settings:
    """Settings whose GitHub and OIDC sign-in point at the loopback provider at ``base``."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "log_level": "WARNING",
        "github_client_id": GITHUB_CLIENT_ID,
        "github_client_secret": GITHUB_CLIENT_SECRET,
        "github_authorize_url": f"{base}/login/oauth/authorize",
        "github_token_url": f"{base}/login/oauth/access_token",
        "github_api_url": f"{base}/api",
        "oidc_discovery_url": f"{base}/.well-known/openid-configuration",
        "oidc_client_id": OIDC_CLIENT_ID,
        "oidc_client_secret": OIDC_CLIENT_SECRET,
        "oidc_name": "Loopback SSO",
    }
    values.update(overrides)
    return Settings(**values)


def with_sign_in_routes(app: FastAPI) -> FastAPI:
    """Mount the sign-in routes unless create_app already does."""
    if not any(getattr(route, "path", None) == "/api/callback" for route in app.routes):
        app.include_router(oauth_router)
    return app


@dataclass
class Browser:
    """A browser: its own cookie jar at the app, and a real HTTP client for the provider."""

    app: httpx.AsyncClient
    web: httpx.AsyncClient

    async def start(self, provider: str = "github", next_path: str | None = None) -> httpx.Response:
        params = {"next": next_path} if next_path is not None else None
        return await self.app.get(f"/api/login/{provider}", params=params)

    async def authorize(self, login: httpx.Response) -> str:
        """Follow the login redirect to the provider; return where it sends us back."""
        assert login.status_code == 302, login.text
        answer = await self.web.get(login.headers["location"])
        assert answer.status_code == 302, answer.text
        back = answer.headers["location"]
        assert back.startswith(APP_BASE + "/api/callback"), back
        return back

    async def callback(self, url: str) -> httpx.Response:
        return await self.app.get(url)

    async def sign_in(
        self, provider: str = "github", next_path: str | None = None
    ) -> httpx.Response:
        return await self.callback(await self.authorize(await self.start(provider, next_path)))


@dataclass
class World:
    db: Database
    app: FastAPI
    provider: LoopbackProvider
    web: httpx.AsyncClient
    _clients: list[httpx.AsyncClient]

    def browser(self) -> Browser:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP_BASE)
        self._clients.append(client)
        return Browser(app=client, web=self.web)

    async def login_failures(self) -> list[dict[str, Any]]:
        return await audit_entries(self.db, "auth.login_failed")


async def audit_entries(db: Database, action: str) -> list[dict[str, Any]]:
    async with unit_of_work(db, write=False) as session:
        rows = await session.scalars(
            select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        )
        return [dict(row.after or {}) for row in rows]


@pytest.fixture
async def provider() -> AsyncIterator[LoopbackProvider]:
    async with running_provider() as running:
        yield running


@asynccontextmanager
async def open_world(
    db: Database, database_url: str, provider: LoopbackProvider, **overrides: Any
) -> AsyncIterator[World]:
    """An app on ``db`` whose sign-in uses ``provider`` (settings changed by ``overrides``)."""
    await create_personas(db)
    settings = sso_settings(database_url, provider.base, **overrides)
    app = with_sign_in_routes(create_app(settings, database=db))
    async with app.router.lifespan_context(app), httpx.AsyncClient() as web:
        world = World(db=db, app=app, provider=provider, web=web, _clients=[])
        try:
            yield world
        finally:
            for client in world._clients:
                await client.aclose()


@pytest.fixture
async def world(
    db: Database, database_url: str, provider: LoopbackProvider
) -> AsyncIterator[World]:
    async with open_world(db, database_url, provider) as opened:
        yield opened


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["reason"] == reason, body
    return body


async def assert_failure_audited(world: World, reason: str, via: str = "github") -> None:
    failures = await world.login_failures()
    assert failures, "no auth.login_failed entry"
    assert failures[-1]["via"] == via
    assert failures[-1]["reason"] == reason
