"""Four eyes hold for a key's definition too: changing a key that needs approval (turning
approval off, un-masking a secret, a new default) opens a change request."""

from __future__ import annotations

import httpx

from jarvis.db.engine import Database
from tests.factories import bearer, create_user, token_for
from tests.problems import assert_problem

KEY = "/api/config/registry/llm.provider"


async def two_admins(db: Database) -> tuple[dict[str, str], dict[str, str]]:
    alice = await create_user(db, persona="admin")
    bob = await create_user(db, persona="admin")
    return bearer(await token_for(db, alice)), bearer(await token_for(db, bob))


async def test_turning_approval_off_needs_a_second_admin(
    client: httpx.AsyncClient, db: Database
) -> None:
    alice, bob = await two_admins(db)
    before = (await client.get(KEY, headers=alice)).json()

    asked = await client.put(KEY, json={"requiresApproval": False}, headers=alice)

    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["action"] == "registry"
    assert request["payload"] == {"requiresApproval": False, "revision": before["revision"]}
    unchanged = (await client.get(KEY, headers=alice)).json()
    assert unchanged["requiresApproval"] is True
    assert unchanged["revision"] == before["revision"]
    # Still four eyes for values meanwhile.
    pending = await client.post(
        "/api/config/setting", json={"key": "llm.provider", "value": "openai"}, headers=alice
    )
    assert pending.status_code == 202

    own = await client.post(
        f"/api/config/change-requests/{request['id']}/approve", json={}, headers=alice
    )
    assert_problem(own, 403, "your own")
    approved = await client.post(
        f"/api/config/change-requests/{request['id']}/approve", json={}, headers=bob
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    after = (await client.get(KEY, headers=alice)).json()
    assert after["requiresApproval"] is False
    assert after["revision"] == before["revision"] + 1
    history = (await client.get("/api/config/history/llm.provider", headers=alice)).json()
    [update] = [e for e in history["items"] if e["action"] == "registry.update"]
    assert update["changeRequestId"] == request["id"]
    direct = await client.post(
        "/api/config/setting", json={"key": "llm.provider", "value": "openai"}, headers=alice
    )
    assert direct.status_code == 201, direct.text


async def test_a_registry_request_is_checked_when_made_and_again_when_approved(
    client: httpx.AsyncClient, db: Database
) -> None:
    alice, bob = await two_admins(db)
    # A default the schema refuses is refused at once, with no request opened.
    bad = await client.put(KEY, json={"default": "gemini"}, headers=alice)
    assert_problem(bad, 422)
    listed = await client.get("/api/config/change-requests", headers=alice)
    assert listed.json()["total"] == 0

    first = (await client.put(KEY, json={"description": "First."}, headers=alice)).json()
    second = (await client.put(KEY, json={"description": "Second."}, headers=alice)).json()
    ok = await client.post(
        f"/api/config/change-requests/{first['id']}/approve", json={}, headers=bob
    )
    assert ok.status_code == 200, ok.text
    # The second was asked against the revision the first has since replaced.
    stale = await client.post(
        f"/api/config/change-requests/{second['id']}/approve", json={}, headers=bob
    )
    assert_problem(stale, 412, "revision")
    assert (await client.get(KEY, headers=alice)).json()["description"] == "First."


async def test_keys_without_approval_change_at_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    alice, _ = await two_admins(db)
    changed = await client.put(
        "/api/config/registry/llm.model", json={"description": "Model name."}, headers=alice
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "Model name."
    assert changed.headers["etag"] == f'"{changed.json()["revision"]}"'
