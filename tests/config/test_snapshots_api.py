"""Snapshots, diff, restore, export and import of configuration over HTTP."""

from __future__ import annotations

import json
from email.message import Message
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import yaml

from jarvis.config.models import ConfigSnapshot
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from tests.config.api import API, set_setting
from tests.problems import assert_problem

MASK = "********"
SECRET = "s3cr3t-value-do-not-leak"
PERSONA_COLOURS = 2  # persona.colors of admin and underwriter, stored by tests.factories


# --- helpers ------------------------------------------------------------------------------


async def deactivate(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    key: str,
    version: int,
    scope: dict[str, Any] | None = None,
) -> None:
    response = await client.post(
        f"{API}/deactivate",
        json={"key": key, "version": version, "scope": scope or {}},
        headers=headers,
    )
    assert response.status_code == 200, response.text


async def setting(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(f"{API}/setting/{key}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def value_of(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, **params: Any
) -> Any:
    return (await setting(client, headers, key, **params))["value"]


async def snapshot(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, expect: int = 201, **extra: Any
) -> dict[str, Any]:
    response = await client.post(f"{API}/snapshots", json={"name": name, **extra}, headers=headers)
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def restore(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    snapshot_id: int,
    expect: int = 200,
    **body: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/snapshots/{snapshot_id}/restore", json=body, headers=headers
    )
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


async def history_actions(
    client: httpx.AsyncClient, headers: dict[str, str], key: str
) -> list[str]:
    response = await client.get(f"{API}/history/{key}", headers=headers)
    assert response.status_code == 200, response.text
    return [e["action"] for e in response.json()["items"]]


async def register_secret(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(
        f"{API}/registry",
        json={
            "key": "integrations.api_key",
            "description": "An API key of a partner system.",
            "schema": {"type": "string"},
            "default": "",
            "scopes": ["global"],
            "secret": True,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def register_limit(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(
        f"{API}/registry",
        json={
            "key": "test.limit",
            "description": "A limit used by the tests.",
            "schema": {"type": "integer", "minimum": 0},
            "default": 5,
            "scopes": ["global", "persona"],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text


def by_key(entries: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Entries indexed by (key, persona)."""
    return {(e["key"], (e.get("scope") or {}).get("persona")): e for e in entries}


def summary(diff: dict[str, Any]) -> dict[str, Any]:
    """A diff reduced to what changes, per key and scope."""
    return {
        "added": sorted((e["key"], json.dumps(e["scope"]), e["value"]) for e in diff["added"]),
        "removed": sorted((e["key"], json.dumps(e["scope"]), e["value"]) for e in diff["removed"]),
        "changed": sorted(
            (e["key"], json.dumps(e["scope"]), e["before"], e["after"]) for e in diff["changed"]
        ),
    }


async def arrange_then_change(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    """Values A (changed later), B (deactivated later) and C (added later) around a snapshot."""
    await set_setting(client, headers, "llm.model", "model-1")
    await set_setting(client, headers, "agent.max_retries", 3, scope={"persona": "underwriter"})
    await set_setting(client, headers, "sla.success_rate_min", 0.9)
    taken = await snapshot(client, headers, "before", description="before the change")
    await set_setting(client, headers, "llm.model", "model-2")
    await deactivate(client, headers, "agent.max_retries", 1, {"persona": "underwriter"})
    await set_setting(client, headers, "sla.response_time_ms", 900)
    return taken


# What changed from the snapshot "before" to the live values after arrange_then_change.
SINCE_BEFORE = {
    "added": [("sla.response_time_ms", "{}", 900)],
    "removed": [("agent.max_retries", '{"persona": "underwriter"}', 3)],
    "changed": [("llm.model", "{}", "model-1", "model-2")],
}
# And back.
BACK_TO_BEFORE = {
    "added": [("agent.max_retries", '{"persona": "underwriter"}', 3)],
    "removed": [("sla.response_time_ms", "{}", 900)],
    "changed": [("llm.model", "{}", "model-2", "model-1")],
}


# --- create, list, show -------------------------------------------------------------------


async def test_create_snapshot_201_then_duplicate_name_409(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")

    body = await snapshot(client, admin_headers, "release-1", description="before release 1")
    duplicate = await client.post(
        f"{API}/snapshots", json={"name": "release-1"}, headers=admin_headers
    )

    assert body["id"] >= 1
    assert body["name"] == "release-1"
    assert body["description"] == "before release 1"
    assert body["valueCount"] == PERSONA_COLOURS + 1
    assert "@example.com" in body["createdBy"]
    assert body["takenAt"] and body["createdAt"]
    assert body["values"] is None
    assert_problem(duplicate, 409, "release-1", slug="conflict")
    listed = await client.get(f"{API}/snapshots", headers=admin_headers)
    assert listed.json()["total"] == 1


async def test_create_snapshot_needs_an_admin_and_a_name(
    client: httpx.AsyncClient, admin_headers: dict[str, str], underwriter_headers: dict[str, str]
) -> None:
    forbidden = await client.post(
        f"{API}/snapshots", json={"name": "x"}, headers=underwriter_headers
    )
    anonymous = await client.post(f"{API}/snapshots", json={"name": "x"})
    empty = await client.post(f"{API}/snapshots", json={"name": ""}, headers=admin_headers)
    missing = await client.post(f"{API}/snapshots", json={}, headers=admin_headers)

    assert_problem(forbidden, 403)
    assert_problem(anonymous, 401)
    assert_problem(empty, 422, "name")
    assert_problem(missing, 422, "name")
    listed = await client.get(f"{API}/snapshots", headers=admin_headers)
    assert listed.json()["total"] == 0


async def test_list_snapshots_newest_first_with_paging(
    client: httpx.AsyncClient, admin_headers: dict[str, str], underwriter_headers: dict[str, str]
) -> None:
    for name in ("one", "two", "three"):
        await snapshot(client, admin_headers, name)

    everything = await client.get(f"{API}/snapshots", headers=underwriter_headers)
    second = await client.get(
        f"{API}/snapshots", params={"limit": 1, "offset": 1}, headers=admin_headers
    )
    anonymous = await client.get(f"{API}/snapshots")

    assert everything.status_code == 200, everything.text
    assert [s["name"] for s in everything.json()["items"]] == ["three", "two", "one"]
    assert everything.json()["total"] == 3
    assert [s["name"] for s in second.json()["items"]] == ["two"]
    assert second.json()["total"] == 3
    assert_problem(anonymous, 401)


async def test_show_snapshot_lists_values_with_secrets_masked(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register_secret(client, admin_headers)
    await set_setting(client, admin_headers, "integrations.api_key", SECRET)
    await set_setting(
        client, admin_headers, "auth.session_days", 3, scope={"persona": "underwriter"}
    )
    taken = await snapshot(client, admin_headers, "with-secret")

    response = await client.get(f"{API}/snapshots/{taken['id']}", headers=admin_headers)
    missing = await client.get(f"{API}/snapshots/999999", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    body = response.json()
    assert body["valueCount"] == PERSONA_COLOURS + 2
    values = by_key(body["values"])
    assert values[("integrations.api_key", None)]["value"] == MASK
    assert values[("integrations.api_key", None)]["secret"] is True
    days = values[("auth.session_days", "underwriter")]
    assert days["value"] == 3
    assert days["scope"] == {"persona": "underwriter"}
    assert days["version"] == 1
    assert days["effectiveFrom"]
    assert values[("persona.colors", "admin")]["value"]["primary"] == "#3b82f6"
    assert_problem(missing, 404, "999999")


async def test_snapshot_at_a_past_instant_holds_the_values_live_then(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = await set_setting(client, admin_headers, "llm.model", "model-1")
    await set_setting(client, admin_headers, "llm.model", "model-2")

    taken = await snapshot(client, admin_headers, "as-of-first", at=first["value"]["effectiveFrom"])

    shown = await client.get(f"{API}/snapshots/{taken['id']}", headers=admin_headers)
    assert by_key(shown.json()["values"])[("llm.model", None)]["value"] == "model-1"


# --- diff ---------------------------------------------------------------------------------


async def test_diff_against_current_and_against_another_snapshot(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = await arrange_then_change(client, admin_headers)
    after = await snapshot(client, admin_headers, "after")

    current = await client.get(f"{API}/snapshots/{before['id']}/diff", headers=admin_headers)
    other = await client.get(
        f"{API}/snapshots/{before['id']}/diff",
        params={"against": after["id"]},
        headers=admin_headers,
    )
    reverse = await client.get(
        f"{API}/snapshots/{after['id']}/diff",
        params={"against": before["id"]},
        headers=admin_headers,
    )
    same = await client.get(f"{API}/snapshots/{after['id']}/diff", headers=admin_headers)

    assert current.status_code == 200, current.text
    body = current.json()
    assert body["from"] == "before" and body["to"] == "current"
    assert summary(body) == SINCE_BEFORE
    assert body["unchanged"] == PERSONA_COLOURS + 1  # persona colours and sla.success_rate_min
    assert summary(other.json()) == SINCE_BEFORE
    assert other.json()["to"] == str(after["id"])
    assert summary(reverse.json()) == BACK_TO_BEFORE
    assert summary(same.json()) == {"added": [], "removed": [], "changed": []}


async def test_diff_masks_secrets_and_checks_its_arguments(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register_secret(client, admin_headers)
    await set_setting(client, admin_headers, "integrations.api_key", SECRET + "-old")
    taken = await snapshot(client, admin_headers, "s")
    await set_setting(client, admin_headers, "integrations.api_key", SECRET + "-new")

    response = await client.get(f"{API}/snapshots/{taken['id']}/diff", headers=admin_headers)
    bad = await client.get(
        f"{API}/snapshots/{taken['id']}/diff",
        params={"against": "yesterday"},
        headers=admin_headers,
    )
    missing_other = await client.get(
        f"{API}/snapshots/{taken['id']}/diff", params={"against": 999999}, headers=admin_headers
    )
    missing = await client.get(f"{API}/snapshots/999999/diff", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    assert response.json()["changed"] == [
        {"key": "integrations.api_key", "scope": {}, "before": MASK, "after": MASK}
    ]
    assert_problem(bad, 422)
    assert_problem(missing_other, 404, "999999")
    assert_problem(missing, 404, "999999")


# --- restore ------------------------------------------------------------------------------


async def test_restore_dry_run_shows_the_diff_and_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    before = await arrange_then_change(client, admin_headers)
    logged = await history_actions(client, admin_headers, "llm.model")

    report = await restore(client, admin_headers, before["id"], dryRun=True)

    assert report["dryRun"] is True
    assert report["applied"] is False
    assert summary(report["diff"]) == BACK_TO_BEFORE
    assert report["unknownKeys"] == [] and report["errors"] == []
    assert await value_of(client, admin_headers, "llm.model") == "model-2"
    assert await value_of(client, admin_headers, "sla.response_time_ms") == 900
    assert await value_of(client, admin_headers, "agent.max_retries", persona="underwriter") == 2
    assert await history_actions(client, admin_headers, "llm.model") == logged


async def test_restore_makes_live_values_equal_to_the_snapshot(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: Any
) -> None:
    before = await arrange_then_change(client, admin_headers)
    assert await app.state.config.get("llm.model") == "model-2"  # cached now

    report = await restore(client, admin_headers, before["id"], reason="roll back release")

    assert report["dryRun"] is False
    assert report["applied"] is True
    assert summary(report["diff"]) == BACK_TO_BEFORE
    model = await setting(client, admin_headers, "llm.model")
    assert (model["value"], model["version"]) == ("model-1", 3)  # a new version, not a rewrite
    retries = await setting(client, admin_headers, "agent.max_retries", persona="underwriter")
    assert (retries["value"], retries["version"], retries["source"]) == (3, 2, "persona")
    response_time = await setting(client, admin_headers, "sla.response_time_ms")
    assert response_time["source"] == "default"
    assert await app.state.config.get("llm.model") == "model-1"
    values = await client.get(f"{API}/values/sla.response_time_ms", headers=admin_headers)
    assert [v["isActive"] for v in values.json()["items"]] == [False]
    log = await client.get(f"{API}/history/llm.model", headers=admin_headers)
    entry = log.json()["items"][0]
    assert entry["action"] == "restore"
    assert entry["snapshotId"] == before["id"]
    assert entry["reason"] == "roll back release"
    assert (entry["oldValue"], entry["newValue"]) == ("model-2", "model-1")
    assert (await history_actions(client, admin_headers, "sla.response_time_ms"))[0] == "restore"
    # Unchanged values get no new version.
    assert await history_actions(client, admin_headers, "sla.success_rate_min") == ["set"]
    diff = await client.get(f"{API}/snapshots/{before['id']}/diff", headers=admin_headers)
    assert summary(diff.json()) == {"added": [], "removed": [], "changed": []}
    again = await restore(client, admin_headers, before["id"])
    assert summary(again["diff"]) == {"added": [], "removed": [], "changed": []}
    assert (await setting(client, admin_headers, "llm.model"))["version"] == 3


async def test_restore_default_reason_names_the_snapshot(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")
    taken = await snapshot(client, admin_headers, "known-good")
    await set_setting(client, admin_headers, "llm.model", "model-2")

    await restore(client, admin_headers, taken["id"])

    log = await client.get(f"{API}/history/llm.model", headers=admin_headers)
    assert log.json()["items"][0]["reason"] == "restore snapshot 'known-good'"


async def test_restore_reports_unknown_keys_and_applies_the_rest(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")
    real = await snapshot(client, admin_headers, "real")
    shown = await client.get(f"{API}/snapshots/{real['id']}", headers=admin_headers)
    entries = shown.json()["values"]
    await set_setting(client, admin_headers, "llm.model", "model-2")
    # A key deleted from the registry since: the API cannot delete keys, so write the row.
    async with unit_of_work(db) as session:
        row = ConfigSnapshot(
            name="from-an-older-release",
            description=None,
            taken_at=utcnow(),
            content={
                "values": [
                    {"key": "legacy.removed_key", "scope": {}, "value": 42},
                    *entries,
                    {"key": "legacy.other", "scope": {"persona": "admin"}, "value": "x"},
                ]
            },
            created_by="tests",
            created_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        old_id = row.id

    dry = await restore(client, admin_headers, old_id, dryRun=True)
    report = await restore(client, admin_headers, old_id)

    assert dry["unknownKeys"] == ["legacy.removed_key", "legacy.other"]
    assert dry["applied"] is False
    assert report["unknownKeys"] == ["legacy.removed_key", "legacy.other"]
    assert report["applied"] is True
    assert report["errors"] == []
    assert summary(report["diff"])["changed"] == [("llm.model", "{}", "model-2", "model-1")]
    assert await value_of(client, admin_headers, "llm.model") == "model-1"
    colours = await value_of(client, admin_headers, "persona.colors", persona="underwriter")
    assert colours["primary"] == "#059669"


async def test_restore_of_a_value_the_schema_now_rejects_is_422_and_applies_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register_limit(client, admin_headers)
    await set_setting(client, admin_headers, "test.limit", 50)
    await set_setting(client, admin_headers, "llm.model", "model-1")
    taken = await snapshot(client, admin_headers, "wide-limit")
    await set_setting(client, admin_headers, "test.limit", 10)
    await deactivate(client, admin_headers, "test.limit", 1)
    tightened = await client.put(
        f"{API}/registry/test.limit",
        json={"schema": {"type": "integer", "minimum": 0, "maximum": 40}},
        headers=admin_headers,
    )
    assert tightened.status_code == 200, tightened.text
    await set_setting(client, admin_headers, "llm.model", "model-2")
    await set_setting(client, admin_headers, "sla.response_time_ms", 900)

    response = await client.post(
        f"{API}/snapshots/{taken['id']}/restore", json={}, headers=admin_headers
    )

    body = assert_problem(response, 422, "nothing was applied", slug="validation")
    assert body["errors"][0]["rule"] == "maximum"
    assert body["errors"][0]["loc"][0] == "values"
    assert body["errors"][0]["loc"][-1] == "value"
    assert body["report"]["applied"] is False
    assert body["report"]["errors"] == body["errors"]
    assert await value_of(client, admin_headers, "test.limit") == 10
    assert await value_of(client, admin_headers, "llm.model") == "model-2"
    assert await value_of(client, admin_headers, "sla.response_time_ms") == 900
    assert "restore" not in await history_actions(client, admin_headers, "llm.model")
    dry = await restore(client, admin_headers, taken["id"], dryRun=True)
    assert dry["errors"] and dry["applied"] is False


async def test_restore_of_a_key_needing_approval_opens_change_requests(
    client: httpx.AsyncClient, admin_headers: dict[str, str], other_admin: dict[str, str]
) -> None:
    taken = await snapshot(client, admin_headers, "rules-provider")
    requested = await set_setting(client, admin_headers, "llm.provider", "openai", expect=202)
    request_id = requested["changeRequest"]["id"]
    approved = await client.post(
        f"{API}/change-requests/{request_id}/approve", json={}, headers=other_admin
    )
    assert approved.status_code == 200, approved.text

    report = await restore(client, admin_headers, taken["id"])

    assert report["applied"] is True
    assert len(report["changeRequests"]) == 1
    assert await value_of(client, admin_headers, "llm.provider") == "openai"  # not yet
    opened = await client.get(
        f"{API}/change-requests/{report['changeRequests'][0]}", headers=admin_headers
    )
    assert opened.json()["action"] == "deactivate"
    assert opened.json()["status"] == "pending"
    ok = await client.post(
        f"{API}/change-requests/{report['changeRequests'][0]}/approve",
        json={},
        headers=other_admin,
    )
    assert ok.status_code == 200, ok.text
    assert await value_of(client, admin_headers, "llm.provider") == "rules"


async def test_restore_needs_an_admin_and_a_snapshot(
    client: httpx.AsyncClient, admin_headers: dict[str, str], underwriter_headers: dict[str, str]
) -> None:
    taken = await snapshot(client, admin_headers, "s")
    url = f"{API}/snapshots/{taken['id']}/restore"

    assert_problem(await client.post(url, json={}, headers=underwriter_headers), 403)
    assert_problem(await client.post(url, json={}), 401)
    assert_problem(
        await client.post(f"{API}/snapshots/999999/restore", json={}, headers=admin_headers), 404
    )


# --- export -------------------------------------------------------------------------------


async def test_export_live_configuration_as_json(
    client: httpx.AsyncClient, admin_headers: dict[str, str], underwriter_headers: dict[str, str]
) -> None:
    await register_secret(client, admin_headers)
    await set_setting(client, admin_headers, "integrations.api_key", SECRET)
    await set_setting(client, admin_headers, "llm.model", "model-1")
    await set_setting(
        client, admin_headers, "auth.session_days", 3, scope={"persona": "underwriter"}
    )

    response = await client.get(f"{API}/export", headers=underwriter_headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="jarvis-config.json";'
    )
    assert SECRET not in response.text
    document = response.json()
    assert document["format"] == "jarvis-config"
    assert document["formatVersion"] == 1
    assert document["exportedAt"]
    assert "live" in document["source"]
    values = by_key(document["values"])
    assert len(values) == PERSONA_COLOURS + 3
    assert values[("llm.model", None)] == {"key": "llm.model", "scope": {}, "value": "model-1"}
    assert values[("auth.session_days", "underwriter")]["value"] == 3
    assert values[("integrations.api_key", None)] == {
        "key": "integrations.api_key",
        "scope": {},
        "value": MASK,
        "secret": True,
    }
    assert_problem(await client.get(f"{API}/export"), 401)
    assert_problem(
        await client.get(f"{API}/export", params={"format": "xml"}, headers=admin_headers), 422
    )


async def test_export_live_configuration_as_yaml(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "yes")  # YAML 1.1 would read a bool
    await set_setting(client, admin_headers, "sla.success_rate_min", 0.5)

    as_yaml = await client.get(f"{API}/export", params={"format": "yaml"}, headers=admin_headers)
    as_json = await client.get(f"{API}/export", headers=admin_headers)

    assert as_yaml.status_code == 200, as_yaml.text
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert as_yaml.headers["content-disposition"].startswith(
        'attachment; filename="jarvis-config.yaml";'
    )
    document = yaml.safe_load(as_yaml.text)
    assert document["format"] == "jarvis-config"
    assert document["values"] == as_json.json()["values"]
    assert by_key(document["values"])[("llm.model", None)]["value"] == "yes"


async def test_export_a_snapshot_as_json_and_yaml(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await register_secret(client, admin_headers)
    await set_setting(client, admin_headers, "integrations.api_key", SECRET)
    await set_setting(client, admin_headers, "llm.model", "model-1")
    taken = await snapshot(client, admin_headers, "release-1")
    await set_setting(client, admin_headers, "llm.model", "model-2")

    as_json = await client.get(f"{API}/snapshots/{taken['id']}/export", headers=admin_headers)
    as_yaml = await client.get(
        f"{API}/snapshots/{taken['id']}/export", params={"format": "yaml"}, headers=admin_headers
    )
    missing = await client.get(f"{API}/snapshots/999999/export", headers=admin_headers)

    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-disposition"] == (
        'attachment; filename="jarvis-config-release-1.json"; '
        "filename*=UTF-8''jarvis-config-release-1.json"
    )
    document = as_json.json()
    assert document["source"]["snapshot"] == "release-1"
    assert document["source"]["takenAt"]
    values = by_key(document["values"])
    assert values[("llm.model", None)]["value"] == "model-1"
    assert values[("integrations.api_key", None)]["value"] == MASK
    assert SECRET not in as_json.text and SECRET not in as_yaml.text
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text)["values"] == document["values"]
    assert_problem(missing, 404)


async def test_export_of_a_snapshot_with_a_non_latin1_name(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """Names are free text; the download's Content-Disposition must still be a valid header
    (RFC 6266 ``filename*``) instead of failing on latin-1 encoding."""
    taken = await snapshot(client, admin_headers, "Veröffentlichung 日本 №1")

    response = await client.get(f"{API}/snapshots/{taken['id']}/export", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert response.json()["source"]["snapshot"] == "Veröffentlichung 日本 №1"
    header = Message()
    header["content-disposition"] = response.headers["content-disposition"]
    fallback = header.get_filename()
    assert fallback is not None and fallback.isascii() and '"' not in fallback
    exact = response.headers["content-disposition"].split("filename*=UTF-8''", 1)[1]
    assert unquote(exact) == "jarvis-config-Veröffentlichung 日本 №1.json"


# --- import -------------------------------------------------------------------------------


def document(*values: dict[str, Any]) -> dict[str, Any]:
    return {"format": "jarvis-config", "formatVersion": 1, "values": list(values)}


async def import_doc(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any] | str | bytes,
    *,
    content_type: str = "application/json",
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    if isinstance(content, str):
        content = content.encode()
    return await client.post(
        f"{API}/import",
        content=content,
        params=params or {},
        headers={**headers, "Content-Type": content_type},
    )


async def test_import_json_applies_the_values(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")
    await set_setting(client, admin_headers, "agent.max_retries", 4)

    response = await import_doc(
        client,
        admin_headers,
        document(
            {"key": "llm.model", "scope": {}, "value": "model-2"},
            {"key": "auth.session_days", "scope": {"persona": "underwriter"}, "value": 3},
            {"key": "agent.max_retries", "value": 4},
        ),
        params={"reason": "promote from staging"},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dryRun"] is False and report["applied"] is True
    assert summary(report["diff"]) == {
        "added": [("auth.session_days", '{"persona": "underwriter"}', 3)],
        "removed": [],
        "changed": [("llm.model", "{}", "model-1", "model-2")],
    }
    assert report["diff"]["unchanged"] == 1
    assert await value_of(client, admin_headers, "llm.model") == "model-2"
    assert await value_of(client, admin_headers, "auth.session_days", persona="underwriter") == 3
    assert (await setting(client, admin_headers, "agent.max_retries"))["version"] == 1
    log = await client.get(f"{API}/history/llm.model", headers=admin_headers)
    entry = log.json()["items"][0]
    assert (entry["action"], entry["reason"]) == ("import", "promote from staging")
    assert (entry["oldValue"], entry["newValue"]) == ("model-1", "model-2")
    # Values the document does not name stay (no prune).
    colours = await setting(client, admin_headers, "persona.colors", persona="admin")
    assert colours["source"] == "persona"


async def test_import_yaml_applies_the_values(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    text = (
        "format: jarvis-config\n"
        "formatVersion: 1\n"
        "values:\n"
        "  - key: llm.model\n"
        "    scope: {}\n"
        "    value: '2024-01-01'\n"
        "  - key: sla.success_rate_min\n"
        "    scope: {persona: underwriter}\n"
        "    value: 0.8\n"
    )

    response = await import_doc(client, admin_headers, text, content_type="application/yaml")

    assert response.status_code == 200, response.text
    assert response.json()["applied"] is True
    assert await value_of(client, admin_headers, "llm.model") == "2024-01-01"
    assert (
        await value_of(client, admin_headers, "sla.success_rate_min", persona="underwriter") == 0.8
    )


async def test_import_yaml_keeps_unquoted_dates_as_text(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    text = (
        "format: jarvis-config\nformatVersion: 1\n"
        "values:\n  - {key: llm.model, value: 2024-01-01}\n"
    )

    response = await import_doc(client, admin_headers, text, content_type="application/x-yaml")

    assert response.status_code == 200, response.text
    assert await value_of(client, admin_headers, "llm.model") == "2024-01-01"


async def test_import_dry_run_reports_without_applying(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")

    response = await import_doc(
        client,
        admin_headers,
        document(
            {"key": "llm.model", "value": "model-2"},
            {"key": "agent.max_retries", "value": 7},
        ),
        params={"dryRun": "true"},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dryRun"] is True and report["applied"] is False
    assert summary(report["diff"]) == {
        "added": [("agent.max_retries", "{}", 7)],
        "removed": [],
        "changed": [("llm.model", "{}", "model-1", "model-2")],
    }
    assert await value_of(client, admin_headers, "llm.model") == "model-1"
    assert (await setting(client, admin_headers, "agent.max_retries"))["source"] == "default"
    assert await history_actions(client, admin_headers, "llm.model") == ["set"]


async def test_import_with_an_unknown_key_is_422_and_applies_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")
    body = document(
        {"key": "llm.model", "value": "model-2"},
        {"key": "no.such_key", "value": 1},
        {"key": "agent.max_retries", "value": 7},
    )

    response = await import_doc(client, admin_headers, body)
    dry = await import_doc(client, admin_headers, body, params={"dryRun": "true"})

    problem = assert_problem(response, 422, "nothing was applied", slug="validation")
    assert problem["report"]["unknownKeys"] == ["no.such_key"]
    assert problem["report"]["applied"] is False
    assert any("no.such_key" in e["msg"] for e in problem["errors"])
    assert await value_of(client, admin_headers, "llm.model") == "model-1"
    assert (await setting(client, admin_headers, "agent.max_retries"))["source"] == "default"
    assert dry.status_code == 200, dry.text
    assert dry.json()["unknownKeys"] == ["no.such_key"]
    assert dry.json()["errors"]


async def test_import_with_invalid_values_is_422_and_applies_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await import_doc(
        client,
        admin_headers,
        document(
            {"key": "llm.model", "value": "model-2"},
            {"key": "auth.session_days", "value": 0},
            {"key": "persona.colors", "scope": {"agentId": 1}, "value": {}},
            {"key": "auth.session_days", "scope": {"persona": "astronaut"}, "value": 3},
        ),
    )

    problem = assert_problem(response, 422, "nothing was applied")
    locs = [e["loc"] for e in problem["errors"]]
    assert ["values", 1, "value"] in locs
    assert ["values", 2, "scope"] in locs
    assert ["values", 3, "scope", "persona"] in locs
    rule = next(e for e in problem["errors"] if e["loc"] == ["values", 1, "value"])
    assert rule["rule"] == "minimum" and rule["jsonPath"] == "$"
    assert (await setting(client, admin_headers, "llm.model"))["source"] == "default"


async def test_import_entry_without_a_value_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """As for ``POST /setting``, a missing value is a mistake, not null."""
    created = await client.post(
        f"{API}/registry",
        json={
            "key": "test.nullable",
            "description": "A text that may be null.",
            "schema": {"type": ["string", "null"]},
            "default": "kept",
            "scopes": ["global"],
        },
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text

    response = await import_doc(client, admin_headers, document({"key": "test.nullable"}))

    assert_problem(response, 422, "value")
    assert (await setting(client, admin_headers, "test.nullable"))["value"] == "kept"


async def test_import_rejects_unreadable_documents(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    aliases = (
        "format: jarvis-config\n"
        "formatVersion: 1\n"
        "values:\n"
        "  - &entry {key: llm.model, value: model-2}\n"
        "  - *entry\n"
    )
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    merge = (
        "format: jarvis-config\nformatVersion: 1\nbase: &base {key: llm.model}\n"
        "values:\n  - <<: *base\n    value: model-2\n"
    )

    alias = await import_doc(client, admin_headers, aliases, content_type="application/yaml")
    expansion = await import_doc(client, admin_headers, bomb, content_type="application/yaml")
    merged = await import_doc(client, admin_headers, merge, content_type="text/yaml")
    broken_yaml = await import_doc(
        client, admin_headers, "values: [unclosed", content_type="application/yaml"
    )
    python_tag = await import_doc(
        client,
        admin_headers,
        "!!python/object/apply:os.system ['true']",
        content_type="application/yaml",
    )
    broken_json = await import_doc(client, admin_headers, b'{"format": "jarvis-config",')
    not_utf8 = await import_doc(client, admin_headers, b'{"format": "\xff"}')

    assert_problem(alias, 400, "aliases are not allowed", slug="bad-request")
    assert_problem(expansion, 400, "aliases")
    assert_problem(merged, 400, "aliases")
    assert_problem(broken_yaml, 400, "cannot be parsed")
    assert_problem(python_tag, 400, "cannot be parsed")
    assert_problem(broken_json, 400, "cannot be parsed")
    assert_problem(not_utf8, 400, "UTF-8")
    assert (await setting(client, admin_headers, "llm.model"))["source"] == "default"


async def test_import_wrong_shape_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    wrong_format = await import_doc(
        client, admin_headers, {"format": "other", "formatVersion": 1, "values": []}
    )
    wrong_version = await import_doc(
        client, admin_headers, {"format": "jarvis-config", "formatVersion": 2, "values": []}
    )
    a_list = await import_doc(client, admin_headers, b"[]")
    bad_key = await import_doc(client, admin_headers, document({"key": "Not A Key", "value": 1}))
    nul = await import_doc(
        client, admin_headers, document({"key": "llm.model", "value": "a\u0000b"})
    )

    assert_problem(wrong_format, 422, "not a jarvis-config export")
    assert_problem(wrong_version, 422)
    assert_problem(a_list, 422)
    assert_problem(bad_key, 422)
    assert_problem(nul, 422, "NUL")


async def test_import_unsupported_content_type_is_415(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = json.dumps(document({"key": "llm.model", "value": "model-2"}))

    for content_type in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        response = await import_doc(client, admin_headers, body, content_type=content_type)
        assert_problem(response, 415, "application/json", slug="unsupported-media-type")
    assert (await setting(client, admin_headers, "llm.model"))["source"] == "default"


async def test_import_needs_an_admin(
    client: httpx.AsyncClient, underwriter_headers: dict[str, str]
) -> None:
    body = document({"key": "llm.model", "value": "model-2"})

    assert_problem(await import_doc(client, underwriter_headers, body), 403)
    assert_problem(await import_doc(client, {}, body), 401)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
async def test_export_change_import_round_trip(
    client: httpx.AsyncClient, admin_headers: dict[str, str], fmt: str
) -> None:
    await register_secret(client, admin_headers)
    await set_setting(client, admin_headers, "integrations.api_key", SECRET + "-1")
    await set_setting(client, admin_headers, "llm.model", "model-1")
    await set_setting(
        client, admin_headers, "auth.session_days", 3, scope={"persona": "underwriter"}
    )
    await set_setting(client, admin_headers, "sla.success_rate_min", 0.9)
    exported = await client.get(f"{API}/export", params={"format": fmt}, headers=admin_headers)
    assert exported.status_code == 200, exported.text

    await set_setting(client, admin_headers, "integrations.api_key", SECRET + "-2")
    await set_setting(client, admin_headers, "llm.model", "model-2")
    await set_setting(
        client, admin_headers, "auth.session_days", 9, scope={"persona": "underwriter"}
    )
    await deactivate(client, admin_headers, "sla.success_rate_min", 1)
    await set_setting(client, admin_headers, "agent.max_retries", 7)

    media = "application/yaml" if fmt == "yaml" else "application/json"
    response = await import_doc(client, admin_headers, exported.content, content_type=media)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["applied"] is True
    assert report["skipped"] == [
        {"key": "integrations.api_key", "scope": {}, "reason": "secret value masked"}
    ]
    assert await value_of(client, admin_headers, "llm.model") == "model-1"
    assert await value_of(client, admin_headers, "auth.session_days", persona="underwriter") == 3
    assert await value_of(client, admin_headers, "sla.success_rate_min") == 0.9
    assert await value_of(client, admin_headers, "agent.max_retries") == 7  # not pruned
    assert await value_of(client, admin_headers, "integrations.api_key") == MASK
    values = await client.get(f"{API}/values/integrations.api_key", headers=admin_headers)
    assert values.json()["total"] == 2  # the masked export did not overwrite the secret
    assert summary(report["diff"])["changed"] == sorted(
        [
            ("auth.session_days", '{"persona": "underwriter"}', 9, 3),
            ("llm.model", "{}", "model-2", "model-1"),
        ]
    )
    again = await import_doc(client, admin_headers, exported.content, content_type=media)
    assert summary(again.json()["diff"]) == {"added": [], "removed": [], "changed": []}


async def test_import_of_a_key_needing_approval_opens_a_change_request(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await import_doc(
        client,
        admin_headers,
        document(
            {"key": "llm.provider", "value": "openai"},
            {"key": "llm.model", "value": "model-2"},
        ),
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["applied"] is True
    assert len(report["changeRequests"]) == 1
    assert await value_of(client, admin_headers, "llm.provider") == "rules"
    assert await value_of(client, admin_headers, "llm.model") == "model-2"
    pending = await client.get(
        f"{API}/change-requests", params={"status": "pending"}, headers=admin_headers
    )
    request = pending.json()["items"][0]
    assert request["id"] == report["changeRequests"][0]
    assert (request["key"], request["payload"]["value"]) == ("llm.provider", "openai")


async def test_import_secret_with_a_real_value_is_applied(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: Any
) -> None:
    await register_secret(client, admin_headers)

    response = await import_doc(
        client, admin_headers, document({"key": "integrations.api_key", "value": SECRET})
    )

    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    assert response.json()["diff"]["added"] == [
        {"key": "integrations.api_key", "scope": {}, "value": MASK}
    ]
    assert await app.state.config.get("integrations.api_key") == SECRET


async def test_import_with_prune_deactivates_values_the_document_does_not_name(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await set_setting(client, admin_headers, "llm.model", "model-1")
    await set_setting(client, admin_headers, "agent.max_retries", 7)
    exported = await client.get(f"{API}/export", headers=admin_headers)
    await set_setting(client, admin_headers, "sla.response_time_ms", 900)

    response = await import_doc(client, admin_headers, exported.content, params={"prune": "true"})

    assert response.status_code == 200, response.text
    assert summary(response.json()["diff"])["removed"] == [("sla.response_time_ms", "{}", 900)]
    assert (await setting(client, admin_headers, "sla.response_time_ms"))["source"] == "default"
    assert await value_of(client, admin_headers, "agent.max_retries") == 7
    assert (await history_actions(client, admin_headers, "sla.response_time_ms"))[0] == "import"
