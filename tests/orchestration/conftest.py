"""Fixtures for the engine tests: the real app with its dispatcher, users, agents, config.

Every test runs on SQLite and PostgreSQL. Executions are started through the API and
waited for with ``dispatcher.wait_idle()`` (bounded by ``WAIT``, a hang guard, never a
timing assertion); a test that must act while an execution runs waits for the event that
says it got there, through a bus subscription opened before the execution started.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jarvis.agents.models import Agent
from jarvis.auth.models import User
from jarvis.auth.users.service import create_user as service_create_user
from jarvis.config.service import ConfigService
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import GAP, Subscription
from jarvis.orchestration.dispatcher import InProcessDispatcher
from jarvis.orchestration.events import EVENTS_CHANNEL
from tests.factories import TEST_ACTOR, bearer, create_agent, create_personas, token_for

WAIT = 60.0  # a hang guard, not a timing assertion
_users = itertools.count(1)


async def token_user(db: Database, persona: str) -> User:
    """A user who signs in with API tokens only (no password: no argon2 hashing, which
    would cost more than most of these tests)."""
    await create_personas(db)
    async with unit_of_work(db) as session:
        return await service_create_user(
            session,
            email=f"{persona}{next(_users)}@orchestration.test",
            persona=persona,
            password=None,
            actor=TEST_ACTOR,
        )


@dataclass
class Watch:
    """The execution events published while the watch is open, in arrival order."""

    subscription: Subscription
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def until(self, execution_id: str, type_: str, **match: Any) -> dict[str, Any]:
        """The first event of ``execution_id`` of ``type_`` (with ``match``ed members)."""

        def fits(body: dict[str, Any]) -> bool:
            return (
                body.get("executionId") == execution_id
                and body.get("type") == type_
                and all(body.get(k) == v for k, v in match.items())
            )

        for body in self.seen:
            if fits(body):
                return body
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.subscription.get()
                if message is GAP or not isinstance(message, dict):
                    continue
                self.seen.append(message)
                if fits(message):
                    return message


@dataclass
class World:
    """The app under test and the people using it."""

    app: FastAPI
    client: httpx.AsyncClient
    db: Database
    admin: User
    admin_headers: dict[str, str]
    underwriter: User
    uw_headers: dict[str, str]

    @property
    def config(self) -> ConfigService:
        config: ConfigService = self.app.state.config
        return config

    @property
    def dispatcher(self) -> InProcessDispatcher:
        dispatcher: InProcessDispatcher = self.app.state.dispatcher
        return dispatcher

    async def agent(
        self,
        layer: str,
        name: str,
        *,
        persona: str = "admin",
        kind: str = "echo",
        config: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Agent:
        """A registered agent (echo by default) of ``layer``."""
        return await create_agent(
            self.db,
            name=name,
            layer=layer,
            persona=persona,
            kind=kind,
            config=config or {},
            **overrides,
        )

    async def set(self, key: str, value: Any, scope: Scope = GLOBAL) -> None:
        """Store a configuration value through the app's own ConfigService (its cache
        is invalidated on commit)."""
        async with unit_of_work(self.db) as session:
            outcome = await self.config.set_value(session, key, value, scope, actor=TEST_ACTOR)
        assert outcome.value is not None, f"{key} needs approval; use a four-eyes helper"

    async def user(self, persona: str) -> dict[str, str]:
        """Bearer headers of a new user of ``persona``."""
        user = await token_user(self.db, persona)
        return bearer(await token_for(self.db, user))

    async def post(
        self, command: str = "hello", persona: str = "admin", headers: dict[str, str] | None = None
    ) -> str:
        """Start an execution through the API; its id."""
        response = await self.client.post(
            "/api/agent-executions",
            json={"command": command, "persona": persona},
            headers=headers or self.admin_headers,
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued"
        assert response.headers["location"] == f"/api/agent-executions/{body['executionId']}"
        execution_id: str = body["executionId"]
        return execution_id

    async def settle(self) -> None:
        """Wait until every submitted execution has stopped running."""
        async with asyncio.timeout(WAIT):
            await self.dispatcher.wait_idle()

    async def show(self, execution_id: str, headers: dict[str, str] | None = None) -> Any:
        response = await self.client.get(
            f"/api/agent-executions/{execution_id}", headers=headers or self.admin_headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def run(
        self, command: str = "hello", persona: str = "admin", headers: dict[str, str] | None = None
    ) -> Any:
        """Start an execution, wait for it to stop, and return it as the API shows it."""
        execution_id = await self.post(command, persona, headers)
        await self.settle()
        return await self.show(execution_id, headers)

    async def events(
        self, execution_id: str, *, after: int = 0, headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The stored events (their payloads, which carry ``seq`` and ``type``)."""
        response = await self.client.get(
            f"/api/agent-executions/{execution_id}/events",
            params={"afterSeq": after},
            headers=headers or self.admin_headers,
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        for item in items:
            assert item["payload"]["seq"] == item["seq"]
            assert item["payload"]["type"] == item["type"]
            assert item["payload"]["executionId"] == execution_id
        return [item["payload"] for item in items]

    async def action(
        self,
        execution_id: str,
        verb: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """POST /api/agent-executions/{id}/{verb}."""
        return await self.client.post(
            f"/api/agent-executions/{execution_id}/{verb}",
            headers=headers or self.admin_headers,
            json=json,
        )

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[Watch]:
        """Collect the execution events published from now on."""
        async with self.app.state.bus.subscribe(EVENTS_CHANNEL) as subscription:
            yield Watch(subscription)


async def make_world(app: FastAPI, client: httpx.AsyncClient, db: Database) -> World:
    """A world on ``app``, with an admin and an underwriter who hold API tokens."""
    admin = await token_user(db, "admin")
    underwriter = await token_user(db, "underwriter")
    return World(
        app=app,
        client=client,
        db=db,
        admin=admin,
        admin_headers=bearer(await token_for(db, admin)),
        underwriter=underwriter,
        uw_headers=bearer(await token_for(db, underwriter)),
    )


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient, db: Database) -> World:
    return await make_world(app, client, db)


def step(execution: dict[str, Any], name: str) -> dict[str, Any]:
    """The execution's step of the agent called ``name``."""
    found = [s for s in execution["steps"] if s["agentName"] == name]
    assert len(found) == 1, (name, [s["agentName"] for s in execution["steps"]])
    return found[0]


def names_of(execution: dict[str, Any], layer: str | None = None) -> list[str]:
    """The agent names of the execution's steps (of ``layer``), in the API's order."""
    return [s["agentName"] for s in execution["steps"] if layer is None or s["layer"] == layer]


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def step_events(events: list[dict[str, Any]], layer: str) -> list[tuple[str, str]]:
    """(type, agent name) of the step events of ``layer``, in order."""
    return [
        (e["type"], e["agentName"])
        for e in events
        if e["type"].startswith("step_") and e.get("layer") == layer
    ]
