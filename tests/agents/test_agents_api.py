"""The agent registry over HTTP: ``/api/agents`` and ``/api/layers``.

Every test runs on SQLite and PostgreSQL (see ``tests/conftest.py``).
"""

from __future__ import annotations

import string
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel
from sqlalchemy import func, select

from jarvis.agents.models import Agent
from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent as service_create_agent
from jarvis.agents.service import delete_agent as service_delete_agent
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from tests.factories import TEST_ACTOR, create_agent, create_personas
from tests.problems import assert_problem

LAYERS: list[str] = [layer.value for layer in LAYER_ORDER]
SNAKE_ONLY_KEYS = {
    "cpu_usage",
    "success_rate",
    "avg_response_time",
    "maturity_level",
    "governance_status",
    "risk_level",
    "can_generate_persona",
    "persona_generation_config",
    "dashboard_template",
    "business_function",
    "sla_performance",
    "sla_status",
    "created_at",
    "updated_at",
}


# --- helpers ----------------------------------------------------------------------------


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in body["errors"]]


async def post_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    body.setdefault("layer", "System")
    response = await client.post("/api/agents", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def list_all(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/agents", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


def reference_order(rows: list[tuple[str, str, int]]) -> list[int]:
    """The reference model of the list order: (layer position, name, id) -> ids."""
    return [i for _, _, i in sorted(rows, key=lambda r: (LAYERS.index(r[0]), r[1], r[2]))]


async def agent_count(db: Database) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Agent)) or 0)


# --- create -----------------------------------------------------------------------------


async def test_create_answers_201_with_location_etag_and_camel_case_body(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/agents",
        json={
            "name": "Submission Intake Agent",
            "layer": "Process",
            "persona": "underwriter",
            "specialization": "Broker submissions",
            "description": "Turns broker e-mail into submissions.",
            "config": {"threshold": 0.8, "steps": ["read", "extract"], "nested": {"a": 1}},
            "maturityLevel": 4,
            "governanceStatus": "approved",
            "riskLevel": "high",
            "canGeneratePersona": True,
            "personaGenerationConfig": {"template": "broker"},
            "dashboardTemplate": {"widgets": ["queue"]},
            "businessFunction": "underwriting",
            "slaStatus": "amber",
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/agents/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["name"] == "Submission Intake Agent"
    assert body["layer"] == "Process"
    assert body["persona"] == "underwriter"
    assert body["specialization"] == "Broker submissions"
    assert body["config"] == {"threshold": 0.8, "steps": ["read", "extract"], "nested": {"a": 1}}
    assert body["maturityLevel"] == 4
    assert body["governanceStatus"] == "approved"
    assert body["riskLevel"] == "high"
    assert body["canGeneratePersona"] is True
    assert body["personaGenerationConfig"] == {"template": "broker"}
    assert body["dashboardTemplate"] == {"widgets": ["queue"]}
    assert body["businessFunction"] == "underwriting"
    assert body["slaStatus"] == "amber"
    assert body["version"] == 1
    assert not SNAKE_ONLY_KEYS & body.keys()

    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_create_accepts_snake_case_fields(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = await post_agent(
        client,
        admin_headers,
        name="Snake Case Agent",
        layer="Role",
        maturity_level=5,
        governance_status="under_review",
        risk_level="critical",
        can_generate_persona=True,
        business_function="claims",
        sla_status="red",
        persona_generation_config={"k": "v"},
        dashboard_template={"d": 1},
    )
    assert body["maturityLevel"] == 5
    assert body["governanceStatus"] == "under_review"
    assert body["riskLevel"] == "critical"
    assert body["canGeneratePersona"] is True
    assert body["businessFunction"] == "claims"
    assert body["slaStatus"] == "red"
    assert body["personaGenerationConfig"] == {"k": "v"}
    assert body["dashboardTemplate"] == {"d": 1}


async def test_create_fills_defaults(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = await post_agent(client, admin_headers, name="  Minimal Agent  ", layer="Interface")
    assert body["name"] == "Minimal Agent"  # surrounding whitespace stripped
    assert body["persona"] == "admin"
    assert body["config"] == {}
    assert body["maturityLevel"] == 1
    assert body["governanceStatus"] == "pending"
    assert body["riskLevel"] == "medium"
    assert body["canGeneratePersona"] is False
    assert body["slaStatus"] == "green"
    assert body["businessFunction"] is None
    assert body["cpuUsage"] == 0
    assert body["successRate"] == 0
    assert body["version"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-real-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["no-credential", "unknown-token", "wrong-scheme"],
)
async def test_create_requires_authentication(
    client: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    await create_personas(db)
    response = await client.post(
        "/api/agents", json={"name": "Sneaky", "layer": "Role"}, headers=headers
    )
    assert_problem(response, 401, slug="unauthorized")
    assert "bearer" in response.headers["www-authenticate"].lower()
    assert await agent_count(db) == 0


@pytest.mark.parametrize(
    "second", ["Claims Agent", "claims agent", "CLAIMS AGENT", " Claims Agent "]
)
async def test_create_duplicate_name_is_409_case_insensitively(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, second: str
) -> None:
    await post_agent(client, admin_headers, name="Claims Agent")
    response = await client.post(
        "/api/agents", json={"name": second, "layer": "Role"}, headers=admin_headers
    )
    assert_problem(response, 409, "already exists", slug="conflict")
    assert await agent_count(db) == 1


async def test_create_unknown_layer_is_422_naming_all_six_layers(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    response = await client.post(
        "/api/agents", json={"name": "Lost Agent", "layer": "Middleware"}, headers=admin_headers
    )
    body = assert_problem(response, 422, *LAYERS, slug="validation")
    assert error_locs(body) == [["body", "layer"]]
    assert all(layer in body["errors"][0]["msg"] for layer in LAYERS)
    assert await agent_count(db) == 0


async def test_create_layer_is_case_sensitive(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/agents", json={"name": "Lower Layer", "layer": "meta brain"}, headers=admin_headers
    )
    assert_problem(response, 422, "Meta Brain")


async def test_create_unknown_persona_is_422_listing_registered_personas(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    response = await client.post(
        "/api/agents",
        json={"name": "Ghost Agent", "layer": "Role", "persona": "ghost_writer"},
        headers=admin_headers,
    )
    body = assert_problem(
        response, 422, "ghost_writer", "registered personas: admin, underwriter", slug="validation"
    )
    assert error_locs(body) == [["body", "persona"]]
    assert await agent_count(db) == 0


@pytest.mark.parametrize("field", ["bogus", "agentName", "cpuUsage", "version", "id"])
async def test_create_unknown_field_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, field: str
) -> None:
    response = await client.post(
        "/api/agents",
        json={"name": "Typo Agent", "layer": "Role", field: 1},
        headers=admin_headers,
    )
    body = assert_problem(response, 422, field, slug="validation")
    assert ["body", field] in error_locs(body)
    assert await agent_count(db) == 0


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"maturityLevel": 0}, "maturityLevel"),
        ({"maturityLevel": 6}, "maturityLevel"),
        ({"governanceStatus": "done"}, "governanceStatus"),
        ({"riskLevel": "extreme"}, "riskLevel"),
        ({"slaStatus": "purple"}, "slaStatus"),
        ({"businessFunction": "Not A Key"}, "businessFunction"),
        ({"config": [1, 2]}, "config"),
        ({"persona": "Not A Key"}, "persona"),
    ],
)
async def test_create_rejects_invalid_values(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    patch: dict[str, Any],
    loc: str,
) -> None:
    payload = {"name": "Valid Name", "layer": "Role", **patch}
    response = await client.post("/api/agents", json=payload, headers=admin_headers)
    body = assert_problem(response, 422, slug="validation")
    assert ["body", loc] in error_locs(body)
    assert await agent_count(db) == 0


@pytest.mark.parametrize("missing", ["name", "layer"])
async def test_create_requires_name_and_layer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], missing: str
) -> None:
    payload = {"name": "Incomplete", "layer": "Role"}
    del payload[missing]
    response = await client.post("/api/agents", json=payload, headers=admin_headers)
    body = assert_problem(response, 422)
    assert ["body", missing] in error_locs(body)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, method: str
) -> None:
    agent = await create_agent(db, name="Stable")
    url = "/api/agents" if method == "POST" else f"/api/agents/{agent.id}"
    response = await client.request(
        method,
        url,
        content=b'{"name": "Broken", "layer": ',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "not valid JSON", slug="malformed-json")
    assert await agent_count(db) == 1
    unchanged = await client.get(f"/api/agents/{agent.id}")
    assert unchanged.json()["name"] == "Stable"
    assert unchanged.json()["version"] == 1


# --- read one ---------------------------------------------------------------------------


async def test_get_answers_agent_with_etag(client: httpx.AsyncClient, db: Database) -> None:
    agent = await create_agent(db, name="Readable", layer="Role", persona="underwriter")
    response = await client.get(f"/api/agents/{agent.id}")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    body = response.json()
    assert body["id"] == agent.id
    assert body["name"] == "Readable"
    assert body["layer"] == "Role"
    assert body["persona"] == "underwriter"


async def test_get_unknown_agent_is_404(client: httpx.AsyncClient, db: Database) -> None:
    agent = await create_agent(db)
    response = await client.get(f"/api/agents/{agent.id + 1000}")
    assert_problem(response, 404, str(agent.id + 1000), slug="not-found")


@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", str(2**31)])
async def test_get_invalid_id_is_422(client: httpx.AsyncClient, bad_id: str) -> None:
    response = await client.get(f"/api/agents/{bad_id}")
    body = assert_problem(response, 422)
    assert ["path", "agent_id"] in error_locs(body)


# --- list, filters, search, ordering, pagination ----------------------------------------

CATALOGUE: list[dict[str, Any]] = [
    {
        "name": "Zeta Brand Agent",
        "layer": "Experience",
        "persona": "admin",
        "business_function": "compliance",
        "governance_status": "approved",
    },
    {
        "name": "Alpha Router",
        "layer": "Meta Brain",
        "persona": "admin",
        "business_function": "compliance",
        "governance_status": "pending",
    },
    {
        "name": "Property Desk",
        "layer": "Role",
        "persona": "underwriter",
        "business_function": "underwriting",
        "governance_status": "approved",
        "specialization": "Commercial PROPERTY review",
    },
    {
        "name": "Claims Intake",
        "layer": "Process",
        "persona": "admin",
        "business_function": "claims",
        "governance_status": "under_review",
        "description": "Handles the First Notice of Loss",
    },
    {
        "name": "COPE Extractor",
        "layer": "System",
        "persona": "underwriter",
        "business_function": "underwriting",
        "governance_status": "approved",
    },
    {
        "name": "Mail Classifier",
        "layer": "System",
        "persona": "admin",
        "business_function": None,
        "governance_status": "blocked",
    },
    {
        "name": "Broker Mailer",
        "layer": "Interface",
        "persona": "underwriter",
        "business_function": "underwriting",
        "governance_status": "rejected",
    },
]


@pytest.fixture
async def catalogue(db: Database) -> dict[str, int]:
    """The agents of CATALOGUE, created in reverse so ids do not follow the list order."""
    ids: dict[str, int] = {}
    for values in reversed(CATALOGUE):
        agent = await create_agent(db, **values)
        ids[agent.name] = agent.id
    return ids


async def test_empty_list_has_page_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/agents")
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_list_orders_by_layer_then_name(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    page = await list_all(client)
    assert names(page) == [
        "Zeta Brand Agent",
        "Alpha Router",
        "Property Desk",
        "Claims Intake",
        "COPE Extractor",
        "Mail Classifier",
        "Broker Mailer",
    ]
    assert page["total"] == len(CATALOGUE)
    rows = [(item["layer"], item["name"], item["id"]) for item in page["items"]]
    assert [item["id"] for item in page["items"]] == reference_order(rows)


async def test_list_orders_layers_by_position_not_alphabet(
    client: httpx.AsyncClient, db: Database
) -> None:
    # Alphabetically: Experience, Interface, Meta Brain, Process, Role, System.
    for layer in reversed(LAYERS):
        await create_agent(db, name=f"Same Name {layer}", layer=layer)
    page = await list_all(client)
    assert [item["layer"] for item in page["items"]] == LAYERS


@pytest.mark.parametrize(
    ("param", "field", "value"),
    [
        ("layer", "layer", "System"),
        ("layer", "layer", "Experience"),
        ("layer", "layer", "Role"),
        ("persona", "persona", "underwriter"),
        ("persona", "persona", "admin"),
        ("businessFunction", "business_function", "underwriting"),
        ("businessFunction", "business_function", "claims"),
        ("governanceStatus", "governance_status", "approved"),
        ("governanceStatus", "governance_status", "blocked"),
    ],
)
async def test_each_filter_narrows_and_total_is_filtered_total(
    client: httpx.AsyncClient, catalogue: dict[str, int], param: str, field: str, value: str
) -> None:
    expected = {a["name"] for a in CATALOGUE if a.get(field) == value}
    assert 0 < len(expected) < len(CATALOGUE)

    page = await list_all(client, **{param: value})
    assert set(names(page)) == expected
    assert page["total"] == len(expected)

    # total counts the filtered rows, not the page
    first = await client.get("/api/agents", params={param: value, "limit": 1})
    assert first.status_code == 200
    assert len(first.json()["items"]) == 1
    assert first.json()["total"] == len(expected)
    assert first.json()["limit"] == 1


async def test_filters_combine_with_and(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    page = await list_all(client, persona="underwriter", governanceStatus="approved")
    assert set(names(page)) == {"Property Desk", "COPE Extractor"}
    assert page["total"] == 2
    page = await list_all(client, persona="underwriter", layer="System")
    assert names(page) == ["COPE Extractor"]
    page = await list_all(client, persona="admin", businessFunction="underwriting")
    assert page == {"items": [], "total": 0, "limit": 100, "offset": 0}


async def test_filter_with_unknown_persona_answers_empty_list(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    page = await list_all(client, persona="nobody")
    assert page["items"] == []
    assert page["total"] == 0


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("property", {"Property Desk"}),  # name and specialization
        ("PROPERTY", {"Property Desk"}),
        ("pRoPeRtY rEvIeW", {"Property Desk"}),  # specialization only
        ("first notice", {"Claims Intake"}),  # description, mixed case stored
        ("UNDERWRIT", {"Property Desk", "COPE Extractor", "Broker Mailer"}),  # function
        ("mail", {"Mail Classifier", "Broker Mailer"}),
        ("  cope  ", {"COPE Extractor"}),  # surrounding whitespace ignored
        ("no such agent anywhere", set()),
    ],
)
async def test_q_searches_case_insensitively(
    client: httpx.AsyncClient, catalogue: dict[str, int], q: str, expected: set[str]
) -> None:
    page = await list_all(client, q=q)
    assert set(names(page)) == expected
    assert page["total"] == len(expected)


async def test_q_combines_with_filters(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    page = await list_all(client, q="mail", layer="Interface")
    assert names(page) == ["Broker Mailer"]
    assert page["total"] == 1


async def test_q_treats_wildcards_and_backslash_literally(
    client: httpx.AsyncClient, db: Database
) -> None:
    for name in [
        "Growth 100% Agent",
        "Growth 1000 Agent",
        "Claims_FNOL Helper",
        "ClaimsXFNOL Helper",
        "Path C:\\temp Agent",
        "Path C:temp Agent",
    ]:
        await create_agent(db, name=name, business_function="testing")

    async def search(q: str) -> set[str]:
        page = await list_all(client, q=q)
        assert page["total"] == len(page["items"])
        return set(names(page))

    assert await search("0%") == {"Growth 100% Agent"}
    assert await search("%") == {"Growth 100% Agent"}
    assert await search("s_f") == {"Claims_FNOL Helper"}
    assert await search("_") == {"Claims_FNOL Helper"}
    assert await search("c:\\t") == {"Path C:\\temp Agent"}
    assert await search("\\") == {"Path C:\\temp Agent"}
    assert await search("100%25") == set()  # no URL-style decoding of the term
    assert len(await search("growth")) == 2


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 101}, ["query", "limit"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"offset": -1}, ["query", "offset"]),
        ({"offset": 2**31}, ["query", "offset"]),
        ({"governanceStatus": "finished"}, ["query", "governanceStatus"]),
        ({"q": "x" * 201}, ["query", "q"]),
    ],
)
async def test_list_rejects_invalid_query(
    client: httpx.AsyncClient, params: dict[str, Any], loc: list[str]
) -> None:
    body = assert_problem(await client.get("/api/agents", params=params), 422, slug="validation")
    assert loc in error_locs(body)


async def test_list_unknown_layer_is_422_naming_all_six_layers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/agents", params={"layer": "Database"})
    body = assert_problem(response, 422, *LAYERS)
    assert error_locs(body) == [["query", "layer"]]


async def test_list_limit_100_is_accepted(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    response = await client.get("/api/agents", params={"limit": 100})
    assert response.status_code == 200
    assert response.json()["limit"] == 100
    assert len(response.json()["items"]) == len(CATALOGUE)


async def test_list_offset_past_end_answers_empty_page_with_total(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    response = await client.get("/api/agents", params={"offset": 50, "limit": 10})
    assert response.json() == {"items": [], "total": len(CATALOGUE), "limit": 10, "offset": 50}


async def test_list_items_equal_single_agent_bodies(
    client: httpx.AsyncClient, admin_headers: dict[str, str], catalogue: dict[str, int]
) -> None:
    # The list and the single GET render through different paths; they must agree.
    patched = await client.patch(
        f"/api/agents/{catalogue['COPE Extractor']}",
        json={"config": {"ratio": 0.25, "list": [1, "two"]}, "maturityLevel": 5},
        headers=admin_headers,
    )
    assert patched.status_code == 200
    page = await list_all(client)
    assert len(page["items"]) == len(CATALOGUE)
    for item in page["items"]:
        single = await client.get(f"/api/agents/{item['id']}")
        assert single.json() == item


async def test_list_items_are_camel_case(
    client: httpx.AsyncClient, catalogue: dict[str, int]
) -> None:
    page = await list_all(client, layer="Role")
    item = page["items"][0]
    assert item["businessFunction"] == "underwriting"
    assert item["governanceStatus"] == "approved"
    assert not SNAKE_ONLY_KEYS & item.keys()


_NAME_CHARS = string.ascii_letters + string.digits + " -_"
_agent_names = st.text(alphabet=_NAME_CHARS, min_size=1, max_size=10).map(str.strip).filter(bool)


async def _replace_agents(db: Database, specs: list[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """Empty the registry, then create ``specs`` (name, layer); answer (layer, name, id)."""
    await create_personas(db)
    async with unit_of_work(db) as session:
        # Through the service, so the served process's list cache sees the change.
        for agent_id in (await session.scalars(select(Agent.id))).all():
            await service_delete_agent(session, agent_id, actor=TEST_ACTOR)
    rows: list[tuple[str, str, int]] = []
    async with unit_of_work(db) as session:
        for name, layer in specs:
            agent = await service_create_agent(
                session, AgentCreate(name=name, layer=layer), actor=TEST_ACTOR
            )
            rows.append((agent.layer, agent.name, agent.id))
    return rows


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(
        st.tuples(_agent_names, st.sampled_from(LAYERS)),
        max_size=14,
        unique_by=lambda spec: spec[0].lower(),
    ),
    limit=st.integers(min_value=1, max_value=6),
    layer=st.none() | st.sampled_from(LAYERS),
)
async def test_offset_limit_walk_returns_every_agent_once_in_reference_order(
    client: httpx.AsyncClient,
    db: Database,
    specs: list[tuple[str, str]],
    limit: int,
    layer: str | None,
) -> None:
    rows = await _replace_agents(db, specs)
    if layer is not None:
        rows = [row for row in rows if row[0] == layer]
    expected = reference_order(rows)
    filters = {} if layer is None else {"layer": layer}

    seen: list[int] = []
    offset = 0
    while True:
        response = await client.get(
            "/api/agents", params={**filters, "limit": limit, "offset": offset}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(expected)
        assert (page["limit"], page["offset"]) == (limit, offset)
        assert len(page["items"]) <= limit
        ids = [item["id"] for item in page["items"]]
        assert ids == expected[offset : offset + limit]
        if not ids:
            break
        seen.extend(ids)
        offset += limit

    assert seen == expected
    assert len(set(seen)) == len(seen)
    assert offset >= len(expected)


# --- update -----------------------------------------------------------------------------


async def test_patch_changes_only_given_fields_and_bumps_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await post_agent(
        client,
        admin_headers,
        name="Patch Me",
        layer="Role",
        description="before",
        config={"keep": True},
        businessFunction="claims",
    )
    response = await client.patch(
        f"/api/agents/{created['id']}",
        json={"description": "after", "maturityLevel": 3},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert body["description"] == "after"
    assert body["maturityLevel"] == 3
    assert body["version"] == 2
    for unchanged in ("name", "layer", "persona", "config", "businessFunction", "createdAt"):
        assert body[unchanged] == created[unchanged]
    fetched = await client.get(f"/api/agents/{created['id']}")
    assert fetched.json() == body
    assert fetched.headers["etag"] == '"2"'


async def test_patch_accepts_camel_and_snake_case(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await post_agent(client, admin_headers, name="Spelling")
    url = f"/api/agents/{created['id']}"
    camel = await client.patch(
        url, json={"governanceStatus": "approved", "slaStatus": "red"}, headers=admin_headers
    )
    assert camel.status_code == 200, camel.text
    assert (camel.json()["governanceStatus"], camel.json()["slaStatus"]) == ("approved", "red")
    snake = await client.patch(
        url,
        json={"governance_status": "blocked", "risk_level": "low", "business_function": "claims"},
        headers=admin_headers,
    )
    assert snake.status_code == 200, snake.text
    assert snake.json()["governanceStatus"] == "blocked"
    assert snake.json()["riskLevel"] == "low"
    assert snake.json()["businessFunction"] == "claims"
    assert snake.json()["version"] == 3


async def test_patch_can_move_agent_to_another_layer_and_persona(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await post_agent(client, admin_headers, name="Mover", layer="System")
    response = await client.patch(
        f"/api/agents/{created['id']}",
        json={"layer": "Meta Brain", "persona": "underwriter"},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["layer"] == "Meta Brain"
    assert response.json()["persona"] == "underwriter"
    page = await list_all(client, layer="Meta Brain")
    assert names(page) == ["Mover"]
    assert (await list_all(client, layer="System"))["total"] == 0


async def test_patch_requires_authentication(client: httpx.AsyncClient, db: Database) -> None:
    agent = await create_agent(db, name="Guarded")
    response = await client.patch(f"/api/agents/{agent.id}", json={"name": "Hijacked"})
    assert_problem(response, 401, slug="unauthorized")
    fetched = (await client.get(f"/api/agents/{agent.id}")).json()
    assert (fetched["name"], fetched["version"]) == ("Guarded", 1)


async def test_patch_unknown_agent_is_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/api/agents/424242", json={"name": "Nobody"}, headers=admin_headers
    )
    assert_problem(response, 404, "424242", slug="not-found")


@pytest.mark.parametrize("if_match", ['"1"', 'W/"1"', "1", ' "1" ', "*"])
async def test_patch_with_matching_if_match_succeeds(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, if_match: str
) -> None:
    agent = await create_agent(db, name="Conditional")
    response = await client.patch(
        f"/api/agents/{agent.id}",
        json={"description": "ok"},
        headers={**admin_headers, "If-Match": if_match},
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'


async def test_patch_with_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, name="Contended")
    etag = (await client.get(f"/api/agents/{agent.id}")).headers["etag"]
    first = await client.patch(
        f"/api/agents/{agent.id}",
        json={"description": "first writer"},
        headers={**admin_headers, "If-Match": etag},
    )
    assert first.status_code == 200
    second = await client.patch(
        f"/api/agents/{agent.id}",
        json={"description": "second writer"},
        headers={**admin_headers, "If-Match": etag},
    )
    assert_problem(second, 412, "version 2", "not 1", slug="precondition-failed")
    current = await client.get(f"/api/agents/{agent.id}")
    assert current.json()["description"] == "first writer"
    assert current.json()["version"] == 2
    versions = (await client.get(f"/api/agents/{agent.id}/versions")).json()
    assert versions["total"] == 1


@pytest.mark.parametrize("if_match", ['"abc"', "v1", '"-1"', '"1.0"'])
async def test_patch_with_malformed_if_match_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, if_match: str
) -> None:
    agent = await create_agent(db, name="Malformed Precondition")
    response = await client.patch(
        f"/api/agents/{agent.id}",
        json={"description": "x"},
        headers={**admin_headers, "If-Match": if_match},
    )
    assert_problem(response, 400, "If-Match", slug="bad-request")
    assert (await client.get(f"/api/agents/{agent.id}")).json()["version"] == 1


async def test_patch_empty_body_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, name="Untouched")
    response = await client.patch(f"/api/agents/{agent.id}", json={}, headers=admin_headers)
    assert_problem(response, 422, "no field", slug="validation")
    assert (await client.get(f"/api/agents/{agent.id}")).json()["version"] == 1


@pytest.mark.parametrize(
    ("wire", "python"),
    [
        ("name", "name"),
        ("layer", "layer"),
        ("persona", "persona"),
        ("config", "config"),
        ("maturityLevel", "maturity_level"),
        ("governanceStatus", "governance_status"),
        ("riskLevel", "risk_level"),
        ("canGeneratePersona", "can_generate_persona"),
        ("slaStatus", "sla_status"),
        ("sla_status", "sla_status"),
    ],
)
async def test_patch_null_for_non_nullable_field_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, wire: str, python: str
) -> None:
    agent = await create_agent(db, name="Not Null")
    response = await client.patch(
        f"/api/agents/{agent.id}", json={wire: None}, headers=admin_headers
    )
    assert_problem(response, 422, "cannot be null", slug="validation")
    # The error points at the field as the client spelled it, and never at the body.
    assert response.json()["errors"][0]["loc"] == ["body", wire]
    assert to_camel(python) == to_camel(wire)
    fetched = (await client.get(f"/api/agents/{agent.id}")).json()
    assert fetched["version"] == 1
    assert fetched["name"] == "Not Null"


@pytest.mark.parametrize(
    "field",
    [
        "specialization",
        "description",
        "businessFunction",
        "personaGenerationConfig",
        "dashboardTemplate",
    ],
)
async def test_patch_null_for_nullable_field_clears_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str], field: str
) -> None:
    created = await post_agent(
        client,
        admin_headers,
        name="Clearable",
        specialization="spec",
        description="desc",
        businessFunction="claims",
        personaGenerationConfig={"a": 1},
        dashboardTemplate={"b": 2},
    )
    assert created[field] is not None
    response = await client.patch(
        f"/api/agents/{created['id']}", json={field: None}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()[field] is None
    assert (await client.get(f"/api/agents/{created['id']}")).json()[field] is None


@pytest.mark.parametrize("field", ["bogus", "cpuUsage", "version", "id", "createdAt"])
async def test_patch_unknown_or_read_only_field_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, field: str
) -> None:
    agent = await create_agent(db, name="Strict")
    response = await client.patch(
        f"/api/agents/{agent.id}", json={"description": "x", field: 7}, headers=admin_headers
    )
    body = assert_problem(response, 422, slug="validation")
    assert ["body", field] in error_locs(body)
    fetched = (await client.get(f"/api/agents/{agent.id}")).json()
    assert fetched["version"] == 1
    assert fetched["description"] is None


@pytest.mark.parametrize("new_name", ["Taken Name", "taken name", "TAKEN NAME"])
async def test_patch_to_another_agents_name_is_409(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, new_name: str
) -> None:
    await create_agent(db, name="Taken Name")
    agent = await create_agent(db, name="Free Name")
    response = await client.patch(
        f"/api/agents/{agent.id}", json={"name": new_name}, headers=admin_headers
    )
    assert_problem(response, 409, "already exists", slug="conflict")
    fetched = (await client.get(f"/api/agents/{agent.id}")).json()
    assert (fetched["name"], fetched["version"]) == ("Free Name", 1)


async def test_patch_may_change_case_of_own_name(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, name="quiet agent")
    response = await client.patch(
        f"/api/agents/{agent.id}", json={"name": "Quiet Agent"}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Quiet Agent"


async def test_patch_unknown_persona_is_422_listing_registered_personas(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, name="Persona Switch")
    response = await client.patch(
        f"/api/agents/{agent.id}", json={"persona": "ghost"}, headers=admin_headers
    )
    body = assert_problem(response, 422, "registered personas: admin, underwriter")
    assert error_locs(body) == [["body", "persona"]]
    assert (await client.get(f"/api/agents/{agent.id}")).json()["persona"] == "admin"


async def test_patch_unknown_layer_is_422_naming_all_six_layers(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, name="Layer Switch", layer="Role")
    response = await client.patch(
        f"/api/agents/{agent.id}", json={"layer": "Cloud"}, headers=admin_headers
    )
    assert_problem(response, 422, *LAYERS)
    assert (await client.get(f"/api/agents/{agent.id}")).json()["layer"] == "Role"


# --- delete -----------------------------------------------------------------------------


async def test_delete_answers_204_and_agent_is_gone(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    keep = await create_agent(db, name="Keeper")
    doomed = await create_agent(db, name="Doomed")
    response = await client.delete(f"/api/agents/{doomed.id}", headers=admin_headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/api/agents/{doomed.id}"), 404)
    page = await list_all(client)
    assert [item["id"] for item in page["items"]] == [keep.id]
    assert page["total"] == 1
    again = await client.delete(f"/api/agents/{doomed.id}", headers=admin_headers)
    assert_problem(again, 404, slug="not-found")


async def test_delete_requires_authentication(client: httpx.AsyncClient, db: Database) -> None:
    agent = await create_agent(db, name="Survivor")
    response = await client.delete(f"/api/agents/{agent.id}")
    assert_problem(response, 401, slug="unauthorized")
    assert (await client.get(f"/api/agents/{agent.id}")).status_code == 200


async def test_delete_unknown_agent_is_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.delete("/api/agents/31337", headers=admin_headers)
    assert_problem(response, 404, "31337", slug="not-found")


async def test_deleted_name_can_be_reused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, name="Phoenix")
    assert (
        await client.delete(f"/api/agents/{agent.id}", headers=admin_headers)
    ).status_code == 204
    reborn = await post_agent(client, admin_headers, name="phoenix")
    assert reborn["version"] == 1
    versions = (await client.get(f"/api/agents/{reborn['id']}/versions")).json()
    assert versions["total"] == 0


# --- layers -----------------------------------------------------------------------------


async def test_layers_are_six_in_order_with_zero_counts(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/layers")
    assert response.status_code == 200
    body = response.json()
    assert [item["name"] for item in body["items"]] == [
        "Experience",
        "Meta Brain",
        "Role",
        "Process",
        "System",
        "Interface",
    ]
    assert [item["position"] for item in body["items"]] == [0, 1, 2, 3, 4, 5]
    assert all(item["agentCount"] == 0 for item in body["items"])
    assert all(item["description"] for item in body["items"])
    assert (body["total"], body["offset"]) == (6, 0)


async def test_layers_count_agents_per_layer(
    client: httpx.AsyncClient, admin_headers: dict[str, str], catalogue: dict[str, int]
) -> None:
    body = (await client.get("/api/layers")).json()
    counts = {item["name"]: item["agentCount"] for item in body["items"]}
    assert counts == {
        "Experience": 1,
        "Meta Brain": 1,
        "Role": 1,
        "Process": 1,
        "System": 2,
        "Interface": 1,
    }
    # moving and deleting agents changes the counts
    moved = catalogue["Mail Classifier"]
    patched = await client.patch(
        f"/api/agents/{moved}", json={"layer": "Role"}, headers=admin_headers
    )
    assert patched.status_code == 200
    deleted = await client.delete(
        f"/api/agents/{catalogue['Zeta Brand Agent']}", headers=admin_headers
    )
    assert deleted.status_code == 204
    body = (await client.get("/api/layers")).json()
    counts = {item["name"]: item["agentCount"] for item in body["items"]}
    assert counts == {
        "Experience": 0,
        "Meta Brain": 1,
        "Role": 2,
        "Process": 1,
        "System": 1,
        "Interface": 1,
    }
    assert sum(counts.values()) == (await list_all(client))["total"]
