"""GET /api/audit: the ledger newest first, filtered and paged, for holders of audit:read;
a refusal is itself recorded in the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from jarvis.audit.models import AuditTrail
from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import as_utc
from jarvis.personas.grants import set_persona_permissions
from tests.factories import TEST_ACTOR, bearer, create_user, token_for

PROBLEM = "application/problem+json"
ENTITY = "audit_api_test"


async def arrange(db: Database) -> tuple[dict[str, str], list[AuditTrail]]:
    """An auditor's headers, and every ledger entry after arranging a varied set."""
    auditor = await create_user(db, persona="admin", email="auditor@example.com")
    headers = bearer(await token_for(db, auditor))
    ann = Actor("ann@example.com", 101)
    bob = Actor("bob@example.com", 102)
    plan: list[tuple[Actor, str, str, str | None]] = [
        (ann, "auth.login", "user_session", "1"),
        (bob, "auth.login", "user_session", "2"),
        (ann, "agent.create", ENTITY, "7"),
        (bob, "auth.forbidden", "route", "GET /api/audit"),
        (Actor.system("cli"), "token.create", ENTITY, "8"),
        (ann, "agent.update", ENTITY, "7"),
        (bob, "authz.other", ENTITY, None),  # not under "auth."
        (ann, "auth.logout", "user_session", "1"),
    ]
    for actor, action, entity_type, entity_id in plan:
        async with unit_of_work(db) as s:
            await record_audit(
                s,
                actor=actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                before={"n": 1} if action == "agent.update" else None,
                after={"action": action},
            )
    async with unit_of_work(db, write=False) as s:
        entries = list(await s.scalars(select(AuditTrail).order_by(AuditTrail.id.desc())))
    return headers, entries


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[int]:
    response = await client.get("/api/audit", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, (params, response.text)
    body = response.json()
    assert body["total"] >= len(body["items"])
    return [item["id"] for item in body["items"]]


async def test_entries_come_newest_first_with_every_field(
    client: httpx.AsyncClient, db: Database
) -> None:
    headers, entries = await arrange(db)

    response = await client.get("/api/audit", params={"limit": 3}, headers=headers)

    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (len(entries), 3, 0)
    assert [item["id"] for item in page["items"]] == [e.id for e in entries[:3]]
    newest = page["items"][0]
    assert set(newest) == {
        "id",
        "createdAt",
        "actor",
        "actorId",
        "action",
        "entityType",
        "entityId",
        "before",
        "after",
        "entryHash",
    }
    latest = entries[0]
    assert (newest["action"], newest["actor"], newest["actorId"]) == (
        latest.action,
        latest.actor,
        latest.actor_id,
    )
    assert newest["entryHash"] == latest.entry_hash
    assert as_utc(datetime.fromisoformat(newest["createdAt"])) == latest.created_at
    update = next(i for i in await _items(client, headers) if i["action"] == "agent.update")
    assert (update["before"], update["after"]) == ({"n": 1}, {"action": "agent.update"})
    second = await client.get("/api/audit", params={"limit": 3, "offset": 3}, headers=headers)
    assert [i["id"] for i in second.json()["items"]] == [e.id for e in entries[3:6]]


async def _items(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/audit", params={"limit": 100}, headers=headers)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_filters_match_a_reference_model(client: httpx.AsyncClient, db: Database) -> None:
    headers, entries = await arrange(db)
    middle = entries[len(entries) // 2]

    cases: list[tuple[dict[str, Any], Any]] = [
        ({"action": "auth.login"}, lambda e: e.action == "auth.login"),
        ({"action": "auth.*"}, lambda e: e.action.startswith("auth.")),
        ({"action": "agent.*"}, lambda e: e.action.startswith("agent.")),
        ({"actor": "ANN@example.com"}, lambda e: e.actor == "ann@example.com"),
        ({"actor": "cli"}, lambda e: e.actor == "cli"),
        ({"actorId": 102}, lambda e: e.actor_id == 102),
        ({"entityType": ENTITY}, lambda e: e.entity_type == ENTITY),
        (
            {"entityType": ENTITY, "entityId": "7"},
            lambda e: e.entity_type == ENTITY and e.entity_id == "7",
        ),
        (
            {"action": "auth.*", "actor": "bob@example.com"},
            lambda e: e.action.startswith("auth.") and e.actor == "bob@example.com",
        ),
        ({"since": middle.created_at.isoformat()}, lambda e: e.created_at >= middle.created_at),
        ({"until": middle.created_at.isoformat()}, lambda e: e.created_at < middle.created_at),
        ({"afterId": middle.id}, lambda e: e.id > middle.id),
        ({"beforeId": middle.id}, lambda e: e.id < middle.id),
        (
            {"afterId": entries[-1].id, "beforeId": entries[0].id},
            lambda e: entries[-1].id < e.id < entries[0].id,
        ),
        ({"action": "no.such.action"}, lambda e: False),
    ]
    for params, keep in cases:
        expected = [e.id for e in entries if keep(e)]
        assert await ids(client, headers, **params) == expected, params
        if params != {"action": "no.such.action"}:
            assert 0 < len(expected) < len(entries), params  # each case really filters


async def test_cursor_paging_walks_the_whole_ledger(
    client: httpx.AsyncClient, db: Database
) -> None:
    headers, entries = await arrange(db)

    seen: list[int] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        page = await ids(client, headers, **params)
        if not page:
            break
        seen.extend(page)
        params["beforeId"] = page[-1]

    assert seen == [e.id for e in entries]


async def test_bad_queries_are_422(client: httpx.AsyncClient, db: Database) -> None:
    headers, _ = await arrange(db)

    for params in (
        {"limit": 101},
        {"limit": 0},
        {"offset": -1},
        {"action": "auth*.x"},
        {"action": "*"},
        {"action": "a*b*"},
        {"since": "yesterday"},
        {"actorId": "me"},
    ):
        response = await client.get("/api/audit", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_reading_needs_audit_read_and_a_refusal_is_audited(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    headers, _ = await arrange(db)
    reader = await create_user(db, persona="underwriter")
    async with unit_of_work(db) as s:
        await set_persona_permissions(s, "underwriter", ["agents:write"], actor=TEST_ACTOR)
    uw_headers = bearer(await token_for(db, reader))

    refused = await client.get("/api/audit", headers=uw_headers)

    assert refused.status_code == 403, refused.text
    assert "audit:read" in refused.json()["detail"]
    assert (await client.get("/api/audit")).status_code == 401
    body = (
        await client.get(
            "/api/audit", params={"action": "auth.forbidden", "actorId": reader.id}, headers=headers
        )
    ).json()
    (entry,) = body["items"]
    assert (entry["actor"], entry["entityType"]) == (reader.email, "route")
    assert entry["entityId"] == "GET /api/audit"
    assert entry["after"]["path"] == "/api/audit"

    # Granting audit:read opens it.
    async with unit_of_work(db) as s:
        await set_persona_permissions(
            s, "underwriter", ["agents:write", "audit:read"], actor=TEST_ACTOR
        )
    app.state.credentials.clear()  # the grant was made behind the API's back
    assert (await client.get("/api/audit", headers=uw_headers)).status_code == 200
