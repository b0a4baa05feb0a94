"""WebSocket liveness with a real ``jarvis serve``: protocol pings, not messages, keep a
client (tests/realtime/processes.py starts the process).

The server runs with a short heartbeat (``JARVIS_WS_HEARTBEAT_SECONDS``), which
``jarvis serve`` turns into uvicorn's protocol pings. A client that subscribes and then only
listens (its library answers the pings by itself, it sends no message) while an execution
waits for approval over many heartbeat intervals stays connected and receives the rest of
the events; a client that stops reading (so answers no ping) is closed by the server.

PostgreSQL and Redis only, like the other real-process tests: skipped without them (with
``CI=true`` a missing service fails the run instead). ``WAIT`` is a hang guard.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from tests import conftest as suite
from tests.realtime.processes import WAIT, Api, ApiClient, Cluster

HEARTBEAT = 0.5
# The old rule closed a client that sent nothing for three intervals (4000).
SILENT_HEARTBEATS = 3


@pytest.fixture(scope="module")
def cluster(
    postgres_available: bool, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One ``jarvis serve`` with a short heartbeat that runs executions itself."""
    if not postgres_available:
        pytest.skip(suite._skipped_suites["postgresql"])
    cluster = Cluster.create(
        redis_url=redis_url,
        workdir=tmp_path_factory.mktemp("liveness"),
        extra_env={
            "JARVIS_WS_HEARTBEAT_SECONDS": f"{HEARTBEAT:g}",
            "JARVIS_DISPATCHER": "in-process",
        },
        label="alive",
    )
    try:
        asyncio.run(cluster.ready(cluster.start_api()))
        yield cluster
    except BaseException:
        print(cluster.report())  # noqa: T201 - shown when the module's setup fails
        raise
    finally:
        cluster.close()


async def receive(connection: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        body: dict[str, Any] = json.loads(await connection.recv())
        return body


async def events_until(
    connection: ClientConnection, execution_id: str, types: frozenset[str]
) -> list[dict[str, Any]]:
    """The execution's events up to the first of ``types`` (heartbeats skipped)."""
    events = []
    while True:
        body = await receive(connection)
        if body.get("type") == "heartbeat":
            continue
        assert body.get("executionId") == execution_id and "seq" in body, body
        events.append(body)
        if body["type"] in types:
            return events


async def test_a_listening_client_of_jarvis_serve_stays_and_a_gone_one_is_closed(
    cluster: Cluster,
) -> None:
    api: Api = cluster.apis[0]
    client = ApiClient(api, cluster.headers)
    try:
        persona = "alive_desk"
        await client.register_persona(persona)
        await client.call(
            "POST",
            "/api/agents",
            json={
                "name": "Reviewer · alive",
                "layer": "Process",
                "persona": persona,
                "kind": "echo",
                "config": {"requiresApproval": True},
                "governanceStatus": "approved",
                "businessFunction": "testing",
            },
        )
        execution_id = await client.post_command(persona, "needs a decision")
        await client.until_status(execution_id, {"awaiting_approval"})

        url = api.ws_url(token=cluster.admin_token)
        async with (
            connect(url, max_queue=None, open_timeout=WAIT) as listening,
            connect(url, max_queue=None, open_timeout=WAIT) as gone,
        ):
            for connection in (listening, gone):
                greeting = await receive(connection)
                assert greeting["type"] == "connection-established", greeting
                assert greeting["heartbeatSeconds"] == HEARTBEAT
            subscribe = {"type": "subscribe-execution", "executionId": execution_id}
            await listening.send(json.dumps(subscribe))  # the last message it sends
            assert (await receive(listening))["type"] == "subscribed"
            before = await events_until(listening, execution_id, frozenset({"awaiting_approval"}))

            gone.transport.pause_reading()  # a peer that froze: it answers no ping
            started = asyncio.get_running_loop().time()
            heartbeats = 0
            while heartbeats < 2 * SILENT_HEARTBEATS:
                body = await receive(listening)
                assert body == {"type": "heartbeat"}, body
                heartbeats += 1
            assert asyncio.get_running_loop().time() - started > SILENT_HEARTBEATS * HEARTBEAT
            assert listening.close_code is None

            await client.call("POST", f"/api/agent-executions/{execution_id}/approve", json={})
            after = await events_until(listening, execution_id, frozenset(TERMINAL_EVENTS))
            assert before + after == await client.events(execution_id)
            assert after[-1]["type"] == "execution_completed"
            assert listening.close_code is None

            gone.transport.resume_reading()
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(WAIT):
                    while True:
                        await gone.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1011,
                "keepalive ping timeout",
            )
    finally:
        await client.aclose()
