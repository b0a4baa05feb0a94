"""No secret reaches a log line, and the database keeps only digests of session ids and
API tokens.

The app runs with JARVIS_LOG_LEVEL=DEBUG. Its structlog lines go to stderr (captured with
``capsys``); everything sent through the standard library's logging (SQLAlchemy's
statements with their parameters, httpx, the OpenAI SDK, Authlib) is captured at DEBUG
with ``caplog``. The test first checks that both captures really capture.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import APIRouter
from sqlalchemy import select

from jarvis.auth.models import ApiToken, UserSession
from jarvis.auth.sessions.cookies import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from jarvis.auth.sso.routes import router as sign_in_router
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.llm.base import LabelSpec
from jarvis.llm.providers import Providers
from jarvis.main import create_app
from jarvis.settings import Settings
from tests.auth.oauth_provider import (
    GITHUB_CLIENT_ID,
    GITHUB_CLIENT_SECRET,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    running_provider,
)
from tests.factories import create_personas, create_user, token_for
from tests.llm.fake_openai import running_fake_openai

PASSWORD = "Pa55word-that-must-never-be-logged-7731"
WRONG_PASSWORD = "Wrong-pa55word-also-never-logged-1187"
SECRET_KEY = "secret-key-that-must-never-be-logged-" + "s" * 20
GITHUB_SECRET = "github-client-secret-never-logged-4412"
OIDC_SECRET = "oidc-client-secret-never-logged-9051"
OPENAI_KEY = "sk-openai-key-never-logged-2208"
LABELS = [LabelSpec("claim", "An insurance claim"), LabelSpec("it", "A laptop problem")]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def leaked(secrets: dict[str, str], lines: list[str]) -> list[tuple[str, str]]:
    """(name of the secret, the line) for every captured line holding a secret."""
    return [(name, line) for line in lines for name, value in secrets.items() if value in line]


async def test_no_secret_reaches_the_logs_and_only_digests_are_stored(
    database_url: str,
    db: Database,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy holds its own loggers at WARNING unless told otherwise: statements,
    # parameters and result rows too.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    settings = Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        log_level="DEBUG",
        github_client_id="jarvis-github-app",
        github_client_secret=GITHUB_SECRET,
        oidc_client_id="jarvis-oidc-client",
        oidc_client_secret=OIDC_SECRET,
        openai_api_key=OPENAI_KEY,
    )
    user = await create_user(db, persona="admin", password=PASSWORD)
    api_token = await token_for(db, user)

    probe = APIRouter()

    @probe.get("/api/test-log-probe")
    async def log_probe() -> None:
        raise RuntimeError("a probe that the capture must see")

    app = create_app(settings, database=db)
    app.include_router(probe)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as web:
            # The capture works: the app's own error log and SQLAlchemy's statements.
            assert (await web.get("/api/test-log-probe")).status_code == 500

            failed = await web.post(
                "/api/login", json={"email": user.email, "password": WRONG_PASSWORD}
            )
            assert failed.status_code == 401, failed.text
            signed_in = await web.post(
                "/api/login", json={"email": user.email, "password": PASSWORD}
            )
            assert signed_in.status_code == 200, signed_in.text
            cookie = web.cookies[SESSION_COOKIE]
            csrf = web.cookies[CSRF_COOKIE]
            assert (await web.get("/api/user")).json()["email"] == user.email
            assert (await web.get("/api/agents?limit=5")).status_code == 200

            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
                bearer = {"Authorization": f"Bearer {api_token}"}
                assert (await api.get("/api/user", headers=bearer)).status_code == 200
                assert (await api.get("/api/agents", headers=bearer)).status_code == 200
                wrong = {"Authorization": f"Bearer {api_token}x"}
                assert (await api.get("/api/user", headers=wrong)).status_code == 401

            # The OpenAI key travels to the provider (which insists on it), not to the log.
            async with running_fake_openai() as server:
                server.require_key(OPENAI_KEY)
                provider = Providers.from_settings(app.state.settings).openai(server.base_url, 10)
                try:
                    result = await provider.classify("my laptop is broken", LABELS, model="m")
                finally:
                    await provider.close()
                assert result.label == "it"
                [sent] = server.requests
                assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"

            # Held back until now, so the session is still alive for the checks below.
            async with unit_of_work(db) as session:
                stored_sessions = list((await session.scalars(select(UserSession))).all())
                stored_tokens = list((await session.scalars(select(ApiToken))).all())

            logout = await web.post("/api/logout", headers={CSRF_HEADER: csrf})
            assert logout.status_code == 204, logout.text

    structlog_lines = capsys.readouterr().err.splitlines()
    stdlib_lines = [record.getMessage() for record in caplog.records] + caplog.text.splitlines()

    assert any(
        "unhandled_error" in line and "/api/test-log-probe" in line for line in structlog_lines
    )
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)
    assert any("SELECT" in line for line in stdlib_lines)

    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "session cookie": cookie,
        "CSRF token": csrf,
        "API token": api_token,
        "secret key": SECRET_KEY,
        "GitHub client secret": GITHUB_SECRET,
        "OIDC client secret": OIDC_SECRET,
        "OpenAI API key": OPENAI_KEY,
    }
    assert leaked(secrets, structlog_lines) == []
    assert leaked(secrets, stdlib_lines) == []

    # The database holds digests: neither the cookie nor the token is in any column.
    assert any(row.user_id == user.id for row in stored_sessions)
    assert stored_tokens
    for row in [*stored_sessions, *stored_tokens]:
        values = [str(getattr(row, column.key)) for column in row.__table__.columns]
        assert not leaked({"session cookie": cookie, "API token": api_token}, values)
    for session_row in stored_sessions:
        assert len(session_row.session_hash) == 64 and session_row.session_hash != cookie
    for token_row in stored_tokens:
        assert len(token_row.token_hash) == 64 and token_row.token_hash != api_token


async def test_signing_in_with_github_and_oidc_logs_no_secret(
    database_url: str,
    db: Database,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    await create_personas(db)
    cookies: list[str] = []
    async with running_provider() as provider:
        base = provider.base
        settings = Settings(
            database_url=database_url,
            secret_key=SECRET_KEY,
            log_level="DEBUG",
            github_client_id=GITHUB_CLIENT_ID,
            github_client_secret=GITHUB_CLIENT_SECRET,
            github_authorize_url=f"{base}/login/oauth/authorize",
            github_token_url=f"{base}/login/oauth/access_token",
            github_api_url=f"{base}/api",
            oidc_discovery_url=f"{base}/.well-known/openid-configuration",
            oidc_client_id=OIDC_CLIENT_ID,
            oidc_client_secret=OIDC_CLIENT_SECRET,
        )
        app = create_app(settings, database=db)
        if not any(getattr(route, "path", None) == "/api/callback" for route in app.routes):
            app.include_router(sign_in_router)  # until create_app mounts the sign-in routes
        async with app.router.lifespan_context(app), httpx.AsyncClient() as at_provider:
            for via, callback in (("github", "/api/callback"), ("oidc", "/api/callback/oidc")):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://testserver"
                ) as web:
                    start = await web.get(f"/api/login/{via}")
                    assert start.status_code == 302, start.text
                    consent = await at_provider.get(start.headers["location"])
                    assert consent.status_code == 302, consent.text
                    back = consent.headers["location"]
                    assert back.startswith(f"http://testserver{callback}?"), back
                    signed_in = await web.get(back)
                    # The provider accepted the client secret: the app holds a session.
                    assert signed_in.status_code == 303, signed_in.text
                    cookies.append(web.cookies[SESSION_COOKIE])
                    assert (await web.get("/api/user")).status_code == 200
        # Both exchanges authenticated with the client secrets.
        assert len(provider.token_requests) == 2

    structlog_lines = capsys.readouterr().err.splitlines()
    stdlib_lines = [record.getMessage() for record in caplog.records] + caplog.text.splitlines()
    assert any("oauth_login_states" in line for line in stdlib_lines)  # the capture works

    secrets = {
        "GitHub client secret": GITHUB_CLIENT_SECRET,
        "OIDC client secret": OIDC_CLIENT_SECRET,
        "secret key": SECRET_KEY,
        **{f"session cookie {n}": cookie for n, cookie in enumerate(cookies)},
    }
    assert leaked(secrets, structlog_lines) == []
    assert leaked(secrets, stdlib_lines) == []
