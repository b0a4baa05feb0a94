"""Every failure is answered as problem+json (RFC 9457), and none of them as a 500."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from jarvis.auth.models import ApiToken
from jarvis.config.models import ConfigRegistry
from jarvis.db.engine import Database
from jarvis.db.session import DbSession
from jarvis.errors import describe_integrity_error, is_data_exception
from jarvis.main import create_app
from jarvis.personas.models import RolePersona
from jarvis.settings import Settings
from tests.factories import DEFAULT_PASSWORD, app_client, create_agent, create_personas, create_user

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
    session.add(RolePersona(key="admin", display_name="Second admin"))
    await session.flush()
    return {"status": "stored"}


@probe.post("/duplicate-persona-at-commit")
async def duplicate_persona_at_commit(session: DbSession) -> dict[str, str]:
    # No flush: the violation surfaces when the request's unit of work commits.
    session.add(RolePersona(key="admin", display_name="Second admin"))
    return {"status": "stored"}


@probe.post("/dangling-token")
async def dangling_token(session: DbSession) -> dict[str, str]:
    session.add(ApiToken(user_id=987654, name="x", token_hash="0" * 64, token_prefix="jv_"))
    await session.flush()
    return {"status": "stored"}


@pytest.fixture
async def probe_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, db, probe) as c:
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


# --- found by fuzzing (tests/test_api_fuzz.py) ------------------------------------------


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'"config": {"a": NaN}', "config.a"),
        (b'"config": {"a": {"b": Infinity}}', "config.a.b"),
        (b'"dashboardTemplate": {"a": [1, -Infinity]}', "dashboardTemplate.a[1]"),
        (b'"personaGenerationConfig": {"a": 1e400}', "personaGenerationConfig.a"),
    ],
)
async def test_non_finite_number_in_a_body_is_422_naming_where(
    client: httpx.AsyncClient, admin_headers: dict[str, str], raw: bytes, where: str
) -> None:
    # Python's JSON parser reads NaN, Infinity and 1e400 (as inf); PostgreSQL's jsonb
    # refused them with a 500 and SQLite stored them, to be read back as null.
    body = b'{"name": "Odd Numbers", "layer": "Role", ' + raw + b"}"

    response = await client.post(
        "/api/agents", content=body, headers={"Content-Type": "application/json", **admin_headers}
    )

    problem = assert_problem(response, 422, "validation")
    assert f"{where} must be a finite number" in str(problem["detail"])
    assert (await client.get("/api/agents")).json()["total"] == 0


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'"config": {"a": "x\\ud800y"}', "config.a"),
        (b'"dashboardTemplate": {"a": ["ok", "\\udfff"]}', "dashboardTemplate.a[1]"),
        (b'"config": {"\\ud800": 1}', "config.\\ud800"),
        (b'"description": "\\udc00"', "description"),
    ],
)
async def test_unpaired_surrogate_in_a_body_is_422_naming_where(
    client: httpx.AsyncClient, admin_headers: dict[str, str], raw: bytes, where: str
) -> None:
    # JSON may escape half of a surrogate pair; no UTF-8 text can hold it. In a free-form
    # field it reached the database: a 500 on both backends.
    body = b'{"name": "Half Pairs", "layer": "Role", ' + raw + b"}"

    response = await client.post(
        "/api/agents", content=body, headers={"Content-Type": "application/json", **admin_headers}
    )

    problem = assert_problem(response, 422, "validation")
    assert f"{where} must not contain an unpaired UTF-16 surrogate" in str(problem["detail"])
    assert (await client.get("/api/agents")).json()["total"] == 0


async def test_surrogate_pairs_are_ordinary_text(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = b'{"name": "Smile \\ud83d\\ude00", "layer": "Role", "config": {"a": "\\ud83d\\ude00"}}'

    response = await client.post(
        "/api/agents", content=body, headers={"Content-Type": "application/json", **admin_headers}
    )

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Smile \U0001f600"
    assert response.json()["config"] == {"a": "\U0001f600"}


async def test_unstorable_update_leaves_the_agent_unchanged(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db, config={"keep": 1})

    response = await client.patch(
        f"/api/agents/{agent.id}",
        content=b'{"config": {"k": {"nested": NaN}}}',
        headers={"Content-Type": "application/json", **admin_headers},
    )

    assert_problem(response, 422, "validation")
    stored = (await client.get(f"/api/agents/{agent.id}")).json()
    assert stored["config"] == {"keep": 1}
    assert stored["version"] == 1


@pytest.mark.parametrize("if_match", [b'"\xb2"', b"\xb9\xb2", b'W/"\xb3"'])
async def test_if_match_with_a_non_ascii_digit_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, if_match: bytes
) -> None:
    # Header bytes arrive as latin-1: 0xB2 is "²", which str.isdigit() accepts and int()
    # does not (it was a 500).
    agent = await create_agent(db)

    response = await client.patch(
        f"/api/agents/{agent.id}",
        json={"description": "changed"},
        headers={"If-Match": if_match, **admin_headers},  # type: ignore[dict-item]
    )

    assert_problem(response, 400, "bad-request")
    assert (await client.get(f"/api/agents/{agent.id}")).json()["version"] == 1


@pytest.mark.parametrize(
    "colour", ["rgba(1, 2, 3, 0.\u0665)", "rgb(\u0661, 2, 3)", "rgb(1,\u20032, 3)"]
)
async def test_css_colour_takes_only_ascii_digits_and_spaces(
    client: httpx.AsyncClient, admin_headers: dict[str, str], colour: str
) -> None:
    # \d and \s matched any Unicode digit or space, so "rgba(1, 2, 3, 0.٥)" was stored as a
    # colour no CSS parser reads.
    scheme = dict.fromkeys(("primary", "secondary", "accent", "background"), "#fff")
    body = {
        "key": "odd_digits",
        "displayName": "Odd",
        "colorScheme": {**scheme, "glassmorphism": colour},
    }

    response = await client.post("/api/personas/register", json=body, headers=admin_headers)

    problem = assert_problem(response, 422, "validation")
    assert "glassmorphism" in str(problem["detail"])
    keys = [p["key"] for p in (await client.get("/api/personas/all")).json()["items"]]
    assert "odd_digits" not in keys


async def test_update_schema_offers_null_only_where_null_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    # The schema offered null for every field and allowed {}; the app refuses both (422),
    # so a client following the schema, or a fuzzer, met errors it had no way to foresee.
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["AgentUpdate"]

    assert schema["minProperties"] == 1
    properties = schema["properties"]
    for name in ("name", "layer", "config", "maturityLevel", "canGeneratePersona", "slaStatus"):
        assert "anyOf" not in properties[name] and "default" not in properties[name], name
    assert properties["maturityLevel"]["minimum"] == 1
    for name in ("description", "specialization", "businessFunction", "dashboardTemplate"):
        assert {"type": "null"} in properties[name]["anyOf"], name


def data_error(orig: Exception) -> DBAPIError:
    return DBAPIError("UPDATE agents SET config=$1", ("{}",), orig)


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DataError("stmt", (), Exception("value too long")), True),
        (data_error(_DriverError("22P02")), True),  # invalid text representation
        (data_error(_DriverError("22P05")), True),  # untranslatable character
        (data_error(_DriverError("22003")), True),  # numeric value out of range
        (data_error(_DriverError("42P01")), False),  # undefined table: our bug, not the value
        (data_error(_DriverError(None)), False),
        (data_error(Exception("no sqlstate at all")), False),
    ],
)
def test_is_data_exception(error: DBAPIError, expected: bool) -> None:
    assert is_data_exception(error) is expected


storage_probe = APIRouter(prefix="/test-only")


@storage_probe.post("/unstorable-json")
async def unstorable_json(session: DbSession) -> dict[str, str]:
    # What a value past input validation meets: jsonb has no NaN. asyncpg's error reaches
    # SQLAlchemy as a plain DBAPIError (SQLSTATE 22P02), not as DataError.
    session.add(
        ConfigRegistry(
            key="nan.default",
            description="x",
            value_schema={},
            default_value={"a": math.nan},
            allowed_scopes=["global"],
            updated_by="test",
        )
    )
    await session.flush()
    return {"status": "stored"}


@storage_probe.post("/missing-table")
async def missing_table(session: DbSession) -> dict[str, str]:
    await session.execute(text("SELECT * FROM no_such_table"))
    return {"status": "read"}


@pytest.fixture
async def storage_probe_client(
    settings: Settings, db: Database
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=db)
    app.include_router(storage_probe)
    async with app.router.lifespan_context(app):
        # The 500 handler re-raises after answering; see the answer, not the exception.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_value_postgresql_refuses_is_a_422_problem(
    storage_probe_client: httpx.AsyncClient, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite stores NaN in a JSON column; only PostgreSQL refuses it")

    response = await storage_probe_client.post("/test-only/unstorable-json")

    body = assert_problem(response, 422, "unstorable-value")
    assert "INSERT" not in str(body["detail"])
    personas = (await storage_probe_client.get("/api/personas/all")).json()["items"]
    assert "nan_colours" not in [p["key"] for p in personas]


async def test_other_database_errors_stay_500_problems(
    storage_probe_client: httpx.AsyncClient,
) -> None:
    response = await storage_probe_client.post("/test-only/missing-table")

    body = assert_problem(response, 500, "internal")
    assert "no_such_table" not in str(body["detail"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"name": "Big", "layer": "Role", "config": {"n": 1' + b"0" * 5000 + b"}}", "digits"),
        (
            b'{"name": "Deep", "layer": "Role", "config": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            "nested too deeply",
        ),
        (b'{"name": "caf\xe9", "layer": "Role"}', "not UTF-8"),
    ],
)
async def test_body_json_cannot_read_is_a_malformed_json_problem(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: bytes, reason: str
) -> None:
    # FastAPI answers these with a bare 400 "There was an error parsing the body".
    response = await client.post(
        "/api/agents", content=body, headers={"Content-Type": "application/json", **admin_headers}
    )

    problem = assert_problem(response, 400, "malformed-json")
    assert reason in str(problem["detail"])
    assert (await client.get("/api/agents")).json()["total"] == 0


async def test_openapi_documents_errors_as_problem_json(client) -> None:
    document = (await client.get("/openapi.json")).json()
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            default = operation["responses"]["default"]["content"]
            assert "application/problem+json" in default, (method, path)
            if "422" in operation["responses"]:
                assert "application/problem+json" in operation["responses"]["422"]["content"]
