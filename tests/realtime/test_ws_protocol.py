"""The WebSocket protocol against a real uvicorn server: authentication, subscriptions,
errors, heartbeats, slow consumers and shutdown (docs/realtime.md).

Every test runs on SQLite and PostgreSQL; the fan-out tests also on the real Redis.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect

from jarvis.auth.dependencies import SESSION_COOKIE
from jarvis.db.engine import Database
from jarvis.kit.clock import utcnow
from jarvis.orchestration.events import EVENTS_CHANNEL
from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from jarvis.realtime.hub import RealtimeHub
from jarvis.realtime.protocol import MAX_CLIENT_MESSAGE_BYTES
from jarvis.realtime.ws import uvicorn_ws_options
from jarvis.settings import Settings
from tests.factories import create_user, login, token_for
from tests.realtime.conftest import (
    BusFactory,
    Live,
    Socket,
    eventually,
    live_app,
    running_app,
    uvicorn_server,
)

# A short heartbeat, and how many intervals of silence the old rule allowed a client.
HEARTBEAT = 0.3
HEARTBEATS_OF_SILENCE = 3

# --- authentication ---------------------------------------------------------------------


async def test_a_session_cookie_authenticates(live: Live) -> None:
    user = await create_user(live.world.db, persona="underwriter")
    async with httpx.AsyncClient(base_url=live.http_url) as http:
        await login(http, user.email)
        cookie = http.cookies[SESSION_COOKIE]

    client = Socket(await live.raw(additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}))
    greeting = await client.expect("connection-established", userId=user.id, isAdmin=False)

    assert uuid.UUID(greeting["clientId"]).version == 4
    assert greeting["heartbeatSeconds"] == 15 and isinstance(greeting["heartbeatSeconds"], int)
    await client.send({"type": "ping"})
    await client.expect("pong")

    # The same cookie from another site's page is not honoured (cross-site hijacking):
    # the socket waits for an auth message instead, and a wrong one closes it.
    cross = Socket(
        await live.raw(
            additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
            origin="https://evil.example",
        )
    )
    await cross.send({"type": "ping"})
    assert await cross.closed() == (1008, "authentication required")


async def test_a_token_in_the_query_or_header_authenticates(live: Live) -> None:
    world = live.world
    client, greeting = await live.socket(world.admin_headers)
    assert (greeting["userId"], greeting["isAdmin"]) == (world.admin.id, True)

    client = Socket(await live.raw(additional_headers=world.uw_headers))
    await client.expect("connection-established", userId=world.underwriter.id, isAdmin=False)


async def test_a_first_auth_message_authenticates(live: Live) -> None:
    client = Socket(await live.raw())
    await client.send({"type": "auth", "token": live.token(live.world.uw_headers)})
    await client.expect("connection-established", userId=live.world.underwriter.id)
    # Authenticating again is an error, not a disconnect.
    await client.send({"type": "auth", "token": live.token(live.world.uw_headers)})
    error = await client.expect("error", code="bad_message")
    assert "already authenticated" in error["message"]
    await client.send({"type": "ping"})
    await client.expect("pong")


async def test_failed_authentication_closes_with_1008(live: Live) -> None:
    unknown = "jv_" + "0" * 40
    bearer = {"Authorization": f"Bearer {unknown}"}
    attempts: list[tuple[dict[str, Any], Any, str]] = [
        ({"url": live.ws_url(token=unknown)}, None, "invalid credentials"),
        ({"additional_headers": bearer}, None, "invalid credentials"),
        (
            {"additional_headers": {"Cookie": f"{SESSION_COOKIE}=not-a-session"}},
            None,
            "invalid credentials",
        ),
        ({}, {"type": "auth", "token": unknown}, "invalid credentials"),
        ({}, {"type": "ping"}, "authentication required"),
        ({}, "not json", "authentication required"),
        ({}, {"type": "auth"}, "authentication required"),
    ]
    for connect_kwargs, first, reason in attempts:
        client = Socket(await live.raw(**connect_kwargs))
        if first is not None:
            await client.send(first)
        assert await client.closed() == (1008, reason), (connect_kwargs, first)


async def test_a_socket_that_never_authenticates_is_closed_with_1008(
    settings: Settings, db: Database
) -> None:
    async with live_app(settings, db, ws_auth_timeout_seconds=0.2) as live:
        client = Socket(await live.raw())
        assert await client.closed() == (1008, "authentication required")


# --- subscriptions ----------------------------------------------------------------------


async def test_only_the_creator_or_an_admin_may_subscribe(live: Live) -> None:
    world = live.world
    await world.agent("Process", "Worker", persona="underwriter", serves_all_personas=True)
    theirs = await world.post("admin's command")
    mine = await world.post("my command", persona="underwriter", headers=world.uw_headers)
    await world.settle()
    uw, _ = await live.socket(world.uw_headers)

    await uw.send({"type": "subscribe-execution", "executionId": theirs})
    error = await uw.expect("error", code="forbidden", executionId=theirs)
    assert "belongs to another user" in error["message"]
    unknown = str(uuid.uuid4())
    await uw.send({"type": "subscribe-execution", "executionId": unknown})
    error = await uw.expect("error", code="not_found", executionId=unknown)
    assert unknown in error["message"]

    # The socket still works: the user's own execution replays completely.
    subscribed = await uw.subscribe(mine)
    assert subscribed["status"] == "completed"
    assert await uw.events_until(mine) == await world.events(mine)
    # An admin may follow anyone's execution.
    admin, _ = await live.socket()
    await admin.subscribe(mine)
    assert await admin.events_until(mine) == await world.events(mine)
    assert live.app.state.realtime.stats()["followers"] == 2


async def test_unsubscribing_stops_the_events(live: Live) -> None:
    world = live.world
    await world.agent("Process", "Reviewer", config={"requiresApproval": True})
    paused = await world.post("needs a decision")
    await world.settle()
    client, _ = await live.socket()
    await client.subscribe(paused)
    await client.events_until(paused, {"awaiting_approval"})

    await client.send({"type": "unsubscribe-execution", "executionId": paused})
    await client.expect("unsubscribed", executionId=paused)
    assert (await world.action(paused, "approve")).status_code == 200
    await world.settle()
    assert (await world.show(paused))["status"] == "completed"

    # The approved execution's events were published before the next one's: had the
    # unsubscription not worked, they would arrive first.
    other = await world.post("next")  # pauses for a decision too
    await world.settle()
    await client.subscribe(other)
    assert await client.events_until(other, {"awaiting_approval"}) == await world.events(other)
    # Unsubscribing from something never subscribed is still acknowledged.
    await client.send({"type": "unsubscribe-execution", "executionId": "never"})
    await client.expect("unsubscribed", executionId="never")


async def test_bad_messages_are_answered_with_errors_and_the_socket_stays_open(
    live: Live,
) -> None:
    client, _ = await live.socket()
    too_large = json.dumps({"type": "ping", "pad": "x" * MAX_CLIENT_MESSAGE_BYTES})
    cases: list[tuple[Any, str, str]] = [
        ("not json", "invalid_json", "not valid JSON"),
        (b"\xff\xfe", "invalid_json", "not valid JSON"),
        ("[1, 2]", "bad_message", "JSON object"),
        ({"executionId": "x"}, "bad_message", "type"),
        ({"type": 5}, "bad_message", "type"),
        ({"type": "dance"}, "unknown_type", "'dance'"),
        ({"type": "subscribe-execution"}, "bad_message", "executionId: Field required"),
        (
            {"type": "subscribe-execution", "executionId": "x", "afterSeq": "soon"},
            "bad_message",
            "afterSeq:",
        ),
        (
            {"type": "subscribe-execution", "executionId": "x", "afterSeq": -1},
            "bad_message",
            "afterSeq:",
        ),
        (
            {"type": "subscribe-execution", "executionId": "x", "aftrSeq": 3},
            "bad_message",
            "aftrSeq:",
        ),
        ({"type": "subscribe-execution", "executionId": "x" * 37}, "bad_message", "executionId:"),
        ({"type": "subscribe-execution", "executionId": "a\u0000b"}, "bad_message", "NUL"),
        ({"type": "ping", "extra": True}, "bad_message", "extra:"),
        (too_large, "bad_message", str(MAX_CLIENT_MESSAGE_BYTES)),
    ]
    for raw, code, words in cases:
        await client.send(raw)
        error = await client.expect("error", code=code)
        assert words in error["message"], (raw, error)
    await client.send(b'{"type": "ping"}')  # binary frames holding JSON are read too
    await client.expect("pong")
    assert client.connection.close_code is None


async def test_subscribe_all_shows_admins_everything_and_others_their_own(
    settings: Settings, db: Database, bus_factory: BusFactory
) -> None:
    async with live_app(settings, db, bus=bus_factory()) as live:
        world = live.world
        await world.agent("Process", "Worker", persona="underwriter", serves_all_personas=True)
        other_headers = await world.user("underwriter")
        admin, _ = await live.socket()
        uw, _ = await live.socket(world.uw_headers)
        other, _ = await live.socket(other_headers)
        for client in (admin, uw, other):
            await client.send({"type": "subscribe-all"})
            await client.expect("subscribed-all")

        x = await world.post("admin's")
        await world.settle()
        y = await world.post("underwriter's", persona="underwriter", headers=world.uw_headers)
        await world.settle()
        z = await world.post("the other's", persona="underwriter", headers=other_headers)
        await world.settle()
        stored = {e: await world.events(e) for e in (x, y, z)}

        async def collect(client: Socket, last: str) -> dict[str, list[dict[str, Any]]]:
            """Events by execution (ours only: a shared Redis carries others' too) until
            ``last`` ends."""
            seen: dict[str, list[dict[str, Any]]] = {}
            while True:
                body = await client.recv()
                if body.get("executionId") not in stored:
                    continue
                seen.setdefault(body["executionId"], []).append(body)
                if body["executionId"] == last and body["type"] in TERMINAL_EVENTS:
                    return seen

        assert await collect(admin, z) == stored
        # Published before z's, so they would have come first: never anyone else's.
        assert await collect(uw, y) == {y: stored[y]}
        assert await collect(other, z) == {z: stored[z]}

        # Following an execution as well as everything: its events come once.
        await world.agent(
            "Interface",
            "Approver",
            persona="underwriter",
            serves_all_personas=True,
            config={"requiresApproval": True},
        )
        w = await world.post("followed twice", persona="underwriter", headers=world.uw_headers)
        await world.settle()
        head = await uw.events_until(w, {"awaiting_approval"})
        await uw.subscribe(w, after_seq=head[-1]["seq"])
        assert (await world.action(w, "approve", headers=world.uw_headers)).status_code == 200
        rest = await uw.events_until(w)
        assert head + rest == await world.events(w)

        await uw.send({"type": "unsubscribe-all"})
        await uw.expect("unsubscribed-all")
        assert live.app.state.realtime.stats()["allListeners"] == 2


async def test_config_changes_reach_config_subscribers(
    settings: Settings, db: Database, bus_factory: BusFactory
) -> None:
    async with live_app(settings, db, bus=bus_factory()) as live:
        client, _ = await live.socket(live.world.uw_headers)
        await client.send({"type": "subscribe-config"})
        await client.expect("subscribed-config")

        await live.world.set("agent.max_retries", 2)

        while True:  # a shared Redis may carry other processes' changes too
            message = await client.recv()
            assert message["type"] == "config_changed", message
            keys = [change["key"] for change in message["changes"]]
            if "agent.max_retries" in keys:
                break
        change = message["changes"][keys.index("agent.max_retries")]
        assert change["scope"] == {}  # global
        assert isinstance(change["version"], int)
        await client.send({"type": "unsubscribe-config"})
        await client.expect("unsubscribed-config")


# --- heartbeats, slow consumers, drops, shutdown ---------------------------------------


async def test_a_client_that_only_listens_stays_connected_through_many_heartbeats(
    settings: Settings, db: Database
) -> None:
    """Liveness is the protocol's pings (which the client library answers by itself), not
    application messages: a client that subscribes, then sends nothing while an execution
    waits for approval over more than three heartbeat intervals, stays open and gets the
    rest of the events (the old rule closed it with 4000 after three intervals)."""
    async with live_app(settings, db, ws_heartbeat_seconds=HEARTBEAT) as live:
        world = live.world
        await world.agent("Process", "Reviewer", config={"requiresApproval": True})
        paused = await world.post("needs a decision")
        await world.settle()
        listener, greeting = await live.socket()
        assert greeting["heartbeatSeconds"] == HEARTBEAT
        await listener.subscribe(paused)
        before = await listener.events_until(paused, {"awaiting_approval"})

        started = asyncio.get_running_loop().time()
        while listener.heartbeats < 2 * HEARTBEATS_OF_SILENCE:  # answered none of them
            assert await listener.recv(heartbeats=True) == {"type": "heartbeat"}
        silent_for = asyncio.get_running_loop().time() - started
        assert silent_for > HEARTBEATS_OF_SILENCE * HEARTBEAT
        assert listener.connection.close_code is None

        assert (await world.action(paused, "approve")).status_code == 200
        after = await listener.events_until(paused)
        assert before + after == await world.events(paused)
        assert after[-1]["type"] == "execution_completed"
        assert listener.connection.close_code is None
        assert live.app.state.realtime.stats()["clients"] == 1


async def test_a_client_that_stops_answering_protocol_pings_is_closed(
    settings: Settings, db: Database
) -> None:
    """A peer that is gone (it reads nothing, so answers no ping) is closed by the server
    (1011, uvicorn's keepalive timeout); a live one beside it is not."""
    async with live_app(settings, db, ws_heartbeat_seconds=HEARTBEAT) as live:
        hub: RealtimeHub = live.app.state.realtime
        gone, _ = await live.socket()
        alive, _ = await live.socket()
        gone.connection.transport.pause_reading()  # as a frozen or vanished peer
        await eventually(lambda: hub.stats()["clients"] == 1)
        gone.connection.transport.resume_reading()
        assert await gone.closed() == (1011, "keepalive ping timeout")
        await alive.send({"type": "ping"})
        assert await alive.expect("pong") == {"type": "pong"}
        assert alive.connection.close_code is None


def test_jarvis_serve_runs_uvicorn_with_protocol_pings_of_the_heartbeat() -> None:
    options = uvicorn_ws_options(2.5)
    assert options["ws_ping_interval"] == 2.5
    assert options["ws_ping_timeout"] == 5.0
    assert options["ws"] == "websockets-sansio"


async def test_a_slow_client_is_closed_and_the_others_get_every_event(
    settings: Settings, db: Database, bus_factory: BusFactory
) -> None:
    bus = bus_factory()
    async with live_app(settings, db, bus=bus, ws_send_queue_size=20) as live:
        world = live.world
        execution_id = await world.post("go")
        await world.settle()
        stored = await world.events(execution_id)
        hub: RealtimeHub = live.app.state.realtime

        fast, _ = await live.socket()
        await fast.subscribe(execution_id)
        assert await fast.events_until(execution_id) == stored
        # Uncompressed, so that what is sent is what fills the buffers.
        slow, _ = await live.socket(compression=None)
        await slow.subscribe(execution_id)
        assert await slow.events_until(execution_id) == stored
        # The slow client stops reading: TCP's buffers fill up, then the server's queue.
        slow.connection.transport.pause_reading()

        # Large live events after the stored ones (the follower passes on seq last + 1),
        # one at a time, each received by the fast client before the next is published.
        seq = stored[-1]["seq"]
        while hub.stats()["clients"] == 2:
            seq += 1
            assert seq < stored[-1]["seq"] + 5000, "the slow client was never closed"
            body = {
                "type": "test_padding",
                "executionId": execution_id,
                "seq": seq,
                "at": utcnow().isoformat(),
                "padding": base64.b64encode(os.urandom(48 * 1024)).decode(),
            }
            await bus.publish(EVENTS_CHANNEL, body)
            assert (await fast.recv())["seq"] == seq

        slow.connection.transport.resume_reading()
        assert await slow.closed() == (1013, "client too slow")
        # The others go on as before.
        for _ in range(3):
            seq += 1
            body = {"type": "test_padding", "executionId": execution_id, "seq": seq, "at": ""}
            await bus.publish(EVENTS_CHANNEL, body)
            assert (await fast.recv())["seq"] == seq
        assert hub.stats()["clients"] == 1


async def test_a_dropped_socket_does_not_affect_the_execution(live: Live) -> None:
    world = live.world
    await world.agent("Role", "Slow", config={"delayMs": 100})
    await world.agent("Process", "Later")
    client, _ = await live.socket()
    execution_id = await world.post("go")
    await client.subscribe(execution_id)
    await client.events_until(execution_id, {"step_started"})

    client.connection.transport.abort()
    await world.settle()

    assert (await world.show(execution_id))["status"] == "completed"
    hub: RealtimeHub = live.app.state.realtime
    await eventually(lambda: hub.stats()["clients"] == 0)
    assert hub.stats()["followers"] == 0


async def test_sockets_are_closed_with_1001_when_the_app_stops(
    settings: Settings, db: Database
) -> None:
    async with running_app(settings, db) as app:
        async with uvicorn_server(app) as address:
            token = await token_for(db, await create_user(db, persona="admin"))
            async with connect(f"ws://{address}/api/agent-executions/ws?token={token}") as ws:
                client = Socket(ws)
                await client.expect("connection-established")
                closed = asyncio.create_task(client.closed())
                await app.state.realtime.close()  # what the lifespan's shutdown does first
                assert await closed == (1001, "server shutting down")


@pytest.mark.parametrize("count", [25])
async def test_one_bus_subscription_serves_every_socket(live: Live, count: int) -> None:
    bus = live.app.state.bus
    before = len(bus._subscribers[EVENTS_CHANNEL])
    execution_id = await live.world.post("go")
    await live.world.settle()
    clients = [(await live.socket())[0] for _ in range(count)]
    for client in clients:
        await client.send({"type": "subscribe-all"})
        await client.expect("subscribed-all")
        await client.subscribe(execution_id)
    assert len(bus._subscribers[EVENTS_CHANNEL]) == before == 1
    assert live.app.state.realtime.stats()["followers"] == count


def test_the_socket_settings_come_from_the_environment_within_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = ("JARVIS_WS_HEARTBEAT_SECONDS", "JARVIS_WS_AUTH_TIMEOUT_SECONDS")
    for name in (*names, "JARVIS_WS_SEND_QUEUE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert (
        defaults.ws_heartbeat_seconds,
        defaults.ws_auth_timeout_seconds,
        defaults.ws_send_queue_size,
    ) == (15, 10, 1000)

    monkeypatch.setenv("JARVIS_WS_HEARTBEAT_SECONDS", "2.5")
    monkeypatch.setenv("JARVIS_WS_AUTH_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("JARVIS_WS_SEND_QUEUE_SIZE", "50")
    configured = Settings()
    assert (
        configured.ws_heartbeat_seconds,
        configured.ws_auth_timeout_seconds,
        configured.ws_send_queue_size,
    ) == (2.5, 3, 50)

    for name, bad in (
        ("JARVIS_WS_HEARTBEAT_SECONDS", "0"),
        ("JARVIS_WS_HEARTBEAT_SECONDS", "7200"),
        ("JARVIS_WS_AUTH_TIMEOUT_SECONDS", "-1"),
        ("JARVIS_WS_SEND_QUEUE_SIZE", "5"),
        ("JARVIS_WS_SEND_QUEUE_SIZE", "many"),
    ):
        with monkeypatch.context() as patch:
            patch.setenv(name, bad)
            with pytest.raises(ValidationError, match=name.removeprefix("JARVIS_").lower()):
                Settings()
