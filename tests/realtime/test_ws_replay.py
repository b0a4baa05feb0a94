"""Replay then live: a client connected throughout, one that subscribes late, one that
disconnects and resubscribes with ``afterSeq``, all end with the same events as the
database holds (no gap, no duplicate, strictly increasing ``seq``).

Runs on SQLite and PostgreSQL, on the in-process bus and on the real Redis, with the
replay read in pages of 3 (so page boundaries meet live events) and in one page.
"""

from __future__ import annotations

from typing import Any

import pytest

from jarvis.db.engine import Database
from jarvis.realtime import follower as follower_module
from jarvis.settings import Settings
from tests.realtime.conftest import BusFactory, Live, live_app


async def paced_world(live: Live) -> None:
    """Agents that take a moment, several per layer, and one that needs a decision."""
    world = live.world
    await world.agent("Experience", "Greeter", config={"delayMs": 20})
    await world.agent("Role", "Desk A", config={"delayMs": 30})
    await world.agent("Role", "Desk B", config={"delayMs": 5})
    await world.agent("Process", "Reviewer", config={"requiresApproval": True})
    await world.agent("Process", "Checker", config={"delayMs": 10})
    await world.agent("System", "Lookup", config={"delayMs": 15})
    await world.agent("Interface", "Out", config={"delayMs": 5})


def numbered(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


@pytest.mark.parametrize("page", [3, 500], ids=["page3", "page500"])
async def test_late_and_reconnecting_clients_get_what_a_connected_one_gets(
    settings: Settings,
    db: Database,
    bus_factory: BusFactory,
    monkeypatch: pytest.MonkeyPatch,
    page: int,
) -> None:
    monkeypatch.setattr(follower_module, "REPLAY_PAGE", page)
    async with live_app(settings, db, bus=bus_factory()) as live:
        world = live.world
        await paced_world(live)
        throughout, _ = await live.socket()
        reconnecting, _ = await live.socket()

        execution_id = await world.post("go")
        await throughout.subscribe(execution_id)
        await reconnecting.subscribe(execution_id)
        head = await reconnecting.events_until(execution_id, {"step_completed"})
        await reconnecting.connection.close()

        # Resubscribes (on a new socket) after what it has, while the execution runs.
        reconnected, _ = await live.socket()
        await reconnected.subscribe(execution_id, after_seq=head[-1]["seq"])
        middle = await reconnected.events_until(execution_id, {"awaiting_approval"})
        # Subscribes late, while the execution waits for a decision.
        late, _ = await live.socket()
        await late.subscribe(execution_id)
        late_head = await late.events_until(execution_id, {"awaiting_approval"})

        approved = await world.action(execution_id, "approve")
        assert approved.status_code == 200, approved.text
        connected = await throughout.events_until(execution_id)
        rest = await reconnected.events_until(execution_id)
        late_rest = await late.events_until(execution_id)
        await world.settle()

        # And one that comes after the end, and one that resumes after the end.
        after_end, _ = await live.socket()
        await after_end.subscribe(execution_id)
        replayed = await after_end.events_until(execution_id)
        await after_end.subscribe(execution_id, after_seq=5)
        resumed = await after_end.events_until(execution_id)

        stored = await world.events(execution_id)
        assert numbered(stored) == list(range(1, len(stored) + 1))
        assert stored[-1]["type"] == "execution_completed"
        assert "awaiting_approval" in [e["type"] for e in stored]
        assert connected == stored
        assert head + middle + rest == stored
        assert late_head + late_rest == stored
        assert replayed == stored
        assert resumed == stored[5:]


async def test_a_subscription_after_the_newest_event_waits_for_newer_ones(live: Live) -> None:
    world = live.world
    await world.agent("Process", "Reviewer", config={"requiresApproval": True})
    await world.agent("System", "Lookup")
    execution_id = await world.post("go")
    await world.settle()
    stored = await world.events(execution_id)
    assert stored[-1]["type"] == "awaiting_approval"

    client, _ = await live.socket()
    subscribed = await client.subscribe(execution_id, after_seq=stored[-1]["seq"])
    assert subscribed["status"] == "awaiting_approval"
    assert (await world.action(execution_id, "approve")).status_code == 200
    live_part = await client.events_until(execution_id)
    assert stored + live_part == await world.events(execution_id)
    assert live_part[0]["type"] == "step_approved"
