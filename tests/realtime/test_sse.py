"""Server-Sent Events at ``GET /api/agent-executions/{id}/events``: the JSON page without
``Accept: text/event-stream``, the stream with it (replay after ``Last-Event-ID`` or
``afterSeq``, then live, heartbeats, the end after the terminal event), same auth.

Finished executions are read in-process; the live stream goes through a real uvicorn
server, on SQLite and PostgreSQL, on the in-process bus and on the real Redis.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from jarvis.db.engine import Database
from jarvis.settings import Settings
from tests.orchestration.conftest import World
from tests.realtime.conftest import WAIT, BusFactory, live_app

SSE = {"Accept": "text/event-stream"}


@dataclass
class Stream:
    """A parsed event stream: its records and its comments, in order."""

    records: list[dict[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: str | None = None

    def feed(self, block: str) -> dict[str, str] | None:
        """One block (the lines between blank lines); the record it holds, if any."""
        record: dict[str, str] = {}
        for line in block.split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = value
            else:
                assert name in {"id", "event", "data"}, line
                assert name not in record, block  # one data line per record
                record[name] = value
        if record:
            self.records.append(record)
            return record
        return None

    @property
    def events(self) -> list[dict[str, Any]]:
        out = []
        for record in self.records:
            body = json.loads(record["data"])
            assert record["id"] == str(body["seq"]), record
            assert record["event"] == body["type"], record
            out.append(body)
        return out


def parse(text: str) -> Stream:
    stream = Stream()
    assert text.endswith("\n\n") or not text, text[-50:]
    for block in text.split("\n\n"):
        stream.feed(block)
    return stream


async def finished(world: World, *, approval: bool = False) -> str:
    await world.agent("Role", "Desk", config={"requiresApproval": approval})
    await world.agent("Process", "Worker")
    execution_id = await world.post("go")
    await world.settle()
    return execution_id


async def test_without_the_event_stream_accept_header_the_json_page_is_unchanged(
    world: World,
) -> None:
    execution_id = await finished(world)
    url = f"/api/agent-executions/{execution_id}/events"
    for accept in (None, "application/json", "*/*", "text/event-stream;q=0.5, application/json"):
        headers = dict(world.admin_headers) | ({"Accept": accept} if accept else {})
        response = await world.client.get(url, headers=headers, params={"afterSeq": 2})
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"] == "application/json", accept
        page = response.json()
        assert [item["seq"] for item in page["items"]][:2] == [3, 4]
        assert page["total"] == len(page["items"])


async def test_a_finished_execution_streams_every_event_then_ends(world: World) -> None:
    execution_id = await finished(world)
    stored = await world.events(execution_id)
    url = f"/api/agent-executions/{execution_id}/events"

    response = await world.client.get(url, headers=world.admin_headers | SSE)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    stream = parse(response.text)
    assert stream.retry is not None and int(stream.retry) > 0
    assert stream.events == stored
    assert stream.records[-1]["event"] == "execution_completed"


async def test_last_event_id_and_after_seq_resume_the_stream(world: World) -> None:
    execution_id = await finished(world)
    stored = await world.events(execution_id)
    url = f"/api/agent-executions/{execution_id}/events"
    headers = world.admin_headers | SSE

    resumed = await world.client.get(url, headers=headers | {"Last-Event-ID": "5"})
    assert parse(resumed.text).events == stored[5:]
    after = await world.client.get(url, headers=headers, params={"afterSeq": 3})
    assert parse(after.text).events == stored[3:]
    # The header (what a reconnecting EventSource sends) wins over the query.
    both = await world.client.get(
        url, headers=headers | {"Last-Event-ID": "7"}, params={"afterSeq": 1}
    )
    assert parse(both.text).events == stored[7:]
    # Nothing more will come: 204 tells an EventSource to stop reconnecting.
    last = str(stored[-1]["seq"])
    done = await world.client.get(url, headers=headers | {"Last-Event-ID": last})
    assert (done.status_code, done.text) == (204, "")
    bad = await world.client.get(url, headers=headers | {"Last-Event-ID": "soon"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


async def test_the_stream_has_the_json_routes_auth_and_ownership(world: World) -> None:
    execution_id = await finished(world)
    url = f"/api/agent-executions/{execution_id}/events"
    cases = [
        ({}, 401),
        (world.uw_headers, 403),
        (world.admin_headers, 200),
    ]
    for headers, status in cases:
        response = await world.client.get(url, headers=headers | SSE)
        assert response.status_code == status, response.text
        if status != 200:
            assert response.headers["content-type"] == "application/problem+json"
    unknown = f"/api/agent-executions/{uuid.uuid4()}/events"
    response = await world.client.get(unknown, headers=world.admin_headers | SSE)
    assert response.status_code == 404


async def test_a_live_stream_replays_continues_beats_and_ends(
    settings: Settings, db: Database, bus_factory: BusFactory
) -> None:
    async with live_app(settings, db, bus=bus_factory(), ws_heartbeat_seconds=0.1) as live:
        world = live.world
        execution_id = await finished(world, approval=True)  # paused for a decision
        url = f"{live.http_url}/api/agent-executions/{execution_id}/events"
        stream = Stream()
        async with (
            httpx.AsyncClient(timeout=WAIT) as http,
            http.stream("GET", url, headers=world.admin_headers | SSE) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            blocks = aiter_blocks(response)
            while True:  # the replay, up to the pause
                record = stream.feed(await anext(blocks))
                if record and record["event"] == "awaiting_approval":
                    break
            while not stream.comments:  # idle: heartbeats
                stream.feed(await anext(blocks))
            assert stream.comments[0] == "heartbeat"
            approved = await world.action(execution_id, "approve")
            assert approved.status_code == 200, approved.text
            async for block in blocks:  # live, until the server ends the stream
                stream.feed(block)
        assert stream.records[-1]["event"] == "execution_completed"
        assert stream.events == await world.events(execution_id)
        assert live.app.state.realtime.stats()["followers"] == 0


async def test_a_live_stream_ends_when_its_token_is_revoked(
    settings: Settings, db: Database, bus_factory: BusFactory
) -> None:
    async with live_app(settings, db, bus=bus_factory(), ws_heartbeat_seconds=0.1) as live:
        world = live.world
        execution_id = await finished(world, approval=True)  # paused: the stream stays open
        created = await world.client.post(
            "/api/user/tokens", json={"name": "sse reader"}, headers=world.admin_headers
        )
        assert created.status_code == 201, created.text
        token = created.json()
        url = f"{live.http_url}/api/agent-executions/{execution_id}/events"
        stream = Stream()
        async with (
            httpx.AsyncClient(timeout=WAIT) as http,
            http.stream(
                "GET", url, headers={"Authorization": f"Bearer {token['token']}"} | SSE
            ) as response,
        ):
            assert response.status_code == 200
            blocks = aiter_blocks(response)
            while not stream.comments:  # the replay, then heartbeats
                stream.feed(await anext(blocks))
            revoked = await world.client.delete(
                f"/api/user/tokens/{token['id']}", headers=world.admin_headers
            )
            assert revoked.status_code == 204
            async for block in blocks:  # the server ends the stream at the next beat
                stream.feed(block)
        assert stream.records[-1]["event"] == "awaiting_approval"  # not run to its end
        assert live.app.state.realtime.stats()["followers"] == 0


async def aiter_blocks(response: httpx.Response) -> Any:
    """The stream's blocks (separated by blank lines) as they arrive."""
    pending = ""
    async for chunk in response.aiter_text():
        pending += chunk
        while "\n\n" in pending:
            block, pending = pending.split("\n\n", 1)
            yield block
    assert pending == ""


async def test_the_openapi_document_describes_the_stream(world: World) -> None:
    document = (await world.client.get("/openapi.json")).json()
    operation = document["paths"]["/api/agent-executions/{execution_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert "application/json" in operation["responses"]["200"]["content"]
    assert "204" in operation["responses"]
    headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert headers == ["Last-Event-ID"]
