"""Fixtures for the realtime tests: the real app served by uvicorn on a loopback port, and
a small WebSocket client (the ``websockets`` library) that speaks the protocol.

The server runs as a task on the test's own event loop (the database engine and the bus
belong to it); clients connect over TCP like any browser. ``WAIT`` bounds every wait as a
hang guard, never as a timing assertion.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from jarvis.db.engine import Database
from jarvis.kit.bus import EventBus, MemoryBus, RedisBus
from jarvis.main import create_app
from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from jarvis.realtime.ws import WS_PATH, uvicorn_ws_options
from jarvis.settings import Settings
from tests.orchestration.conftest import World, make_world

WAIT = 30.0  # a hang guard, not a timing assertion


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (a server-side state; ``WAIT`` is a hang guard)."""
    async with asyncio.timeout(WAIT):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running_app(
    settings: Settings, db: Database, *, bus: EventBus | None = None, **overrides: Any
) -> AsyncIterator[FastAPI]:
    """The real application on ``db`` (and ``bus``), its lifespan running."""
    app = create_app(settings.model_copy(update=overrides), database=db, bus=bus)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def uvicorn_server(app: FastAPI, *, heartbeat_seconds: float = 15.0) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, as ``jarvis serve`` does
    (protocol pings every ``heartbeat_seconds``); yields ``host:port``."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            **uvicorn_ws_options(heartbeat_seconds),
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listener.close()


@dataclass
class Socket:
    """A protocol client over one WebSocket."""

    connection: ClientConnection
    # Messages received so far (heartbeats included), in order.
    received: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: int = 0

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = json.dumps(message)
        await self.connection.send(message)

    async def recv(self, *, heartbeats: bool = False) -> dict[str, Any]:
        """The next message (heartbeats are counted and skipped unless asked for)."""
        async with asyncio.timeout(WAIT):
            while True:
                body = json.loads(await self.connection.recv())
                self.received.append(body)
                if body.get("type") == "heartbeat":
                    self.heartbeats += 1
                    if not heartbeats:
                        continue
                return dict(body)

    async def expect(self, type_: str, **match: Any) -> dict[str, Any]:
        """The next message, which must be of ``type_`` (with ``match``ed members)."""
        body = await self.recv()
        assert body.get("type") == type_, body
        for key, value in match.items():
            assert body.get(key) == value, (key, body)
        return body

    async def subscribe(self, execution_id: str, after_seq: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe-execution", "executionId": execution_id}
        if after_seq is not None:
            message["afterSeq"] = after_seq
        await self.send(message)
        return await self.expect("subscribed", executionId=execution_id)

    async def events_until(
        self, execution_id: str, types: set[str] | frozenset[str] = frozenset(TERMINAL_EVENTS)
    ) -> list[dict[str, Any]]:
        """Events of ``execution_id`` up to and including the first of ``types``; fails on
        anything but events of that execution."""
        events = []
        while True:
            body = await self.recv()
            assert body.get("executionId") == execution_id and "seq" in body, body
            events.append(body)
            if body["type"] in types:
                return events

    async def closed(self) -> tuple[int | None, str | None]:
        """Read until the server closes the socket; its close code and reason."""
        async with asyncio.timeout(WAIT):
            try:
                while True:
                    await self.connection.recv()
            except ConnectionClosed as closed:
                if closed.rcvd is None:
                    return None, None
                return closed.rcvd.code, closed.rcvd.reason


@dataclass
class Live:
    """The app under test, served on loopback, and its users (``world``)."""

    app: FastAPI
    world: World
    address: str
    stack: AsyncExitStack

    def ws_url(self, **query: str) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"ws://{self.address}{WS_PATH}{suffix}"

    @property
    def http_url(self) -> str:
        return f"http://{self.address}"

    @staticmethod
    def token(headers: dict[str, str]) -> str:
        return headers["Authorization"].removeprefix("Bearer ")

    async def raw(self, url: str | None = None, **kwargs: Any) -> ClientConnection:
        """An open WebSocket (not authenticated yet unless the URL or headers say so).

        Unread messages never pause the client's reading (``max_queue=None``): a paused
        client could not see the server's answer to its close and would wait for it."""
        kwargs.setdefault("max_queue", None)
        connection = await asyncio.wait_for(connect(url or self.ws_url(), **kwargs), WAIT)
        return await self.stack.enter_async_context(connection)

    async def socket(
        self, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[Socket, dict[str, Any]]:
        """A socket authenticated with the bearer token of ``headers`` (the admin's by
        default), and its greeting."""
        token = self.token(headers or self.world.admin_headers)
        client = Socket(await self.raw(self.ws_url(token=token), **kwargs))
        greeting = await client.expect("connection-established")
        return client, greeting


@asynccontextmanager
async def live_app(
    settings: Settings, db: Database, *, bus: EventBus | None = None, **overrides: Any
) -> AsyncIterator[Live]:
    """The real app (``overrides`` applied to its settings) on uvicorn, with a world."""
    async with AsyncExitStack() as stack:
        configured = settings.model_copy(update=overrides)
        app = await stack.enter_async_context(running_app(configured, db, bus=bus))
        transport = httpx.ASGITransport(app=app)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://testserver")
        )
        address = await stack.enter_async_context(
            uvicorn_server(app, heartbeat_seconds=configured.ws_heartbeat_seconds)
        )
        world = await make_world(app, client, db)
        # Sockets opened by the test close first (the stack unwinds in reverse).
        sockets = await stack.enter_async_context(AsyncExitStack())
        yield Live(app, world, address, sockets)


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient, db: Database) -> World:
    """The app in-process (httpx ASGITransport) with an admin and an underwriter."""
    return await make_world(app, client, db)


@pytest.fixture
async def live(settings: Settings, db: Database) -> AsyncIterator[Live]:
    """The app on the in-process bus, served on loopback."""
    async with live_app(settings, db) as value:
        yield value


BusFactory = Callable[[], EventBus]


@pytest.fixture(params=["memory", "redis"])
async def bus_factory(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Buses of one kind (closed after the test): in-process, or the real Redis."""
    created: list[EventBus] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def factory() -> EventBus:
        bus: EventBus = RedisBus(url) if url else MemoryBus()
        created.append(bus)
        return bus

    yield factory
    for bus in created:
        await bus.close()
