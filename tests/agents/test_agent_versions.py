"""Agent version history over HTTP: updates keep the previous state, restore, delete."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jarvis.agents.models import Agent, AgentVersion
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from tests.factories import bearer, create_agent, create_user, grant_permissions, token_for
from tests.problems import assert_problem

# Versioned fields as the API spells them; metrics and bookkeeping are not versioned.
VERSIONED_WIRE_FIELDS = (
    "name",
    "layer",
    "persona",
    "specialization",
    "description",
    "kind",
    "config",
    "enabled",
    "servesAllPersonas",
    "maturityLevel",
    "governanceStatus",
    "riskLevel",
    "canGeneratePersona",
    "personaGenerationConfig",
    "dashboardTemplate",
    "businessFunction",
    "slaStatus",
)


class Caller:
    def __init__(self, email: str, headers: dict[str, str]) -> None:
        self.email = email
        self.headers = headers


@pytest.fixture
async def caller(db: Database) -> Caller:
    user = await create_user(db, persona="underwriter")
    # Any persona granted agents:write edits agents; the versions record who did.
    await grant_permissions(db, "underwriter", "agents:write")
    return Caller(user.email, bearer(await token_for(db, user)))


def versioned(agent: dict[str, Any]) -> dict[str, Any]:
    return {name: agent[name] for name in VERSIONED_WIRE_FIELDS}


async def create(client: httpx.AsyncClient, caller: Caller, **body: Any) -> dict[str, Any]:
    body.setdefault("layer", "Role")
    response = await client.post("/api/agents", json=body, headers=caller.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def patch(
    client: httpx.AsyncClient, caller: Caller, agent_id: int, **changes: Any
) -> dict[str, Any]:
    response = await client.patch(f"/api/agents/{agent_id}", json=changes, headers=caller.headers)
    assert response.status_code == 200, response.text
    updated: dict[str, Any] = response.json()
    return updated


async def versions(client: httpx.AsyncClient, agent_id: int, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/agents/{agent_id}/versions", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def stored_version_count(db: Database, agent_id: int) -> int:
    async with unit_of_work(db, write=False) as session:
        count = await session.scalar(
            select(func.count()).select_from(AgentVersion).where(AgentVersion.agent_id == agent_id)
        )
    return int(count or 0)


# --- history ----------------------------------------------------------------------------


async def test_new_agent_has_no_versions(client: httpx.AsyncClient, caller: Caller) -> None:
    agent = await create(client, caller, name="Fresh")
    assert await versions(client, agent["id"]) == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }


async def test_update_stores_previous_state_as_version_n(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    v1 = await create(
        client,
        caller,
        name="Historian",
        layer="Process",
        persona="underwriter",
        description="first",
        config={"threshold": 1},
        maturityLevel=2,
        businessFunction="underwriting",
    )
    v2 = await patch(client, caller, v1["id"], description="second", config={"threshold": 2})
    assert v2["version"] == 2

    page = await versions(client, v1["id"])
    assert page["total"] == 1
    [entry] = page["items"]
    assert entry["version"] == 1
    assert entry["changeType"] == "update"
    assert entry["changedBy"] == caller.email
    assert entry["createdAt"]
    assert entry["snapshot"] == versioned(v1)

    v3 = await patch(client, caller, v1["id"], name="Historian Renamed", layer="System")
    assert v3["version"] == 3
    page = await versions(client, v1["id"])
    assert page["total"] == 2
    assert [e["version"] for e in page["items"]] == [2, 1]  # newest first
    assert page["items"][0]["snapshot"] == versioned(v2)
    assert page["items"][1]["snapshot"] == versioned(v1)


async def test_version_snapshot_is_camel_case_on_the_wire(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    agent = await create(client, caller, name="Wire Format", businessFunction="claims")
    await patch(client, caller, agent["id"], maturityLevel=4)
    [entry] = (await versions(client, agent["id"]))["items"]
    snapshot = entry["snapshot"]
    assert snapshot["maturityLevel"] == 1
    assert snapshot["businessFunction"] == "claims"
    assert not {"maturity_level", "business_function", "governance_status"} & snapshot.keys()
    assert set(snapshot) == set(VERSIONED_WIRE_FIELDS)


async def test_failed_update_stores_no_version(
    client: httpx.AsyncClient, caller: Caller, db: Database
) -> None:
    await create(client, caller, name="Occupied")
    agent = await create(client, caller, name="Hopeful")
    conflict = await client.patch(
        f"/api/agents/{agent['id']}", json={"name": "OCCUPIED"}, headers=caller.headers
    )
    assert_problem(conflict, 409)
    stale = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"description": "x"},
        headers={**caller.headers, "If-Match": '"5"'},
    )
    assert_problem(stale, 412)
    assert (await versions(client, agent["id"]))["total"] == 0
    assert await stored_version_count(db, agent["id"]) == 0


async def test_versions_paginate_newest_first(client: httpx.AsyncClient, caller: Caller) -> None:
    agent = await create(client, caller, name="Busy", description="d0")
    for n in range(1, 6):
        await patch(client, caller, agent["id"], description=f"d{n}")
    walk: list[int] = []
    for offset in (0, 2, 4):
        page = await versions(client, agent["id"], limit=2, offset=offset)
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        walk.extend(e["version"] for e in page["items"])
        for entry in page["items"]:
            # version N holds the state written by update N-1, i.e. description d{N-1}
            assert entry["snapshot"]["description"] == f"d{entry['version'] - 1}"
    assert walk == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(("params", "loc"), [({"limit": 101}, "limit"), ({"offset": -1}, "offset")])
async def test_versions_list_rejects_invalid_paging(
    client: httpx.AsyncClient, db: Database, params: dict[str, int], loc: str
) -> None:
    agent = await create_agent(db)
    body = assert_problem(await client.get(f"/api/agents/{agent.id}/versions", params=params), 422)
    assert ["query", loc] in [e["loc"] for e in body["errors"]]


async def test_versions_of_unknown_agent_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/agents/9999/versions"), 404, "9999")


# --- restore ----------------------------------------------------------------------------


async def test_restore_makes_old_state_current_as_new_version(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    a = await create(
        client,
        caller,
        name="Shape Shifter",
        layer="Role",
        persona="admin",
        description="state A",
        config={"mode": "a"},
        businessFunction="claims",
        governanceStatus="approved",
    )
    b = await patch(
        client,
        caller,
        a["id"],
        name="Shape Shifter B",
        layer="Interface",
        persona="underwriter",
        description="state B",
        config={"mode": "b", "extra": [1]},
        businessFunction=None,
        governanceStatus="blocked",
        riskLevel="critical",
        canGeneratePersona=True,
    )
    c = await patch(client, caller, a["id"], description="state C")
    assert c["version"] == 3

    response = await client.post(
        f"/api/agents/{a['id']}/versions/1/restore", headers=caller.headers
    )
    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["version"] == 4
    assert response.headers["etag"] == '"4"'
    assert versioned(restored) == versioned(a)
    assert restored["createdAt"] == a["createdAt"]

    current = await client.get(f"/api/agents/{a['id']}")
    assert current.json() == restored
    assert current.headers["etag"] == '"4"'

    page = await versions(client, a["id"])
    assert [e["version"] for e in page["items"]] == [3, 2, 1]
    newest = page["items"][0]
    assert newest["changeType"] == "restore"
    assert newest["changedBy"] == caller.email
    assert newest["snapshot"] == versioned(c)

    # and back to B: everything B had comes back, including the cleared function
    again = await client.post(f"/api/agents/{a['id']}/versions/2/restore", headers=caller.headers)
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 5
    assert versioned(again.json()) == versioned(b)
    assert again.json()["businessFunction"] is None


async def test_restore_is_visible_in_the_list(client: httpx.AsyncClient, caller: Caller) -> None:
    agent = await create(client, caller, name="Listed Original", layer="Role")
    await patch(client, caller, agent["id"], name="Listed Renamed", layer="System")
    listing = (await client.get("/api/agents")).json()
    assert [(i["name"], i["layer"]) for i in listing["items"]] == [("Listed Renamed", "System")]
    restored = await client.post(
        f"/api/agents/{agent['id']}/versions/1/restore", headers=caller.headers
    )
    assert restored.status_code == 200
    listing = (await client.get("/api/agents")).json()
    assert [(i["name"], i["layer"]) for i in listing["items"]] == [("Listed Original", "Role")]
    layers = (await client.get("/api/layers")).json()["items"]
    assert {i["name"]: i["agentCount"] for i in layers}["Role"] == 1


async def test_restore_keeps_metrics(
    client: httpx.AsyncClient, caller: Caller, db: Database
) -> None:
    agent = await create(client, caller, name="Measured")
    async with unit_of_work(db) as session:
        row = await session.get(Agent, agent["id"])
        assert row is not None
        row.success_rate = 87.5
        row.cpu_usage = 33
    await patch(client, caller, agent["id"], description="changed")
    response = await client.post(
        f"/api/agents/{agent['id']}/versions/1/restore", headers=caller.headers
    )
    assert response.status_code == 200
    assert response.json()["successRate"] == 87.5
    assert response.json()["cpuUsage"] == 33
    assert response.json()["description"] is None


async def test_restoring_current_version_is_409(
    client: httpx.AsyncClient, caller: Caller, db: Database
) -> None:
    agent = await create(client, caller, name="Already There")
    fresh = await client.post(
        f"/api/agents/{agent['id']}/versions/1/restore", headers=caller.headers
    )
    assert_problem(fresh, 409, "current version")

    await patch(client, caller, agent["id"], description="v2")
    current = await client.post(
        f"/api/agents/{agent['id']}/versions/2/restore", headers=caller.headers
    )
    assert_problem(current, 409, "version 2")
    after = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert (after["version"], after["description"]) == (2, "v2")
    assert await stored_version_count(db, agent["id"]) == 1


@pytest.mark.parametrize("version", [3, 99])
async def test_restore_unknown_version_is_404(
    client: httpx.AsyncClient, caller: Caller, version: int
) -> None:
    agent = await create(client, caller, name="Short History")
    await patch(client, caller, agent["id"], description="v2")
    response = await client.post(
        f"/api/agents/{agent['id']}/versions/{version}/restore", headers=caller.headers
    )
    assert_problem(response, 404, f"version {version}")
    assert (await client.get(f"/api/agents/{agent['id']}")).json()["version"] == 2


async def test_restore_on_unknown_agent_is_404(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await client.post("/api/agents/8888/versions/1/restore", headers=caller.headers)
    assert_problem(response, 404, "8888")


async def test_restore_version_zero_is_422(
    client: httpx.AsyncClient, caller: Caller, db: Database
) -> None:
    agent = await create_agent(db)
    response = await client.post(
        f"/api/agents/{agent.id}/versions/0/restore", headers=caller.headers
    )
    body = assert_problem(response, 422)
    assert ["path", "version"] in [e["loc"] for e in body["errors"]]


async def test_restore_requires_authentication(
    client: httpx.AsyncClient, caller: Caller, db: Database
) -> None:
    agent = await create(client, caller, name="Guarded History")
    await patch(client, caller, agent["id"], description="v2")
    for headers in ({}, {"Authorization": "Bearer revoked-or-invented"}):
        response = await client.post(
            f"/api/agents/{agent['id']}/versions/1/restore", headers=headers
        )
        assert_problem(response, 401)
    after = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert (after["version"], after["description"]) == (2, "v2")
    assert await stored_version_count(db, agent["id"]) == 1


async def test_restore_of_a_name_now_taken_is_409(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    agent = await create(client, caller, name="Alpha")
    await patch(client, caller, agent["id"], name="Beta")
    await create(client, caller, name="alpha")  # takes the old name, other case
    response = await client.post(
        f"/api/agents/{agent['id']}/versions/1/restore", headers=caller.headers
    )
    assert_problem(response, 409, "already exists")
    after = (await client.get(f"/api/agents/{agent['id']}")).json()
    assert (after["name"], after["version"]) == ("Beta", 2)


# --- delete -----------------------------------------------------------------------------


async def test_delete_removes_agent_and_its_versions(
    client: httpx.AsyncClient, caller: Caller, db: Database
) -> None:
    other = await create(client, caller, name="Bystander")
    await patch(client, caller, other["id"], description="kept")
    agent = await create(client, caller, name="Ephemeral")
    for n in range(3):
        await patch(client, caller, agent["id"], description=f"d{n}")
    assert await stored_version_count(db, agent["id"]) == 3

    response = await client.delete(f"/api/agents/{agent['id']}", headers=caller.headers)
    assert response.status_code == 204

    assert_problem(await client.get(f"/api/agents/{agent['id']}"), 404)
    assert_problem(await client.get(f"/api/agents/{agent['id']}/versions"), 404)
    restore = await client.post(
        f"/api/agents/{agent['id']}/versions/1/restore", headers=caller.headers
    )
    assert_problem(restore, 404)
    assert await stored_version_count(db, agent["id"]) == 0
    # the other agent's history is untouched
    assert await stored_version_count(db, other["id"]) == 1
    assert (await versions(client, other["id"]))["total"] == 1
