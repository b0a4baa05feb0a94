"""Integrity the database itself enforces, whatever the service checks first."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from jarvis.agents.models import Agent
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from tests.factories import create_agent, create_personas


async def test_names_differing_only_in_case_cannot_both_be_stored(db: Database) -> None:
    """Bypassing the service's check (as two racing requests would), the index refuses."""
    await create_personas(db)
    async with unit_of_work(db) as session:
        session.add(Agent(name="Intent Router", layer="Role", persona="admin"))
    with pytest.raises(IntegrityError) as raised:
        async with unit_of_work(db) as session:
            session.add(Agent(name="INTENT router", layer="Role", persona="admin"))
    assert "uq_agents_lower_name" in str(raised.value)


async def test_concurrent_creates_differing_in_case_give_one_201(client, admin_headers) -> None:
    names = ["Claims Triage", "claims triage", "CLAIMS TRIAGE", "Claims triage"]
    responses = await asyncio.gather(
        *(
            client.post("/api/agents", json={"name": n, "layer": "Process"}, headers=admin_headers)
            for n in names
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409]
    assert (await client.get("/api/agents")).json()["total"] == 1


async def test_ids_of_deleted_agents_are_not_reused(client, admin_headers, db: Database) -> None:
    first = await create_agent(db)
    second = await create_agent(db)
    deleted = await client.delete(f"/api/agents/{second.id}", headers=admin_headers)
    assert deleted.status_code == 204
    third = await create_agent(db)
    assert third.id > second.id > first.id
