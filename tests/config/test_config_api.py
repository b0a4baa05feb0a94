"""The configuration API over HTTP: registry, settings, history, approvals, bad input.

Everything goes through ``/api/config`` with the ``client`` fixture, on both backends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from tests.config.api import API, set_setting
from tests.factories import DEFAULT_PASSWORD, create_agent, create_user
from tests.problems import assert_problem

MASK = "********"
SECRET = "s3cr3t-value-do-not-leak"
BUILTIN = {
    "persona.colors",
    "auth.password_min_length",
    "auth.lockout_threshold",
    "auth.lockout_minutes",
    "auth.default_permissions",
    "auth.sso_default_persona",
    "auth.sso_allowed_domains",
    "agent.timeout_seconds",
    "agent.max_retries",
    "agent.retry_backoff_seconds",
    "execution.max_concurrency",
    "ratelimit.login_attempts_per_minute",
    "ratelimit.api_requests_per_minute",
    "ratelimit.executions_per_minute",
    "auth.session_days",
    "llm.provider",
    "llm.model",
    "sla.success_rate_min",
    "sla.response_time_ms",
    "execution.max_parallel_agents",
    "execution.failure_policy",
    "http.allowed_hosts",
    "llm.base_url",
    "llm.timeout_seconds",
}
SCHEME = {
    "primary": "#b45309",
    "secondary": "#78350f",
    "accent": "#fbbf24",
    "background": "#1c1917",
    "glassmorphism": "rgba(28, 25, 23, 0.7)",
}
UNDERWRITER_SCHEME = {  # tests.factories.UNDERWRITER
    "primary": "#059669",
    "secondary": "#065f46",
    "accent": "#34d399",
    "background": "#022c22",
    "glassmorphism": "rgba(2, 44, 34, 0.7)",
}


# --- helpers ------------------------------------------------------------------------------


async def read_setting(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{API}/setting/{key}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def history(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{API}/history/{key}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def new_key(key: str = "test.limit", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "description": "A limit used by the tests.",
        "schema": {"type": "integer", "minimum": 0},
        "default": 5,
        "scopes": ["global", "persona"],
    }
    body.update(overrides)
    return body


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any], expect: int = 201
) -> httpx.Response:
    response = await client.post(f"{API}/registry", json=body, headers=headers)
    assert response.status_code == expect, response.text
    return response


def iso(moment: datetime) -> str:
    return moment.isoformat()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    return [error["loc"] for error in body.get("errors", [])]


# --- registry: list and read --------------------------------------------------------------


async def test_registry_lists_the_builtin_keys_in_key_order(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get(f"{API}/registry", headers=admin_headers)

    assert response.status_code == 200, response.text
    page = response.json()
    keys = [item["key"] for item in page["items"]]
    assert BUILTIN <= set(keys)
    assert keys == sorted(keys)
    assert page["total"] == len(keys)
    assert page["limit"] == 100 and page["offset"] == 0
    timeout = next(i for i in page["items"] if i["key"] == "agent.timeout_seconds")
    assert timeout["schema"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 3600}
    assert timeout["default"] == 30
    assert timeout["scopes"] == ["global", "persona", "agent", "workflow"]
    assert timeout["secret"] is False
    assert timeout["requiresApproval"] is False
    assert timeout["revision"] == 1
    provider = next(i for i in page["items"] if i["key"] == "llm.provider")
    assert provider["requiresApproval"] is True


async def test_registry_pages_without_overlap(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    pages = []
    for offset in range(0, len(BUILTIN), 5):
        response = await client.get(
            f"{API}/registry", params={"limit": 5, "offset": offset}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        pages.append(response.json())

    seen = [item["key"] for page in pages for item in page["items"]]
    assert len(pages[0]["items"]) == 5 and len(pages[1]["items"]) == 5
    assert len(seen) == len(set(seen)) == pages[0]["total"]
    assert {page["total"] for page in pages} == {len(BUILTIN)}
    assert pages[1]["limit"] == 5 and pages[1]["offset"] == 5


async def test_registry_search_matches_key_and_description(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    by_key = await client.get(f"{API}/registry", params={"q": "SESSION"}, headers=admin_headers)
    by_text = await client.get(
        f"{API}/registry", params={"q": "colour scheme"}, headers=admin_headers
    )
    prefix = await client.get(f"{API}/registry", params={"q": "ratelimit."}, headers=admin_headers)
    nothing = await client.get(f"{API}/registry", params={"q": "zzz-none"}, headers=admin_headers)

    assert [i["key"] for i in by_key.json()["items"]] == ["auth.session_days"]
    assert [i["key"] for i in by_text.json()["items"]] == ["persona.colors"]
    assert {i["key"] for i in prefix.json()["items"]} == {
        "ratelimit.login_attempts_per_minute",
        "ratelimit.api_requests_per_minute",
        "ratelimit.executions_per_minute",
    }
    assert prefix.json()["total"] == 3
    assert nothing.json() == {"items": [], "total": 0, "limit": 100, "offset": 0}


async def test_registry_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{API}/registry"), 401)
    assert_problem(await client.get(f"{API}/registry/auth.session_days"), 401)
    assert_problem(await client.get(f"{API}/setting/auth.session_days"), 401)


async def test_registry_key_answers_with_its_revision_as_etag(
    client: httpx.AsyncClient, underwriter_headers: dict[str, str]
) -> None:
    response = await client.get(f"{API}/registry/auth.session_days", headers=underwriter_headers)

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"1"'
    body = response.json()
    assert body["key"] == "auth.session_days"
    assert body["default"] == 30
    assert body["scopes"] == ["global", "persona"]
    assert body["schema"]["type"] == "integer"
    assert body["updatedBy"]
    assert "updatedAt" in body


async def test_registry_key_unknown_is_404_naming_close_keys(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get(f"{API}/registry/auth.session_day", headers=admin_headers)

    assert_problem(response, 404, "auth.session_day", "'auth.session_days'", slug="not-found")


# --- registry: register -------------------------------------------------------------------


async def test_register_key_201_then_listed_and_readable(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    response = await register(client, admin_headers, new_key(requiresApproval=False))

    body = response.json()
    assert body["key"] == "test.limit"
    assert body["schema"] == {"type": "integer", "minimum": 0}
    assert body["default"] == 5
    assert body["scopes"] == ["global", "persona"]
    assert body["revision"] == 1
    assert body["secret"] is False
    listed = await client.get(f"{API}/registry", params={"q": "test."}, headers=admin_headers)
    assert [i["key"] for i in listed.json()["items"]] == ["test.limit"]
    setting = await read_setting(client, admin_headers, "test.limit")
    assert (setting["value"], setting["source"]) == (5, "default")
    log = await history(client, admin_headers, "test.limit")
    assert [e["action"] for e in log["items"]] == ["registry.create"]


async def test_register_scopes_are_stored_in_canonical_order(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await register(
        client, admin_headers, new_key(scopes=["workflow", "global", "agent"])
    )

    assert response.json()["scopes"] == ["global", "agent", "workflow"]


async def test_register_duplicate_key_is_409(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())

    again = await register(client, admin_headers, new_key(default=7), expect=409)
    builtin = await register(client, admin_headers, new_key("auth.session_days"), expect=409)

    assert_problem(again, 409, "test.limit", slug="conflict")
    assert_problem(builtin, 409, "auth.session_days")
    kept = await client.get(f"{API}/registry/test.limit", headers=admin_headers)
    assert kept.json()["default"] == 5


async def test_register_invalid_json_schema_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await register(
        client, admin_headers, new_key(schema={"type": "no-such-type"}), expect=422
    )

    body = assert_problem(response, 422, "not a valid JSON Schema", slug="validation")
    assert body["errors"]
    missing = await client.get(f"{API}/registry/test.limit", headers=admin_headers)
    assert_problem(missing, 404)


async def test_register_default_failing_its_schema_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await register(client, admin_headers, new_key(default=-1), expect=422)

    body = assert_problem(response, 422, "test.limit", slug="validation")
    assert body["errors"][0]["rule"] == "minimum"
    assert body["errors"][0]["loc"][:2] == ["body", "default"]
    assert_problem(await client.get(f"{API}/registry/test.limit", headers=admin_headers), 404)


async def test_register_without_default_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = new_key()
    del body["default"]

    response = await register(client, admin_headers, body, expect=422)

    assert_problem(response, 422, "default is required")


async def test_register_needs_config_write(
    client: httpx.AsyncClient, underwriter_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    forbidden = await register(client, underwriter_headers, new_key(), expect=403)
    anonymous = await register(client, {}, new_key(), expect=401)

    assert_problem(forbidden, 403, "config:write", slug="forbidden")
    assert_problem(anonymous, 401, slug="unauthorized")
    assert_problem(await client.get(f"{API}/registry/test.limit", headers=admin_headers), 404)


async def test_registry_masks_secret_defaults(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await register(
        client,
        admin_headers,
        new_key("integrations.api_key", schema={"type": "string"}, default=SECRET, secret=True),
    )

    one = await client.get(f"{API}/registry/integrations.api_key", headers=admin_headers)
    listed = await client.get(f"{API}/registry", headers=admin_headers)
    setting = await client.get(f"{API}/setting/integrations.api_key", headers=admin_headers)
    log = await client.get(f"{API}/history/integrations.api_key", headers=admin_headers)

    assert created.json()["default"] == MASK
    assert created.json()["secret"] is True
    assert one.json()["default"] == MASK
    item = next(i for i in listed.json()["items"] if i["key"] == "integrations.api_key")
    assert item["default"] == MASK
    assert setting.json()["value"] == MASK
    assert setting.json()["secret"] is True
    for response in (created, one, listed, setting, log):
        assert response.status_code == 200 or response.status_code == 201
        assert SECRET not in response.text


class _SchemaServer(BaseHTTPRequestHandler):
    """Serves a valid JSON Schema and records every request it gets."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        body = b'{"type": "integer"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        return


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that would answer a ``$ref`` fetch; yields (url, requests)."""
    _SchemaServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SchemaServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json", _SchemaServer.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_register_schema_with_a_remote_ref_fetches_nothing(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    schema_server: tuple[str, list[str]],
) -> None:
    """validation.compile_schema promises that ``$ref`` never goes to the network."""
    url, fetched = schema_server

    response = await client.post(
        f"{API}/registry", json=new_key(schema={"$ref": url}), headers=admin_headers
    )

    assert fetched == []  # the server must not make requests on a client's behalf
    assert_problem(response, 422, "$ref")


async def test_register_schema_with_a_dangling_ref_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{API}/registry",
        json=new_key(schema={"$ref": "#/$defs/missing"}),
        headers=admin_headers,
    )

    assert_problem(response, 422, "$defs/missing")


async def test_a_dangling_ref_never_causes_a_server_error(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The default passes the first branch, so only a later value reaches the bad ``$ref``:
    refuse the schema at registration, or at least the value with a 422."""
    schema = {"anyOf": [{"type": "integer"}, {"$ref": "#/$defs/missing"}]}

    registered = await client.post(
        f"{API}/registry", json=new_key(schema=schema), headers=admin_headers
    )

    if registered.status_code == 201:
        value = await client.post(
            f"{API}/setting", json={"key": "test.limit", "value": "x"}, headers=admin_headers
        )
        assert_problem(value, 422, "$defs/missing")
    else:
        assert_problem(registered, 422, "$defs/missing")


async def test_invalid_schema_error_names_the_field_as_sent(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The body field is ``schema``; the error's loc must say so (not ``valueSchema``)."""
    created = await register(
        client, admin_headers, new_key(schema={"type": "no-such-type"}), expect=422
    )
    await register(client, admin_headers, new_key())
    updated = await client.put(
        f"{API}/registry/test.limit", json={"schema": {"type": 7}}, headers=admin_headers
    )

    assert error_locs(assert_problem(created, 422)) == [["body", "schema"]]
    assert error_locs(assert_problem(updated, 422)) == [["body", "schema"]]


async def test_registry_search_treats_wildcards_as_text(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """``q`` is a substring search: ``%`` and ``_`` must not act as LIKE wildcards."""
    everything = (await client.get(f"{API}/registry", headers=admin_headers)).json()["items"]

    for q in ("%", "t_m", "_per_"):
        response = await client.get(f"{API}/registry", params={"q": q}, headers=admin_headers)
        expected = {
            i["key"] for i in everything if q in i["key"].lower() or q in i["description"].lower()
        }
        assert {i["key"] for i in response.json()["items"]} == expected, q


# --- registry: update ---------------------------------------------------------------------


async def test_update_key_with_if_match_bumps_the_revision(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())

    response = await client.put(
        f"{API}/registry/test.limit",
        json={"description": "A better description.", "default": 6},
        headers={**admin_headers, "If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert body["revision"] == 2
    assert body["description"] == "A better description."
    assert body["default"] == 6
    assert body["schema"] == {"type": "integer", "minimum": 0}
    again = await client.get(f"{API}/registry/test.limit", headers=admin_headers)
    assert again.headers["etag"] == '"2"'
    assert (await read_setting(client, admin_headers, "test.limit"))["value"] == 6
    log = await history(client, admin_headers, "test.limit")
    update = log["items"][0]
    assert update["action"] == "registry.update"
    assert update["oldValue"]["default"] == 5
    assert update["newValue"]["default"] == 6


async def test_update_key_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())
    first = await client.put(
        f"{API}/registry/test.limit",
        json={"default": 6},
        headers={**admin_headers, "If-Match": '"1"'},
    )
    assert first.status_code == 200, first.text

    stale = await client.put(
        f"{API}/registry/test.limit",
        json={"default": 7},
        headers={**admin_headers, "If-Match": '"1"'},
    )
    weak = await client.put(
        f"{API}/registry/test.limit",
        json={"default": 8},
        headers={**admin_headers, "If-Match": 'W/"2"'},
    )
    garbage = await client.put(
        f"{API}/registry/test.limit",
        json={"default": 9},
        headers={**admin_headers, "If-Match": "yesterday"},
    )

    assert_problem(stale, 412, "revision 2", slug="precondition-failed")
    assert weak.status_code == 200, weak.text
    assert weak.json()["revision"] == 3
    assert_problem(garbage, 400, "If-Match")
    now = await client.get(f"{API}/registry/test.limit", headers=admin_headers)
    assert now.json()["default"] == 8
    assert now.headers["etag"] == '"3"'


async def test_update_key_without_changes_keeps_the_revision(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())

    response = await client.put(
        f"{API}/registry/test.limit", json={"default": 5}, headers=admin_headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 1
    log = await history(client, admin_headers, "test.limit")
    assert [e["action"] for e in log["items"]] == ["registry.create"]


async def test_update_key_schema_that_breaks_stored_values_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())
    await set_setting(client, admin_headers, "test.limit", 50)
    await set_setting(client, admin_headers, "test.limit", 60, scope={"persona": "underwriter"})

    response = await client.put(
        f"{API}/registry/test.limit",
        json={"schema": {"type": "integer", "minimum": 0, "maximum": 40}},
        headers={**admin_headers, "If-Match": '"1"'},
    )

    body = assert_problem(response, 422, "rejects 2 stored value(s)", slug="validation")
    assert len(body["errors"]) == 2
    assert all(e["rule"] == "maximum" for e in body["errors"])
    assert any("persona=underwriter" in e["msg"] for e in body["errors"])
    kept = await client.get(f"{API}/registry/test.limit", headers=admin_headers)
    assert kept.json()["schema"] == {"type": "integer", "minimum": 0}
    assert kept.json()["revision"] == 1


async def test_update_key_schema_that_rejects_the_default_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())

    response = await client.put(
        f"{API}/registry/test.limit",
        json={"schema": {"type": "integer", "minimum": 10}},
        headers=admin_headers,
    )

    assert_problem(response, 422, "test.limit")


async def test_update_key_scopes_in_use_cannot_be_removed(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(client, admin_headers, new_key())
    await set_setting(client, admin_headers, "test.limit", 1, scope={"persona": "underwriter"})

    response = await client.put(
        f"{API}/registry/test.limit", json={"scopes": ["global"]}, headers=admin_headers
    )

    body = assert_problem(response, 422, "persona")
    assert error_locs(body) == [["body", "scopes"]]


async def test_update_key_needs_an_admin(
    client: httpx.AsyncClient, underwriter_headers: dict[str, str]
) -> None:
    response = await client.put(
        f"{API}/registry/auth.session_days", json={"default": 2}, headers=underwriter_headers
    )
    anonymous = await client.put(f"{API}/registry/auth.session_days", json={"default": 2})

    assert_problem(response, 403)
    assert_problem(anonymous, 401)


# --- reading a setting --------------------------------------------------------------------


async def test_setting_without_values_is_the_registry_default(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = await read_setting(client, admin_headers, "auth.session_days", persona="underwriter")

    assert body["key"] == "auth.session_days"
    assert body["value"] == 30
    assert body["source"] == "default"
    assert body["version"] is None
    assert body["valueId"] is None
    assert body["effectiveFrom"] is None
    assert body["effectiveTo"] is None
    assert body["scope"] == {"persona": "underwriter", "agentId": None, "workflowId": None}
    assert body["secret"] is False
    assert body["candidates"] is None
    assert parse(body["at"]) <= datetime.now(UTC)


async def test_setting_shape_and_explain(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = datetime.now(UTC)
    await set_setting(client, admin_headers, "auth.session_days", 14)
    persona_value = await set_setting(
        client, admin_headers, "auth.session_days", 3, scope={"persona": "underwriter"}
    )

    plain = await read_setting(client, admin_headers, "auth.session_days", persona="underwriter")
    explained = await read_setting(
        client, admin_headers, "auth.session_days", persona="underwriter", explain="true"
    )
    admin = await read_setting(client, admin_headers, "auth.session_days", persona="admin")

    assert plain["value"] == 3
    assert plain["source"] == "persona"
    assert plain["version"] == 1
    assert plain["valueId"] == persona_value["value"]["id"]
    assert plain["valueScope"] == {"persona": "underwriter", "agentId": None, "workflowId": None}
    assert before - timedelta(seconds=1) <= parse(plain["effectiveFrom"]) <= datetime.now(UTC)
    assert plain["effectiveTo"] is None
    assert plain["candidates"] is None
    candidates = explained["candidates"]
    assert [(c["value"], c["source"], c["status"]) for c in candidates] == [
        (3, "persona", "winner"),
        (14, "global", "outranked"),
    ]
    assert candidates[0]["version"] == 1 and candidates[0]["isActive"] is True
    assert "persona" in candidates[0]["reason"]
    assert explained["explanation"] == "persona value version 1 wins"
    assert (admin["value"], admin["source"]) == (14, "global")


async def test_setting_explain_marks_superseded_and_inactive_versions(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for days in (10, 11, 12):
        await set_setting(client, admin_headers, "auth.session_days", days)
    deactivated = await client.post(
        f"{API}/deactivate",
        json={"key": "auth.session_days", "version": 3},
        headers=admin_headers,
    )
    assert deactivated.status_code == 200, deactivated.text

    body = await read_setting(client, admin_headers, "auth.session_days", explain="true")

    assert body["value"] == 11
    assert body["version"] == 2
    assert [(c["version"], c["status"]) for c in body["candidates"]] == [
        (3, "inactive"),
        (2, "winner"),
        (1, "superseded"),
    ]


async def test_setting_explain_with_only_the_default(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = await read_setting(client, admin_headers, "llm.model", explain="true")

    assert body["candidates"] == []
    assert body["source"] == "default"
    assert body["explanation"] == "no live value applies; the registry default is used"


async def test_setting_precedence_by_agent_and_workflow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db)
    await set_setting(client, admin_headers, "agent.max_retries", 3)
    await set_setting(client, admin_headers, "agent.max_retries", 4, scope={"persona": "admin"})
    await set_setting(client, admin_headers, "agent.max_retries", 5, scope={"agentId": agent.id})
    await set_setting(client, admin_headers, "agent.max_retries", 7, scope={"workflowId": 9})

    async def read(**params: Any) -> tuple[Any, str]:
        body = await read_setting(client, admin_headers, "agent.max_retries", **params)
        return body["value"], body["source"]

    assert await read() == (3, "global")
    assert await read(persona="admin") == (4, "persona")
    assert await read(persona="admin", agentId=agent.id) == (5, "agent")
    assert await read(agentId=agent.id, workflowId=9) == (7, "workflow")
    assert await read(workflowId=9) == (7, "workflow")
    assert await read(agentId=agent.id + 1000) == (3, "global")
    explained = await read_setting(
        client, admin_headers, "agent.max_retries", agentId=agent.id, workflowId=9, explain="true"
    )
    assert [c["status"] for c in explained["candidates"]] == ["winner", "outranked", "outranked"]
    assert explained["candidates"][0]["scope"] == {
        "persona": None,
        "agentId": None,
        "workflowId": 9,
    }


async def test_setting_read_in_the_past_sees_the_old_value(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = await set_setting(client, admin_headers, "llm.model", "model-a")
    between = parse(first["value"]["effectiveFrom"]) + timedelta(microseconds=1)
    earlier = parse(first["value"]["effectiveFrom"]) - timedelta(hours=1)
    await set_setting(client, admin_headers, "llm.model", "model-b")

    then = await read_setting(client, admin_headers, "llm.model", at=iso(between))
    before_any = await read_setting(client, admin_headers, "llm.model", at=iso(earlier))
    now = await read_setting(client, admin_headers, "llm.model")

    assert (then["value"], then["version"]) == ("model-a", 1)
    assert parse(then["at"]) == between
    assert (before_any["value"], before_any["source"]) == ("gpt-4o-mini", "default")
    assert (now["value"], now["version"]) == ("model-b", 2)


async def test_reading_the_past_after_the_schema_tightened_is_not_a_server_error(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A value that was valid when it applied is history: reading it with ``at`` must answer
    (it answers 500 "Stored configuration is invalid" today)."""
    await register(client, admin_headers, new_key())
    wide = await set_setting(client, admin_headers, "test.limit", 50)
    await set_setting(client, admin_headers, "test.limit", 10)
    gone = await client.post(
        f"{API}/deactivate", json={"key": "test.limit", "version": 1}, headers=admin_headers
    )
    assert gone.status_code == 200, gone.text
    tightened = await client.put(
        f"{API}/registry/test.limit",
        json={"schema": {"type": "integer", "minimum": 0, "maximum": 40}},
        headers=admin_headers,
    )
    assert tightened.status_code == 200, tightened.text

    then = await client.get(
        f"{API}/setting/test.limit",
        params={"at": wide["value"]["createdAt"], "explain": "true"},
        headers=admin_headers,
    )

    assert then.status_code == 200, then.text
    assert (then.json()["value"], then.json()["version"]) == (50, 1)


async def test_setting_bad_query_parameters_are_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for params in (
        {"agentId": 0},
        {"workflowId": "x"},
        {"persona": "Not A Persona!"},
        {"at": "yesterday"},
        {"explain": "maybe"},
    ):
        response = await client.get(
            f"{API}/setting/auth.session_days", params=params, headers=admin_headers
        )
        assert_problem(response, 422)


# --- writing a setting --------------------------------------------------------------------


async def test_set_setting_201_applied_with_the_new_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = await set_setting(
        client, admin_headers, "agent.timeout_seconds", 45, reason="slow upstream"
    )
    second = await set_setting(client, admin_headers, "agent.timeout_seconds", 60.5)

    assert first["status"] == "applied"
    assert first["changeRequest"] is None
    value = first["value"]
    assert value["key"] == "agent.timeout_seconds"
    assert value["value"] == 45
    assert value["version"] == 1
    assert value["isActive"] is True
    assert value["effectiveTo"] is None
    assert value["deactivatedAt"] is None
    assert value["scope"] == {"persona": None, "agentId": None, "workflowId": None}
    assert "@" in value["createdBy"]
    assert second["value"]["version"] == 2
    setting = await read_setting(client, admin_headers, "agent.timeout_seconds")
    assert (setting["value"], setting["version"], setting["source"]) == (60.5, 2, "global")


async def test_set_setting_versions_count_per_scope(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    a = await set_setting(client, admin_headers, "execution.max_concurrency", 8)
    b = await set_setting(
        client, admin_headers, "execution.max_concurrency", 2, scope={"persona": "underwriter"}
    )
    c = await set_setting(client, admin_headers, "execution.max_concurrency", 9)

    assert [a["value"]["version"], b["value"]["version"], c["value"]["version"]] == [1, 1, 2]
    assert b["value"]["scope"]["persona"] == "underwriter"


async def test_set_setting_needs_an_admin(
    client: httpx.AsyncClient, underwriter_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    body = {"key": "llm.model", "value": "x"}

    forbidden = await client.post(f"{API}/setting", json=body, headers=underwriter_headers)
    anonymous = await client.post(f"{API}/setting", json=body)

    assert_problem(forbidden, 403, slug="forbidden")
    assert_problem(anonymous, 401, slug="unauthorized")
    assert (await read_setting(client, admin_headers, "llm.model"))["source"] == "default"


async def test_scheduled_value_takes_effect_only_inside_its_window(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "sla.response_time_ms", 4000)
    start = datetime.now(UTC) + timedelta(hours=1)
    end = start + timedelta(hours=2)

    scheduled = await set_setting(
        client,
        admin_headers,
        "sla.response_time_ms",
        9000,
        effectiveFrom=iso(start),
        effectiveTo=iso(end),
        reason="holiday season",
    )

    assert scheduled["status"] == "applied"
    assert parse(scheduled["value"]["effectiveFrom"]) == start
    assert parse(scheduled["value"]["effectiveTo"]) == end
    now = await read_setting(client, admin_headers, "sla.response_time_ms", explain="true")
    assert (now["value"], now["version"]) == (4000, 1)
    assert parse(now["validUntil"]) == start
    assert [c["status"] for c in now["candidates"]] == ["scheduled", "winner"]
    during = await read_setting(
        client, admin_headers, "sla.response_time_ms", at=iso(start + timedelta(minutes=30))
    )
    assert (during["value"], during["version"]) == (9000, 2)
    assert parse(during["effectiveFrom"]) == start
    assert parse(during["effectiveTo"]) == end
    assert parse(during["validUntil"]) == end
    after = await read_setting(
        client,
        admin_headers,
        "sla.response_time_ms",
        at=iso(end + timedelta(minutes=1)),
        explain="true",
    )
    assert after["value"] == 4000
    assert [c["status"] for c in after["candidates"]] == ["expired", "winner"]
    log = await history(client, admin_headers, "sla.response_time_ms")
    entry = log["items"][0]
    assert entry["reason"] == "holiday season"
    assert parse(entry["effectiveFrom"]) == start
    assert parse(entry["effectiveTo"]) == end
    assert (entry["oldValue"], entry["newValue"]) == (4000, 9000)


async def test_effective_from_in_the_past_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{API}/setting",
        json={
            "key": "llm.model",
            "value": "x",
            "effectiveFrom": iso(datetime.now(UTC) - timedelta(days=1)),
        },
        headers=admin_headers,
    )

    body = assert_problem(response, 422, "past")
    assert error_locs(body) == [["body", "effectiveFrom"]]


# --- history, values, revert, deactivate ------------------------------------------------


async def test_history_lists_changes_newest_first_with_who_and_why(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    await set_setting(client, admin_headers, "agent.max_retries", 3, reason="first")
    await set_setting(client, admin_headers, "agent.max_retries", 4, reason="second")
    await set_setting(
        client, admin_headers, "agent.max_retries", 1, scope={"persona": "underwriter"}
    )

    log = await history(client, admin_headers, "agent.max_retries")
    scoped = await history(client, admin_headers, "agent.max_retries", persona="underwriter")
    global_only = await history(client, admin_headers, "agent.max_retries", scoped="true")
    paged = await history(client, admin_headers, "agent.max_retries", limit=1, offset=1)

    assert log["total"] == 3
    newest, middle, oldest = log["items"]
    assert (newest["newValue"], newest["scope"]["persona"]) == (1, "underwriter")
    assert newest["oldValue"] is None
    assert (middle["oldValue"], middle["newValue"], middle["reason"]) == (3, 4, "second")
    assert (oldest["oldValue"], oldest["newValue"], oldest["reason"]) == (None, 3, "first")
    assert {e["action"] for e in log["items"]} == {"set"}
    assert middle["version"] == 2 and middle["key"] == "agent.max_retries"
    assert middle["valueId"] is not None
    assert "@example.com" in middle["performedBy"]
    assert newest["id"] > middle["id"] > oldest["id"]
    assert [e["newValue"] for e in scoped["items"]] == [1]
    assert [e["newValue"] for e in global_only["items"]] == [4, 3]
    assert paged["total"] == 3 and [e["newValue"] for e in paged["items"]] == [4]


async def test_values_lists_every_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "ratelimit.executions_per_minute", 10)
    await set_setting(client, admin_headers, "ratelimit.executions_per_minute", 20)
    await set_setting(
        client,
        admin_headers,
        "ratelimit.executions_per_minute",
        5,
        scope={"persona": "underwriter"},
    )

    response = await client.get(
        f"{API}/values/ratelimit.executions_per_minute", headers=admin_headers
    )
    scoped = await client.get(
        f"{API}/values/ratelimit.executions_per_minute",
        params={"persona": "underwriter"},
        headers=admin_headers,
    )
    global_only = await client.get(
        f"{API}/values/ratelimit.executions_per_minute",
        params={"scoped": "true"},
        headers=admin_headers,
    )

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert response.json()["total"] == 3
    assert [(i["value"], i["version"]) for i in items] == [(20, 2), (10, 1), (5, 1)]
    assert all(i["isActive"] for i in items)
    assert [i["value"] for i in scoped.json()["items"]] == [5]
    assert [i["value"] for i in global_only.json()["items"]] == [20, 10]


async def test_revert_stores_the_old_value_as_a_new_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for value in (10, 20, 30):
        await set_setting(client, admin_headers, "ratelimit.api_requests_per_minute", value)

    response = await client.post(
        f"{API}/revert",
        json={"key": "ratelimit.api_requests_per_minute", "version": 1},
        headers=admin_headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "applied"
    assert (body["value"]["value"], body["value"]["version"]) == (10, 4)
    setting = await read_setting(client, admin_headers, "ratelimit.api_requests_per_minute")
    assert (setting["value"], setting["version"]) == (10, 4)
    entry = (await history(client, admin_headers, "ratelimit.api_requests_per_minute"))["items"][0]
    assert entry["action"] == "revert"
    assert (entry["oldValue"], entry["newValue"]) == (30, 10)
    assert entry["reason"] == "revert to version 1"


async def test_revert_at_a_scope_and_unknown_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    scope = {"persona": "underwriter"}
    await set_setting(client, admin_headers, "auth.session_days", 2, scope=scope)
    await set_setting(client, admin_headers, "auth.session_days", 4, scope=scope)

    reverted = await client.post(
        f"{API}/revert",
        json={"key": "auth.session_days", "scope": scope, "version": 1, "reason": "too long"},
        headers=admin_headers,
    )
    missing = await client.post(
        f"{API}/revert",
        json={"key": "auth.session_days", "version": 1},
        headers=admin_headers,
    )

    assert reverted.status_code == 201, reverted.text
    assert reverted.json()["value"]["version"] == 3
    assert reverted.json()["value"]["scope"]["persona"] == "underwriter"
    assert_problem(missing, 404, "version 1", "global")
    log = await history(client, admin_headers, "auth.session_days", persona="underwriter")
    assert log["items"][0]["reason"] == "too long"


async def test_deactivate_one_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-a")

    response = await client.post(
        f"{API}/deactivate",
        json={"key": "llm.model", "version": 1, "reason": "back to the default"},
        headers=admin_headers,
    )
    again = await client.post(
        f"{API}/deactivate", json={"key": "llm.model", "version": 1}, headers=admin_headers
    )
    missing = await client.post(
        f"{API}/deactivate", json={"key": "llm.model", "version": 9}, headers=admin_headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "applied"
    assert body["value"]["isActive"] is False
    assert body["value"]["deactivatedAt"] is not None
    assert_problem(again, 409, "not active")
    assert_problem(missing, 404)
    setting = await read_setting(client, admin_headers, "llm.model")
    assert (setting["value"], setting["source"]) == ("gpt-4o-mini", "default")
    entry = (await history(client, admin_headers, "llm.model"))["items"][0]
    assert entry["action"] == "deactivate"
    assert (entry["oldValue"], entry["newValue"]) == ("model-a", None)
    assert entry["reason"] == "back to the default"
    # Reading the past still sees the deactivated value.
    past = await read_setting(client, admin_headers, "llm.model", at=body["value"]["createdAt"])
    assert past["value"] == "model-a"


async def test_revert_and_deactivate_need_an_admin(
    client: httpx.AsyncClient, underwriter_headers: dict[str, str]
) -> None:
    ref = {"key": "llm.model", "version": 1}
    for path in ("revert", "deactivate"):
        assert_problem(
            await client.post(f"{API}/{path}", json=ref, headers=underwriter_headers), 403
        )
        assert_problem(await client.post(f"{API}/{path}", json=ref), 401)


# --- bad input (section 8) ----------------------------------------------------------------


async def test_unknown_key_is_404_naming_the_closest_keys(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    read = await client.get(f"{API}/setting/agent.timeout_second", headers=admin_headers)
    write = await client.post(
        f"{API}/setting", json={"key": "agent.max_retrys", "value": 1}, headers=admin_headers
    )
    log = await client.get(f"{API}/history/llm.modle", headers=admin_headers)
    values = await client.get(f"{API}/values/llm.modle", headers=admin_headers)
    far = await client.get(f"{API}/setting/completely.different", headers=admin_headers)

    assert_problem(read, 404, "'agent.timeout_second'", "'agent.timeout_seconds'", slug="not-found")
    assert_problem(write, 404, "'agent.max_retries'")
    assert_problem(log, 404, "'llm.model'")
    assert_problem(values, 404, "'llm.model'")
    body = assert_problem(far, 404, "completely.different")
    assert "did you mean" not in body["detail"]


async def test_value_failing_its_schema_is_422_with_json_path_and_rule(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    too_small = await client.post(
        f"{API}/setting", json={"key": "auth.session_days", "value": 0}, headers=admin_headers
    )
    wrong_type = await client.post(
        f"{API}/setting", json={"key": "auth.session_days", "value": "7"}, headers=admin_headers
    )
    bad_colours = await client.post(
        f"{API}/setting",
        json={"key": "persona.colors", "value": {**SCHEME, "primary": "red; x", "extra": "#fff"}},
        headers=admin_headers,
    )
    missing_colour = {k: v for k, v in SCHEME.items() if k != "accent"}
    incomplete = await client.post(
        f"{API}/setting",
        json={"key": "persona.colors", "value": missing_colour},
        headers=admin_headers,
    )

    body = assert_problem(too_small, 422, "auth.session_days", slug="validation")
    assert body["errors"][0]["jsonPath"] == "$"
    assert body["errors"][0]["rule"] == "minimum"
    assert body["errors"][0]["loc"] == ["body", "value"]
    assert assert_problem(wrong_type, 422)["errors"][0]["rule"] == "type"
    body = assert_problem(bad_colours, 422)
    rules = {(e["jsonPath"], e["rule"]) for e in body["errors"]}
    assert ("$.primary", "pattern") in rules
    assert ("$", "additionalProperties") in rules
    primary = next(e for e in body["errors"] if e["jsonPath"] == "$.primary")
    assert primary["loc"] == ["body", "value", "primary"]
    body = assert_problem(incomplete, 422)
    assert [(e["jsonPath"], e["rule"]) for e in body["errors"]] == [("$", "required")]
    assert "accent" in body["errors"][0]["msg"]
    setting = await read_setting(client, admin_headers, "auth.session_days")
    assert setting["source"] == "default"


async def test_value_is_required(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(f"{API}/setting", json={"key": "llm.model"}, headers=admin_headers)

    assert_problem(response, 422, "value is required")


async def test_effective_to_not_after_effective_from_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    for end in (start, start - timedelta(minutes=1)):
        response = await client.post(
            f"{API}/setting",
            json={
                "key": "llm.model",
                "value": "x",
                "effectiveFrom": iso(start),
                "effectiveTo": iso(end),
            },
            headers=admin_headers,
        )
        body = assert_problem(response, 422, "effectiveTo", slug="validation")
        assert error_locs(body) == [["body", "effectiveTo"]]
    in_the_past = await client.post(
        f"{API}/setting",
        json={
            "key": "llm.model",
            "value": "x",
            "effectiveTo": iso(datetime.now(UTC) - timedelta(hours=1)),
        },
        headers=admin_headers,
    )
    assert_problem(in_the_past, 422, "effectiveTo")
    values = await client.get(f"{API}/values/llm.model", headers=admin_headers)
    assert values.json()["total"] == 0


async def test_scope_the_key_does_not_allow_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    agent = await create_agent(db)

    colours = await client.post(
        f"{API}/setting",
        json={"key": "persona.colors", "value": SCHEME, "scope": {"agentId": agent.id}},
        headers=admin_headers,
    )
    login_rate = await client.post(
        f"{API}/setting",
        json={
            "key": "ratelimit.login_attempts_per_minute",
            "value": 5,
            "scope": {"persona": "underwriter"},
        },
        headers=admin_headers,
    )
    unknown_scope_member = await client.post(
        f"{API}/setting",
        json={"key": "llm.model", "value": "x", "scope": {"team": "blue"}},
        headers=admin_headers,
    )

    body = assert_problem(colours, 422, "cannot be set at agent scope", "global, persona")
    assert error_locs(body) == [["body", "scope"]]
    assert_problem(login_rate, 422, "cannot be set at persona scope")
    assert_problem(unknown_scope_member, 422, "team")


async def test_unknown_persona_or_agent_in_scope_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    persona = await client.post(
        f"{API}/setting",
        json={"key": "auth.session_days", "value": 3, "scope": {"persona": "astronaut"}},
        headers=admin_headers,
    )
    agent = await client.post(
        f"{API}/setting",
        json={"key": "agent.max_retries", "value": 3, "scope": {"agentId": 999999}},
        headers=admin_headers,
    )

    body = assert_problem(persona, 422, "unknown persona 'astronaut'")
    assert error_locs(body) == [["body", "scope", "persona"]]
    body = assert_problem(agent, 422, "999999")
    assert error_locs(body) == [["body", "scope", "agentId"]]


async def test_malformed_json_body_is_400(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for path in ("setting", "registry", "revert", "deactivate", "snapshots"):
        response = await client.post(
            f"{API}/{path}",
            content=b'{"key": "llm.model", "value": ',
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 400, "not valid JSON", slug="malformed-json")


async def test_unknown_fields_are_rejected(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        f"{API}/setting",
        json={"key": "llm.model", "value": "x", "valu": "y"},
        headers=admin_headers,
    )

    body = assert_problem(response, 422)
    assert ["body", "valu"] in error_locs(body)


async def test_secret_values_are_masked_everywhere(
    client: httpx.AsyncClient, admin_headers: dict[str, str], other_admin: dict[str, str]
) -> None:
    await register(
        client,
        admin_headers,
        new_key("integrations.api_key", schema={"type": "string"}, default="", secret=True),
    )
    await register(
        client,
        admin_headers,
        new_key(
            "integrations.signing_key",
            schema={"type": "string"},
            default="",
            secret=True,
            requiresApproval=True,
        ),
    )

    written = await set_setting(client, admin_headers, "integrations.api_key", SECRET + "-1")
    second = await set_setting(client, admin_headers, "integrations.api_key", SECRET + "-2")
    requested = await set_setting(
        client, admin_headers, "integrations.signing_key", SECRET + "-3", expect=202
    )
    request_id = requested["changeRequest"]["id"]
    responses = [
        await client.get(f"{API}/setting/integrations.api_key", headers=admin_headers),
        await client.get(
            f"{API}/setting/integrations.api_key",
            params={"explain": "true"},
            headers=admin_headers,
        ),
        await client.get(f"{API}/values/integrations.api_key", headers=admin_headers),
        await client.get(f"{API}/history/integrations.api_key", headers=admin_headers),
        await client.get(f"{API}/change-requests", headers=admin_headers),
        await client.get(f"{API}/change-requests/{request_id}", headers=admin_headers),
    ]
    approved = await client.post(
        f"{API}/change-requests/{request_id}/approve", json={}, headers=other_admin
    )
    responses.append(approved)
    responses.append(
        await client.get(f"{API}/setting/integrations.signing_key", headers=admin_headers)
    )
    responses.append(
        await client.get(f"{API}/history/integrations.signing_key", headers=admin_headers)
    )
    reverted = await client.post(
        f"{API}/revert",
        json={"key": "integrations.api_key", "version": 1},
        headers=admin_headers,
    )
    responses.append(reverted)

    assert written["value"]["value"] == MASK
    assert second["value"]["value"] == MASK
    assert requested["changeRequest"]["payload"]["value"] == MASK
    for response in responses:
        assert response.status_code in (200, 201), response.text
        assert SECRET not in response.text, response.text
    setting, explained, values, log, requests, one, *_ = [r.json() for r in responses]
    assert setting["value"] == MASK and setting["secret"] is True
    assert [c["value"] for c in explained["candidates"]] == [MASK, MASK]
    assert [v["value"] for v in values["items"]] == [MASK, MASK]
    sets = [e for e in log["items"] if e["action"] == "set"]
    assert [(e["oldValue"], e["newValue"]) for e in sets] == [(MASK, MASK), (None, MASK)]
    assert requests["items"][0]["payload"]["value"] == MASK
    assert one["payload"]["value"] == MASK
    assert approved.json()["payload"]["value"] == MASK
    assert reverted.json()["value"]["value"] == MASK


async def test_a_key_made_secret_later_hides_its_earlier_values_in_history(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register(
        client, admin_headers, new_key("integrations.token", schema={"type": "string"}, default="")
    )
    await set_setting(client, admin_headers, "integrations.token", SECRET)
    made_secret = await client.put(
        f"{API}/registry/integrations.token", json={"secret": True}, headers=admin_headers
    )
    assert made_secret.status_code == 200, made_secret.text

    responses = [
        await client.get(f"{API}/history/integrations.token", headers=admin_headers),
        await client.get(f"{API}/values/integrations.token", headers=admin_headers),
        await client.get(f"{API}/setting/integrations.token", headers=admin_headers),
    ]

    for response in responses:
        assert response.status_code == 200, response.text
        assert SECRET not in response.text, response.text


async def test_secret_value_is_readable_by_the_service(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: Any
) -> None:
    await register(
        client,
        admin_headers,
        new_key("integrations.api_key", schema={"type": "string"}, default="", secret=True),
    )
    await set_setting(client, admin_headers, "integrations.api_key", SECRET)

    assert await app.state.config.get("integrations.api_key") == SECRET


# --- approvals ----------------------------------------------------------------------------


async def request_provider(
    client: httpx.AsyncClient, headers: dict[str, str], value: str = "openai"
) -> dict[str, Any]:
    body = await set_setting(
        client, headers, "llm.provider", value, expect=202, reason="try the real model"
    )
    assert body["status"] == "pending_approval"
    assert body["value"] is None
    request: dict[str, Any] = body["changeRequest"]
    return request


async def test_key_requiring_approval_opens_a_change_request(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    request = await request_provider(client, admin_headers)

    assert request["key"] == "llm.provider"
    assert request["action"] == "set"
    assert request["status"] == "pending"
    assert request["payload"]["value"] == "openai"
    assert request["payload"]["scope"] == {}
    assert request["reason"] == "try the real model"
    assert "@example.com" in request["requestedBy"]
    assert request["decidedBy"] is None and request["appliedValueId"] is None
    setting = await read_setting(client, admin_headers, "llm.provider")
    assert (setting["value"], setting["source"]) == ("rules", "default")
    pending = await client.get(
        f"{API}/change-requests", params={"status": "pending"}, headers=admin_headers
    )
    assert [r["id"] for r in pending.json()["items"]] == [request["id"]]
    approved = await client.get(
        f"{API}/change-requests", params={"status": "approved"}, headers=admin_headers
    )
    assert approved.json()["total"] == 0
    one = await client.get(f"{API}/change-requests/{request['id']}", headers=admin_headers)
    assert one.json() == request
    values = await client.get(f"{API}/values/llm.provider", headers=admin_headers)
    assert values.json()["total"] == 0


async def test_a_second_admin_approves_and_the_value_goes_live(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    other_admin: dict[str, str],
    app: Any,
) -> None:
    assert await app.state.config.get("llm.provider") == "rules"  # cached now
    request = await request_provider(client, admin_headers)
    url = f"{API}/change-requests/{request['id']}"

    own = await client.post(f"{url}/approve", json={}, headers=admin_headers)
    assert_problem(own, 403, "your own", slug="forbidden")
    assert (await read_setting(client, admin_headers, "llm.provider"))["value"] == "rules"

    approved = await client.post(f"{url}/approve", json={"reason": "fine"}, headers=other_admin)

    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["decisionReason"] == "fine"
    assert body["decidedBy"] and body["decidedBy"] != body["requestedBy"]
    assert body["decidedAt"] is not None
    assert body["appliedValueId"] is not None
    setting = await read_setting(client, admin_headers, "llm.provider")
    assert (setting["value"], setting["version"]) == ("openai", 1)
    assert setting["valueId"] == body["appliedValueId"]
    assert await app.state.config.get("llm.provider") == "openai"
    entry = (await history(client, admin_headers, "llm.provider"))["items"][0]
    assert entry["changeRequestId"] == request["id"]
    assert entry["performedBy"] == body["decidedBy"]
    assert entry["reason"] == "try the real model"
    twice = await client.post(f"{url}/approve", json={}, headers=other_admin)
    assert_problem(twice, 409, "already approved")
    pending = await client.get(
        f"{API}/change-requests", params={"status": "pending"}, headers=admin_headers
    )
    assert pending.json()["total"] == 0


async def test_a_scheduled_change_request_applies_its_window_when_approved(
    client: httpx.AsyncClient, admin_headers: dict[str, str], other_admin: dict[str, str]
) -> None:
    start = datetime.now(UTC) + timedelta(hours=1)
    end = start + timedelta(hours=1)
    requested = await set_setting(
        client,
        admin_headers,
        "llm.provider",
        "openai",
        scope={"persona": "underwriter"},
        effectiveFrom=iso(start),
        effectiveTo=iso(end),
        expect=202,
    )
    payload = requested["changeRequest"]["payload"]
    assert payload["scope"] == {"persona": "underwriter"}
    assert parse(payload["effectiveFrom"]) == start and parse(payload["effectiveTo"]) == end

    approved = await client.post(
        f"{API}/change-requests/{requested['changeRequest']['id']}/approve",
        json={},
        headers=other_admin,
    )

    assert approved.status_code == 200, approved.text
    now = await read_setting(client, admin_headers, "llm.provider", persona="underwriter")
    during = await read_setting(
        client,
        admin_headers,
        "llm.provider",
        persona="underwriter",
        at=iso(start + timedelta(minutes=1)),
    )
    assert now["value"] == "rules"
    assert (during["value"], during["source"]) == ("openai", "persona")
    assert parse(during["effectiveTo"]) == end


async def test_a_second_admin_rejects(
    client: httpx.AsyncClient, admin_headers: dict[str, str], other_admin: dict[str, str]
) -> None:
    request = await request_provider(client, admin_headers)
    url = f"{API}/change-requests/{request['id']}"

    own = await client.post(f"{url}/reject", json={}, headers=admin_headers)
    rejected = await client.post(f"{url}/reject", json={"reason": "not yet"}, headers=other_admin)
    approve_after = await client.post(f"{url}/approve", json={}, headers=other_admin)

    assert_problem(own, 403, "withdraw")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decisionReason"] == "not yet"
    assert rejected.json()["appliedValueId"] is None
    assert_problem(approve_after, 409, "already rejected")
    assert (await read_setting(client, admin_headers, "llm.provider"))["value"] == "rules"
    listed = await client.get(
        f"{API}/change-requests", params={"status": "rejected"}, headers=admin_headers
    )
    assert [r["id"] for r in listed.json()["items"]] == [request["id"]]


async def test_the_requester_withdraws(
    client: httpx.AsyncClient, admin_headers: dict[str, str], other_admin: dict[str, str]
) -> None:
    request = await request_provider(client, admin_headers)
    url = f"{API}/change-requests/{request['id']}"

    not_theirs = await client.post(f"{url}/withdraw", json={}, headers=other_admin)
    withdrawn = await client.post(f"{url}/withdraw", json={"reason": "typo"}, headers=admin_headers)
    approve_after = await client.post(f"{url}/approve", json={}, headers=other_admin)

    assert_problem(not_theirs, 403, "requester")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"
    assert_problem(approve_after, 409, "withdrawn")
    assert (await read_setting(client, admin_headers, "llm.provider"))["value"] == "rules"


async def test_approval_routes_need_an_admin_and_a_real_request(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    underwriter_headers: dict[str, str],
) -> None:
    request = await request_provider(client, admin_headers)
    url = f"{API}/change-requests/{request['id']}"

    for action in ("approve", "reject", "withdraw"):
        assert_problem(
            await client.post(f"{url}/{action}", json={}, headers=underwriter_headers), 403
        )
        assert_problem(await client.post(f"{url}/{action}", json={}), 401)
    missing = await client.post(
        f"{API}/change-requests/999999/approve", json={}, headers=admin_headers
    )
    assert_problem(missing, 404, "999999")
    readable = await client.get(f"{API}/change-requests", headers=underwriter_headers)
    assert readable.status_code == 200
    assert readable.json()["items"][0]["status"] == "pending"
    bad_status = await client.get(
        f"{API}/change-requests", params={"status": "open"}, headers=admin_headers
    )
    assert_problem(bad_status, 422)


async def test_revert_and_deactivate_of_an_approval_key_open_requests(
    client: httpx.AsyncClient, admin_headers: dict[str, str], other_admin: dict[str, str]
) -> None:
    first = await request_provider(client, admin_headers)
    ok = await client.post(
        f"{API}/change-requests/{first['id']}/approve", json={}, headers=other_admin
    )
    assert ok.status_code == 200, ok.text

    deactivate = await client.post(
        f"{API}/deactivate", json={"key": "llm.provider", "version": 1}, headers=admin_headers
    )

    assert deactivate.status_code == 202, deactivate.text
    request = deactivate.json()["changeRequest"]
    assert request["action"] == "deactivate"
    assert request["payload"] == {"scope": {}, "version": 1}
    assert (await read_setting(client, admin_headers, "llm.provider"))["value"] == "openai"
    approved = await client.post(
        f"{API}/change-requests/{request['id']}/approve", json={}, headers=other_admin
    )
    assert approved.status_code == 200, approved.text
    setting = await read_setting(client, admin_headers, "llm.provider")
    assert (setting["value"], setting["source"]) == ("rules", "default")
    revert = await client.post(
        f"{API}/revert", json={"key": "llm.provider", "version": 1}, headers=admin_headers
    )
    assert revert.status_code == 202, revert.text
    assert revert.json()["changeRequest"]["action"] == "revert"
    assert revert.json()["changeRequest"]["payload"]["value"] == "openai"


# --- propagation and consumers ------------------------------------------------------------


async def test_a_change_through_the_api_reaches_the_apps_config_service(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: Any
) -> None:
    config = app.state.config
    assert await config.get("agent.max_retries") == 2  # now cached
    assert await config.get("agent.max_retries", Scope(persona="underwriter")) == 2

    await set_setting(client, admin_headers, "agent.max_retries", 6)
    assert await config.get("agent.max_retries") == 6
    assert await config.get("agent.max_retries", Scope(persona="underwriter")) == 6

    await set_setting(
        client, admin_headers, "agent.max_retries", 1, scope={"persona": "underwriter"}
    )
    assert await config.get("agent.max_retries", Scope(persona="underwriter")) == 1
    assert await config.get("agent.max_retries") == 6

    deactivated = await client.post(
        f"{API}/deactivate", json={"key": "agent.max_retries", "version": 1}, headers=admin_headers
    )
    assert deactivated.status_code == 200, deactivated.text
    assert await config.get("agent.max_retries") == 2

    updated = await client.put(
        f"{API}/registry/agent.max_retries", json={"default": 3}, headers=admin_headers
    )
    assert updated.status_code == 200, updated.text
    assert await config.get("agent.max_retries") == 3


async def test_session_length_follows_auth_session_days_per_persona(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    underwriter = await create_user(db, persona="underwriter")
    admin = await create_user(db, persona="admin")
    await set_setting(
        client, admin_headers, "auth.session_days", 3, scope={"persona": "underwriter"}
    )

    signed_in = await client.post(
        "/api/login", json={"email": underwriter.email, "password": DEFAULT_PASSWORD}
    )
    client.cookies.clear()
    other = await client.post(
        "/api/login", json={"email": admin.email, "password": DEFAULT_PASSWORD}
    )
    client.cookies.clear()

    assert signed_in.status_code == 200, signed_in.text
    assert cookie_max_age(signed_in) == 3 * 86400
    assert cookie_max_age(other) == 30 * 86400


def cookie_max_age(response: httpx.Response) -> int:
    headers = [
        h for h in response.headers.get_list("set-cookie") if h.startswith("jarvis_session=")
    ]
    assert len(headers) == 1, headers
    for part in headers[0].split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age":
            return int(value)
    raise AssertionError(f"no Max-Age in {headers[0]}")


async def test_persona_colours_come_from_configuration(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = await client.get("/api/personas/all", headers=admin_headers)
    assert before.status_code == 200, before.text
    schemes = {p["key"]: p["colorScheme"] for p in before.json()["items"]}
    assert schemes["underwriter"] == UNDERWRITER_SCHEME

    await set_setting(
        client, admin_headers, "persona.colors", SCHEME, scope={"persona": "underwriter"}
    )

    after = await client.get("/api/personas/all", headers=admin_headers)
    schemes_after = {p["key"]: p["colorScheme"] for p in after.json()["items"]}
    assert schemes_after["underwriter"] == SCHEME
    assert schemes_after["admin"] == schemes["admin"]
    setting = await read_setting(client, admin_headers, "persona.colors", persona="underwriter")
    assert (setting["value"], setting["version"]) == (SCHEME, 2)
