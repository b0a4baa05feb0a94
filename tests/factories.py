"""Small async factories for arranging test data through the real services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

import httpx
from fastapi import APIRouter

from jarvis.agents.models import Agent
from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent as service_create_agent
from jarvis.auth.models import User
from jarvis.auth.tokens.service import create_api_token
from jarvis.auth.users.service import create_user as service_create_user
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.data import PERSONA_PERMISSIONS
from jarvis.kit.bus import EventBus
from jarvis.main import create_app
from jarvis.personas.grants import grant
from jarvis.personas.schemas import ColorScheme, PersonaRegister
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona
from jarvis.settings import Settings
from jarvis.wiring import config_service

TEST_ACTOR = Actor.system("tests")
DEFAULT_PASSWORD = "correct horse battery staple"
_seq = count(1)

UNDERWRITER = PersonaRegister(
    key="underwriter",
    display_name="Commercial Property Underwriter",
    person_name="Rachel Thompson",
    description="Underwriting",
    color_scheme=ColorScheme(
        primary="#059669",
        secondary="#065f46",
        accent="#34d399",
        background="#022c22",
        glassmorphism="rgba(2, 44, 34, 0.7)",
    ),
)


async def create_personas(db: Database, config: ConfigService | None = None) -> None:
    """The admin and underwriter personas (colours stored through ``config``); the
    underwriter may do what the demo's may (start and approve executions)."""
    config = config or config_service(db, poll_seconds=0)
    async with unit_of_work(db) as session:
        await ensure_persona(session, ADMIN_PERSONA, actor=TEST_ACTOR, config=config)
        if await ensure_persona(session, UNDERWRITER, actor=TEST_ACTOR, config=config):
            await grant(
                session, UNDERWRITER.key, PERSONA_PERMISSIONS[UNDERWRITER.key], actor=TEST_ACTOR
            )


async def grant_permissions(db: Database, persona: str, *permissions: str) -> None:
    """Let ``persona`` do more (``auth.grants.grant``)."""
    async with unit_of_work(db) as session:
        await grant(session, persona, permissions, actor=TEST_ACTOR)


async def create_user(
    db: Database, *, persona: str = "admin", email: str | None = None, password: str | None = None
) -> User:
    await create_personas(db)
    async with unit_of_work(db) as session:
        return await service_create_user(
            session,
            email=email or f"user{next(_seq)}@example.com",
            persona=persona,
            password=password or DEFAULT_PASSWORD,
            actor=TEST_ACTOR,
        )


async def create_agent(db: Database, **overrides: Any) -> Agent:
    await create_personas(db)
    values: dict[str, Any] = {
        "name": f"Test Agent {next(_seq)}",
        "layer": "System",
        "persona": "admin",
        "business_function": "underwriting",
    }
    values.update(overrides)
    async with unit_of_work(db) as session:
        return await service_create_agent(
            session, AgentCreate.model_validate(values), actor=TEST_ACTOR
        )


async def token_for(db: Database, user: User, name: str | None = None) -> str:
    async with unit_of_work(db) as session:
        _, token = await create_api_token(
            session, email=user.email, name=name or f"token{next(_seq)}", actor=TEST_ACTOR
        )
    return token


async def login(client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD) -> None:
    """Sign ``client`` in; its cookie jar then carries the session, and its headers the
    CSRF token that unsafe requests signed in by cookie must send."""
    response = await client.post("/api/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.cookies["jarvis_csrf"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def app_client(
    settings: Settings, db: Database, *routers: APIRouter, bus: EventBus | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh app on ``db`` (and ``bus``), with test-only ``routers`` mounted."""
    app = create_app(settings, database=db, bus=bus)
    for router in routers:
        app.include_router(router)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c
    finally:
        if bus is not None:
            await bus.close()
