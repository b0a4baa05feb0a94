"""Every failure is answered as problem+json (RFC 9457), and none of them as a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy.exc import IntegrityError

from jarvis.auth.models import ApiToken
from jarvis.db.engine import Database
from jarvis.db.session import DbSession
from jarvis.errors import describe_integrity_error
from jarvis.main import create_app
from jarvis.personas.models import RolePersona
from jarvis.settings import Settings
from tests.factories import DEFAULT_PASSWORD, create_personas, create_user

PROBLEM = "application/problem+json"
LIMIT = 1024 * 1024


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"urn:jarvis:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def chunks(payload: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """``payload`` as a streamed body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


# --- malformed and oversized bodies -----------------------------------------------------


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/login",
        content=b'{"email": "a@b.c", "password": ',
        headers={"Content-Type": "application/json"},
    )

    body = assert_problem(response, 400, "malformed-json")
    assert body["title"] == "Malformed JSON"
    assert body["instance"] == "/api/login"


async def test_malformed_json_on_a_guarded_route_is_still_a_problem(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/agents",
        content=b"{not json}",
        headers={"Content-Type": "application/json", **admin_headers},
    )

    assert_problem(response, 400, "malformed-json")


async def test_body_over_the_limit_with_content_length_is_413(client: httpx.AsyncClient) -> None:
    payload = b" " * (LIMIT + 1)

    response = await client.post(
        "/api/login", content=payload, headers={"Content-Type": "application/json"}
    )

    assert response.request.headers["content-length"] == str(LIMIT + 1)
    body = assert_problem(response, 413, "payload-too-large")
    assert str(LIMIT) in str(body["detail"])


async def test_body_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    # Exactly the limit passes the size check and reaches JSON parsing.
    payload = b" " * (LIMIT - 2) + b"{}"

    response = await client.post(
        "/api/login", content=payload, headers={"Content-Type": "application/json"}
    )

    assert len(payload) == LIMIT
    assert_problem(response, 422, "validation")


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    payload = b" " * (LIMIT + 10)

    response = await client.post(
        "/api/login", content=chunks(payload), headers={"Content-Type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, "payload-too-large")


async def test_chunked_body_over_the_limit_is_413_on_a_guarded_route(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    payload = json.dumps({"name": "Big", "layer": "Role", "description": "x" * LIMIT}).encode()

    response = await client.post(
        "/api/agents",
        content=chunks(payload),
        headers={"Content-Type": "application/json", **admin_headers},
    )

    assert_problem(response, 413, "payload-too-large")
    listed = await client.get("/api/agents")
    assert listed.json()["total"] == 0


async def test_chunked_body_under_the_limit_is_replayed_to_the_app(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    payload = json.dumps({"email": user.email, "password": DEFAULT_PASSWORD}).encode()

    response = await client.post(
        "/api/login",
        content=chunks(payload, size=7),
        headers={"Content-Type": "application/json"},
    )

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email


async def test_chunked_mutation_under_the_limit_is_stored(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    notes = "n" * 50_000
    payload = json.dumps({"name": "Streamed", "layer": "Role", "config": {"notes": notes}})

    response = await client.post(
        "/api/agents",
        content=chunks(payload.encode(), size=1000),
        headers={"Content-Type": "application/json", **admin_headers},
    )

    assert response.status_code == 201, response.text
    assert response.json()["config"] == {"notes": notes}


# --- routing errors ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/no-such-thing", "/nowhere", "/api/agents/1/nope"])
async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    body = assert_problem(response, 404, "not-found")
    assert path in str(body["detail"])


async def test_missing_record_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/agents/424242")

    body = assert_problem(response, 404, "not-found")
    assert "424242" in str(body["detail"])


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/api/login", "POST"), ("PUT", "/api/agents", "GET"), ("DELETE", "/api/user", "GET")],
)
async def test_wrong_method_is_a_405_problem(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)

    body = assert_problem(response, 405, "method-not-allowed")
    assert method in str(body["detail"])
    assert allowed in response.headers["allow"]


# --- validation -------------------------------------------------------------------------


async def test_validation_failure_lists_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/login", json={"email": "not-an-email", "unexpected": True})

    body = assert_problem(response, 422, "validation")
    errors = body["errors"]
    assert isinstance(errors, list) and errors
    for error in errors:
        assert set(error) == {"loc", "msg"}
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str) and error["msg"]
    locs = [error["loc"] for error in errors]
    assert ["body", "email"] in locs
    assert ["body", "password"] in locs
    assert ["body", "unexpected"] in locs
    assert "3 invalid fields" in str(body["detail"])


async def test_validation_failure_in_query_and_path(client: httpx.AsyncClient) -> None:
    query = await client.get("/api/agents", params={"limit": 0})
    path = await client.get("/api/agents/zero")

    query_errors = assert_problem(query, 422, "validation")["errors"]
    assert [error["loc"] for error in query_errors] == [["query", "limit"]]
    assert path.status_code == 422
    assert path.json()["errors"][0]["loc"] == ["path", "agent_id"]


async def test_service_validation_uses_the_same_shape(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/agents",
        json={"name": "Orphan", "layer": "Role", "persona": "nobody_here"},
        headers=admin_headers,
    )

    body = assert_problem(response, 422, "validation")
    (error,) = body["errors"]
    assert error["loc"] == ["body", "persona"]
    assert "nobody_here" in error["msg"]


# --- integrity errors -------------------------------------------------------------------


def integrity_error(message: str) -> IntegrityError:
    return IntegrityError(
        "INSERT INTO secret_table (password) VALUES (?)", ("hunter2",), Exception(message)
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            'duplicate key value violates unique constraint "uq_agents_name"\n'
            "DETAIL:  Key (name)=(Alpha) already exists.",
            "The change conflicts with existing data (constraint uq_agents_name)",
        ),
        (
            'insert or update on table "api_tokens" violates foreign key constraint '
            '"fk_api_tokens_user_id_users"',
            "The change conflicts with existing data (constraint fk_api_tokens_user_id_users)",
        ),
        (
            "UNIQUE constraint failed: agents.name",
            "A record with the same agents.name already exists",
        ),
        (
            "UNIQUE constraint failed: api_tokens.user_id, api_tokens.name",
            "A record with the same api_tokens.user_id, api_tokens.name already exists",
        ),
        (
            "FOREIGN KEY constraint failed",
            "The change refers to a record that does not exist, or one still referenced",
        ),
        ("NOT NULL constraint failed: agents.layer", "The change conflicts with existing data"),
    ],
)
def test_describe_integrity_error(message: str, expected: str) -> None:
    description = describe_integrity_error(integrity_error(message))

    assert description == expected
    assert "secret_table" not in description
    assert "hunter2" not in description
    assert "INSERT" not in description


probe = APIRouter(prefix="/test-only")


@probe.post("/duplicate-persona")
async def duplicate_persona(session: DbSession) -> dict[str, str]:
    session.add(RolePersona(key="admin", display_name="Second admin", color_scheme={}))
    await session.flush()
    return {"status": "stored"}


@probe.post("/duplicate-persona-at-commit")
async def duplicate_persona_at_commit(session: DbSession) -> dict[str, str]:
    # No flush: the violation surfaces when the request's unit of work commits.
    session.add(RolePersona(key="admin", display_name="Second admin", color_scheme={}))
    return {"status": "stored"}


@probe.post("/dangling-token")
async def dangling_token(session: DbSession) -> dict[str, str]:
    session.add(ApiToken(user_id=987654, name="x", token_hash="0" * 64, token_prefix="jv_"))
    await session.flush()
    return {"status": "stored"}


@pytest.fixture
async def probe_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=db)
    app.include_router(probe)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.mark.parametrize(
    "path", ["/test-only/duplicate-persona", "/test-only/duplicate-persona-at-commit"]
)
async def test_unique_violation_reaching_the_handler_is_a_409_problem(
    probe_client: httpx.AsyncClient, db: Database, path: str
) -> None:
    await create_personas(db)

    response = await probe_client.post(path)

    body = assert_problem(response, 409, "conflict")
    # SQLite names the columns (role_personas.key), PostgreSQL the constraint.
    assert "role_personas" in str(body["detail"])
    assert "INSERT" not in str(body["detail"])
    personas = await probe_client.get("/api/personas/all")
    assert [p["key"] for p in personas.json()["items"]].count("admin") == 1


async def test_foreign_key_violation_reaching_the_handler_is_a_409_problem(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.post("/test-only/dangling-token")

    body = assert_problem(response, 409, "conflict")
    assert "987654" not in str(body["detail"])


async def test_concurrent_duplicates_give_one_201_and_one_409(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # Both requests may pass the service's "name free?" check before either commits; the
    # loser then hits the unique constraint. Either way the answer is a 409, never a 500.
    async def create() -> httpx.Response:
        return await client.post(
            "/api/agents", json={"name": "Twin", "layer": "Role"}, headers=admin_headers
        )

    responses = await asyncio.gather(*(create() for _ in range(4)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "conflict")
    assert (await client.get("/api/agents")).json()["total"] == 1
