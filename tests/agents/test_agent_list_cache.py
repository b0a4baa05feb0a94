"""The agent-list page cache: served from memory, never stale after a change here."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from jarvis.agents.listing import AgentPageCache, mark_registry_changed, registry_generation
from jarvis.agents.models import Agent
from jarvis.db.engine import Database
from jarvis.db.session import after_commit, unit_of_work
from jarvis.main import create_app
from jarvis.settings import Settings
from tests.factories import create_agent


async def test_change_through_api_is_visible_at_once(client, admin_headers) -> None:
    assert (await client.get("/api/agents")).json()["total"] == 0
    created = await client.post(
        "/api/agents", json={"name": "Cache Probe", "layer": "Role"}, headers=admin_headers
    )
    assert created.status_code == 201
    listed = (await client.get("/api/agents")).json()
    assert [a["name"] for a in listed["items"]] == ["Cache Probe"]
    patched = await client.patch(
        f"/api/agents/{created.json()['id']}", json={"name": "Cache Probe 2"}, headers=admin_headers
    )
    assert patched.status_code == 200
    assert (await client.get("/api/agents")).json()["items"][0]["name"] == "Cache Probe 2"
    deleted = await client.delete(f"/api/agents/{created.json()['id']}", headers=admin_headers)
    assert deleted.status_code == 204
    assert (await client.get("/api/agents")).json()["total"] == 0


async def test_change_through_service_is_visible_at_once(client, db: Database) -> None:
    assert (await client.get("/api/agents")).json()["total"] == 0
    await create_agent(db, name="Written Beside The API")
    assert (await client.get("/api/agents")).json()["total"] == 1


async def test_change_from_elsewhere_waits_for_ttl_and_cache_can_be_off(
    settings: Settings, db: Database
) -> None:
    """A write the process does not see (another process's) is served stale until the TTL.

    With the cache off, the same write is visible at once.
    """
    await create_agent(db, name="Original Name")

    async def rename_behind_the_back(name: str) -> None:
        # Raw SQL in a plain unit of work stands for another process: nothing marks the
        # registry changed.
        async with unit_of_work(db) as session:
            await session.execute(update(Agent).values(name=name))

    cached = create_app(settings.model_copy(update={"agent_list_cache_seconds": 3600}), database=db)
    uncached = create_app(settings.model_copy(update={"agent_list_cache_seconds": 0}), database=db)
    for application, expect_stale in ((cached, True), (uncached, False)):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = (await c.get("/api/agents")).json()["items"][0]["name"]
            await rename_behind_the_back(first + "!")
            second = (await c.get("/api/agents")).json()["items"][0]["name"]
            assert (second == first) is expect_stale


async def test_rolled_back_change_does_not_invalidate(db: Database) -> None:
    before = registry_generation()
    try:
        async with unit_of_work(db) as session:
            after_commit(session, mark_registry_changed)
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert registry_generation() == before
    async with unit_of_work(db) as session:
        after_commit(session, mark_registry_changed)
    assert registry_generation() == before + 1


def test_page_rendered_before_a_change_is_never_served() -> None:
    cache = AgentPageCache(ttl_seconds=60)
    generation = registry_generation()
    mark_registry_changed()  # committed while the page was being rendered
    cache.put("key", generation, b"stale")
    assert cache.get("key") is None
    cache.put("key", registry_generation(), b"fresh")
    assert cache.get("key") == b"fresh"
    assert AgentPageCache(ttl_seconds=0).get("key") is None
