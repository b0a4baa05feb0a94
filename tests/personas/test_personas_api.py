"""The persona registry over HTTP: ``GET /api/personas/all``, ``POST /api/personas/register``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.personas.models import RolePersona
from tests.factories import create_personas
from tests.problems import assert_problem

SCHEME = {
    "primary": "#b45309",
    "secondary": "#78350f",
    "accent": "#fbbf24",
    "background": "#1c1917",
    "glassmorphism": "rgba(28, 25, 23, 0.7)",
}


def claims_manager(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": "claims_manager",
        "displayName": "Claims Manager",
        "personName": "Maria Lopez",
        "description": "Runs the claims desk.",
        "colorScheme": dict(SCHEME),
    }
    body.update(overrides)
    return body


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in body["errors"]]


# The personas the admin_headers fixture registers (through tests.factories.create_user).
SET_UP_KEYS = {"admin", "underwriter"}


async def stored_keys(db: Database) -> set[str]:
    async with unit_of_work(db, write=False) as session:
        return set((await session.scalars(select(RolePersona.key))).all())


async def persona_count(db: Database) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(RolePersona)) or 0)


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    return await client.post("/api/personas/register", json=body, headers=headers)


# --- list -------------------------------------------------------------------------------


async def test_all_is_empty_on_a_fresh_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/personas/all")
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 100, "offset": 0}


async def test_all_lists_personas_by_key_in_camel_case(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_personas(db)
    body = (await client.get("/api/personas/all")).json()
    assert body["total"] == 2
    assert [p["key"] for p in body["items"]] == ["admin", "underwriter"]
    underwriter = body["items"][1]
    assert underwriter["displayName"] == "Commercial Property Underwriter"
    assert underwriter["personName"] == "Rachel Thompson"
    assert underwriter["colorScheme"]["primary"] == "#059669"
    assert underwriter["colorScheme"]["glassmorphism"] == "rgba(2, 44, 34, 0.7)"
    assert underwriter["isDynamic"] is False
    assert underwriter["createdAt"]
    assert isinstance(underwriter["id"], int)
    assert not {"display_name", "person_name", "color_scheme", "is_dynamic"} & underwriter.keys()


async def test_all_paginates(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for key in ("zeta_role", "beta_role"):
        assert (await register(client, admin_headers, claims_manager(key=key))).status_code == 201
    expected = ["admin", "beta_role", "underwriter", "zeta_role"]
    walk: list[str] = []
    for offset in range(0, 4, 3):
        page = (await client.get("/api/personas/all", params={"limit": 3, "offset": offset})).json()
        assert (page["total"], page["limit"], page["offset"]) == (4, 3, offset)
        walk.extend(p["key"] for p in page["items"])
    assert walk == expected
    past = (await client.get("/api/personas/all", params={"offset": 10})).json()
    assert (past["items"], past["total"]) == ([], 4)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
    ],
)
async def test_all_rejects_invalid_paging(
    client: httpx.AsyncClient, params: dict[str, int], loc: str
) -> None:
    body = assert_problem(await client.get("/api/personas/all", params=params), 422)
    assert ["query", loc] in error_locs(body)


# --- register ---------------------------------------------------------------------------


async def test_register_answers_201_and_persona_is_listed(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await register(client, admin_headers, claims_manager())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"] == "claims_manager"
    assert body["displayName"] == "Claims Manager"
    assert body["personName"] == "Maria Lopez"
    assert body["description"] == "Runs the claims desk."
    assert body["colorScheme"] == SCHEME
    assert body["isDynamic"] is False

    listed = (await client.get("/api/personas/all")).json()
    assert "claims_manager" in [p["key"] for p in listed["items"]]
    assert next(p for p in listed["items"] if p["key"] == "claims_manager") == body


async def test_register_accepts_snake_case(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await register(
        client,
        admin_headers,
        {
            "key": "broker_relations",
            "display_name": "Broker Relations",
            "person_name": None,
            "color_scheme": dict(SCHEME),
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["displayName"] == "Broker Relations"
    assert response.json()["personName"] is None
    assert response.json()["description"] is None


async def test_registered_persona_can_own_agents(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    missing = await client.post(
        "/api/agents",
        json={"name": "Claims Desk", "layer": "Role", "persona": "claims_manager"},
        headers=admin_headers,
    )
    assert_problem(missing, 422, "registered personas: admin, underwriter")

    assert (await register(client, admin_headers, claims_manager())).status_code == 201
    created = await client.post(
        "/api/agents",
        json={"name": "Claims Desk", "layer": "Role", "persona": "claims_manager"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["persona"] == "claims_manager"
    listed = (await client.get("/api/agents", params={"persona": "claims_manager"})).json()
    assert [a["name"] for a in listed["items"]] == ["Claims Desk"]

    ghost = await client.post(
        "/api/agents",
        json={"name": "Ghost Desk", "layer": "Role", "persona": "ghost"},
        headers=admin_headers,
    )
    assert_problem(ghost, 422, "registered personas: admin, claims_manager, underwriter")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer unknown"}, {"Authorization": "Token abc"}],
    ids=["no-credential", "unknown-token", "wrong-scheme"],
)
async def test_register_requires_authentication(
    client: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    response = await register(client, headers, claims_manager())
    assert_problem(response, 401, slug="unauthorized")
    assert await persona_count(db) == 0


@pytest.mark.parametrize("key", ["underwriter", "  underwriter  ", "admin"])
async def test_register_duplicate_key_is_409(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, key: str
) -> None:
    before = await persona_count(db)
    response = await register(client, admin_headers, claims_manager(key=key))
    assert_problem(response, 409, key.strip(), slug="conflict")
    assert await persona_count(db) == before
    listed = (await client.get("/api/personas/all")).json()["items"]
    underwriter = next(p for p in listed if p["key"] == "underwriter")
    assert underwriter["displayName"] == "Commercial Property Underwriter"


@pytest.mark.parametrize(
    "key", ["Underwriter", "claims manager", "claims-manager", "1st_line", "a", "x" * 65, ""]
)
async def test_register_rejects_malformed_keys(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, key: str
) -> None:
    response = await register(client, admin_headers, claims_manager(key=key))
    body = assert_problem(response, 422, slug="validation")
    assert ["body", "key"] in error_locs(body)
    assert await stored_keys(db) == SET_UP_KEYS


@pytest.mark.parametrize(
    "colour",
    [
        "#abc",
        "#ABCDEF",
        "#aabbcc80",
        "rgb(1, 2, 3)",
        "rgb(255,255,255)",
        "rgba(2, 44, 34, 0.7)",
        "rgba(0,0,0,1)",
        "rgba(0, 0, 0, .5)",
        "rgba(0, 0, 0, 0)",
    ],
)
async def test_register_accepts_css_colours(
    client: httpx.AsyncClient, admin_headers: dict[str, str], colour: str
) -> None:
    scheme = {**SCHEME, "accent": colour}
    response = await register(client, admin_headers, claims_manager(colorScheme=scheme))
    assert response.status_code == 201, response.text
    assert response.json()["colorScheme"]["accent"] == colour


@pytest.mark.parametrize(
    "colour",
    [
        "blue",
        "",
        "#12",
        "#12345",
        "#ggg",
        "123456",
        "rgb(1, 2)",
        "rgba(1, 2, 3, 2)",
        "rgb(1, 2, 3",
        "#fff; background: url(https://evil.example/x)",
        "#ffffff\n",
        "#fff\n}body{display:none",
        "url(javascript:alert(1))",
        "var(--primary)",
    ],
)
@pytest.mark.parametrize("member", ["primary", "glassmorphism"])
async def test_register_rejects_non_colours(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    colour: str,
    member: str,
) -> None:
    scheme = {**SCHEME, member: colour}
    response = await register(client, admin_headers, claims_manager(colorScheme=scheme))
    body = assert_problem(response, 422, "CSS colour", slug="validation")
    assert error_locs(body) == [["body", "colorScheme", member]]
    assert await stored_keys(db) == SET_UP_KEYS


async def test_register_colour_error_uses_the_spelling_sent(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = claims_manager()
    body["color_scheme"] = {**body.pop("colorScheme"), "primary": "navy"}
    response = await register(client, admin_headers, body)
    problem = assert_problem(response, 422)
    assert error_locs(problem) == [["body", "color_scheme", "primary"]]


@pytest.mark.parametrize(
    "member", ["primary", "secondary", "accent", "background", "glassmorphism"]
)
async def test_register_requires_every_colour(
    client: httpx.AsyncClient, admin_headers: dict[str, str], member: str
) -> None:
    scheme = {k: v for k, v in SCHEME.items() if k != member}
    response = await register(client, admin_headers, claims_manager(colorScheme=scheme))
    body = assert_problem(response, 422)
    assert ["body", "colorScheme", member] in error_locs(body)


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"displayName": ""}, ["body", "displayName"]),
        ({"displayName": "   "}, ["body", "displayName"]),
        ({"displayName": "x" * 201}, ["body", "displayName"]),
        ({"personName": "x" * 201}, ["body", "personName"]),
        ({"colorScheme": "#ffffff"}, ["body", "colorScheme"]),
        ({"isDynamic": True}, ["body", "isDynamic"]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
async def test_register_rejects_invalid_or_unknown_fields(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    change: dict[str, Any],
    loc: list[str],
) -> None:
    response = await register(client, admin_headers, claims_manager(**change))
    body = assert_problem(response, 422, slug="validation")
    assert loc in error_locs(body)
    assert await stored_keys(db) == SET_UP_KEYS


@pytest.mark.parametrize("missing", ["key", "displayName", "colorScheme"])
async def test_register_requires_key_display_name_and_colours(
    client: httpx.AsyncClient, admin_headers: dict[str, str], missing: str
) -> None:
    body = claims_manager()
    del body[missing]
    problem = assert_problem(await register(client, admin_headers, body), 422)
    assert ["body", missing] in error_locs(problem)


async def test_register_malformed_json_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    response = await client.post(
        "/api/personas/register",
        content=b'{"key": "claims_manager", "displayName": ',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "not valid JSON", slug="malformed-json")
    assert await stored_keys(db) == SET_UP_KEYS
