"""Rate limits: sign-in attempts per account and per address, API calls per user or token,
executions per user; values from configuration; 429 with Retry-After; counters shared by
instances through Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from jarvis.core.identity import Actor
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.main import create_app
from jarvis.settings import Settings
from tests.factories import DEFAULT_PASSWORD, bearer, create_agent, create_user, token_for

ACTOR = Actor.system("tests")


@asynccontextmanager
async def limited_app(
    settings: Settings, db: Database, **overrides: object
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with rate limits on, its counters cleared."""
    app = create_app(settings.model_copy(update={"rate_limits": True, **overrides}), database=db)
    async with app.router.lifespan_context(app):
        await app.state.rate_limiter.reset()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def set_limit(app: FastAPI, key: str, value: int, scope: Scope = GLOBAL) -> None:
    config = app.state.config
    async with unit_of_work(app.state.db) as session:
        await config.set_value(session, key, value, scope, actor=ACTOR, reason="test")
    config.invalidate_all()


def assert_429(response: httpx.Response, key: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert key in response.json()["detail"]


async def test_sign_in_attempts_are_limited_per_account(settings: Settings, db: Database) -> None:
    user = await create_user(db)
    async with limited_app(settings, db) as (app, client):
        await set_limit(app, "ratelimit.login_attempts_per_minute", 3)
        answers = [
            await client.post("/api/login", json={"email": user.email, "password": "wrong!!!!!"})
            for _ in range(4)
        ]
        # Even the right password waits once the limit is used up.
        right = await client.post(
            "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
        )

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert_429(answers[3], "ratelimit.login_attempts_per_minute")
    assert "this account" in answers[3].json()["detail"]
    assert_429(right, "ratelimit.login_attempts_per_minute")


async def test_sign_in_attempts_are_limited_per_address(settings: Settings, db: Database) -> None:
    async with limited_app(settings, db) as (app, client):
        await set_limit(app, "ratelimit.login_attempts_per_minute", 3)
        answers = [
            await client.post(
                "/api/login", json={"email": f"nobody{i}@example.com", "password": "x"}
            )
            for i in range(4)
        ]

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert "this address" in answers[3].json()["detail"]


async def test_api_calls_are_limited_per_token_with_the_personas_value(
    settings: Settings, db: Database
) -> None:
    admin = await create_user(db)
    underwriter = await create_user(db, persona="underwriter")
    first, second = await token_for(db, underwriter), await token_for(db, underwriter)
    admin_token = await token_for(db, admin)
    async with limited_app(settings, db) as (app, client):
        await set_limit(app, "ratelimit.api_requests_per_minute", 2, Scope(persona="underwriter"))
        used = [(await client.get("/api/user", headers=bearer(first))).status_code for _ in "abc"]
        other_token = await client.get("/api/user", headers=bearer(second))
        admin_calls = [
            (await client.get("/api/user", headers=bearer(admin_token))).status_code
            for _ in range(5)
        ]
        over = await client.get("/api/user", headers=bearer(first))

    assert used == [200, 200, 429]
    assert other_token.status_code == 200  # per token: the user's other token has its own
    assert admin_calls == [200] * 5  # the global value (600) for other personas
    assert_429(over, "ratelimit.api_requests_per_minute")


async def test_execution_starts_are_limited_per_user(settings: Settings, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    await create_agent(db, layer="Experience", persona="underwriter")
    token = await token_for(db, user)
    async with limited_app(settings, db) as (app, client):
        await set_limit(app, "ratelimit.executions_per_minute", 2, Scope(persona="underwriter"))
        answers = [
            await client.post(
                "/api/agent-executions",
                json={"command": f"run {i}", "persona": "underwriter"},
                headers=bearer(token),
            )
            for i in range(3)
        ]
        await app.state.dispatcher.wait_idle()

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert_429(answers[2], "ratelimit.executions_per_minute")


async def test_two_instances_sharing_redis_count_together(
    settings: Settings, db: Database, redis_url: str
) -> None:
    user = await create_user(db)
    token = await token_for(db, user)
    shared = {"redis_url": redis_url, "dispatcher": "in-process"}
    async with (
        limited_app(settings, db, **shared) as (app_a, client_a),
        limited_app(settings, db, **shared) as (_app_b, client_b),
    ):
        assert app_a.state.rate_limiter.shared
        await set_limit(app_a, "ratelimit.api_requests_per_minute", 3)
        _app_b.state.config.invalidate_all()
        statuses = [
            (await client.get("/api/user", headers=bearer(token))).status_code
            for client in (client_a, client_b, client_a, client_b)
        ]
        await app_a.state.rate_limiter.reset()

    assert statuses == [200, 200, 200, 429]


async def test_memory_counters_are_per_instance(settings: Settings, db: Database) -> None:
    user = await create_user(db)
    token = await token_for(db, user)
    async with (
        limited_app(settings, db) as (app_a, client_a),
        limited_app(settings, db) as (app_b, client_b),
    ):
        await set_limit(app_a, "ratelimit.api_requests_per_minute", 2)
        app_b.state.config.invalidate_all()
        statuses = [
            (await client.get("/api/user", headers=bearer(token))).status_code
            for client in (client_a, client_b, client_a, client_b, client_a)
        ]

    assert statuses == [200, 200, 200, 200, 429]


@pytest.mark.parametrize("path", ["/api/health", "/api/agents"])
async def test_anonymous_calls_count_per_address(
    settings: Settings, db: Database, path: str
) -> None:
    async with limited_app(settings, db) as (app, client):
        await set_limit(app, "ratelimit.api_requests_per_minute", 2)
        statuses = [(await client.get(path)).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
