"""User administration (/api/users) and persona permissions (/api/permissions,
PUT /api/personas/{key}/permissions): paging and filters, privilege changes that revoke
sessions and take effect at once (the principal cache is on), the last admin, unlocking."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import User, UserSession
from jarvis.core.permissions import PERMISSIONS
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.personas.grants import set_persona_permissions
from tests.factories import TEST_ACTOR, bearer, create_user, login, token_for

PROBLEM = "application/problem+json"


async def audit(db: Database, action: str) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as s:
        rows = await s.scalars(
            select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        )
        return list(rows)


async def admin_headers_of(db: Database) -> tuple[User, dict[str, str]]:
    admin = await create_user(db, persona="admin")
    return admin, bearer(await token_for(db, admin))


async def grant_underwriter(db: Database, *permissions: str) -> None:
    async with unit_of_work(db) as s:
        await set_persona_permissions(s, "underwriter", permissions, actor=TEST_ACTOR)


async def live_sessions(db: Database, user: User) -> int:
    async with unit_of_work(db, write=False) as s:
        rows = await s.scalars(
            select(UserSession.id).where(
                UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
            )
        )
        return len(rows.all())


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


# --- listing ------------------------------------------------------------------------------


async def test_lists_users_with_filters_and_pages(client: httpx.AsyncClient, db: Database) -> None:
    admin, headers = await admin_headers_of(db)
    ann = await create_user(db, persona="underwriter", email="ann.lee@example.com")
    bob = await create_user(db, persona="underwriter", email="bob@insure.test")
    async with unit_of_work(db) as s:
        await s.execute(update(User).where(User.id == bob.id).values(last_name="Annerson"))

    everyone = await client.get("/api/users", headers=headers)
    assert everyone.status_code == 200, everyone.text
    page = everyone.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)
    assert [u["email"] for u in page["items"]] == sorted([admin.email, ann.email, bob.email])
    first = next(u for u in page["items"] if u["id"] == ann.id)
    assert set(first) == {
        "id",
        "email",
        "persona",
        "firstName",
        "lastName",
        "isActive",
        "lastLoginAt",
        "createdAt",
        "failedLoginCount",
        "lockedUntil",
        "hasPassword",
    }
    assert (first["persona"], first["isActive"], first["hasPassword"]) == (
        "underwriter",
        True,
        True,
    )

    async def emails(**params: object) -> list[str]:
        response = await client.get("/api/users", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [u["email"] for u in response.json()["items"]]

    assert await emails(persona="underwriter") == [ann.email, bob.email]
    assert await emails(persona="admin") == [admin.email]
    assert await emails(q="ANN") == [ann.email, bob.email]  # e-mail or last name, any case
    assert await emails(q="insure") == [bob.email]
    assert await emails(q="ann", persona="underwriter", limit=1, offset=1) == [bob.email]
    assert await emails(q="%") == []  # LIKE wildcards are text
    assert await emails(q="nobody") == []


async def test_user_administration_needs_users_admin(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    await grant_underwriter(db, "agents:write")
    headers = bearer(await token_for(db, user))

    for method, path, body in (
        ("GET", "/api/users", None),
        ("GET", f"/api/users/{user.id}", None),
        ("PATCH", f"/api/users/{user.id}", {"persona": "admin"}),
        ("POST", f"/api/users/{user.id}/unlock", None),
        ("PUT", "/api/personas/underwriter/permissions", {"permissions": ["users:admin"]}),
    ):
        refused = await client.request(method, path, json=body, headers=headers)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "users:admin" in refused.json()["detail"]
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
    async with unit_of_work(db, write=False) as s:
        stored = await s.get(User, user.id)
        assert stored is not None and stored.persona == "underwriter"


async def test_one_user_and_unknown_ids(client: httpx.AsyncClient, db: Database) -> None:
    _, headers = await admin_headers_of(db)
    user = await create_user(db, persona="underwriter")

    one = await client.get(f"/api/users/{user.id}", headers=headers)
    assert one.status_code == 200, one.text
    assert (one.json()["id"], one.json()["email"]) == (user.id, user.email)
    for method, path, body in (
        ("GET", "/api/users/999999", None),
        ("PATCH", "/api/users/999999", {"isActive": False}),
        ("POST", "/api/users/999999/unlock", None),
    ):
        missing = await client.request(method, path, json=body, headers=headers)
        assert missing.status_code == 404, (method, path, missing.text)
        assert missing.headers["content-type"].startswith(PROBLEM)


# --- privilege changes --------------------------------------------------------------------


async def test_a_persona_change_revokes_sessions_and_takes_effect_at_once(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    admin, headers = await admin_headers_of(db)
    user = await create_user(db, persona="underwriter")
    await grant_underwriter(db)
    token = bearer(await token_for(db, user))
    async with browser(app) as theirs:
        await login(theirs, user.email)
        assert (await theirs.get("/api/user")).status_code == 200  # cached now
        assert (await client.get("/api/users", headers=token)).status_code == 403  # cached too

        response = await client.patch(
            f"/api/users/{user.id}", json={"persona": "admin"}, headers=headers
        )

        assert response.status_code == 200, response.text
        assert response.json()["persona"] == "admin"
        # The session is gone (sign in again: a new session id for the new privileges)...
        assert (await theirs.get("/api/user")).status_code == 401
    # ...the token keeps working, with the new persona's permissions, at once.
    me = await client.get("/api/user", headers=token)
    assert me.status_code == 200 and me.json()["persona"] == "admin"
    assert (await client.get("/api/users", headers=token)).status_code == 200
    assert await live_sessions(db, user) == 0
    (entry,) = await audit(db, "user.update")
    assert (entry.actor, entry.entity_type, entry.entity_id) == (admin.email, "user", str(user.id))
    assert (entry.before, entry.after) == ({"persona": "underwriter"}, {"persona": "admin"})
    (revoked,) = await audit(db, "session.revoke")
    assert revoked.after is not None and revoked.after["userId"] == user.id


async def test_deactivation_revokes_sessions_and_refuses_tokens(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    _, headers = await admin_headers_of(db)
    user = await create_user(db, persona="underwriter")
    token = bearer(await token_for(db, user))
    async with browser(app) as theirs:
        await login(theirs, user.email)
        assert (await client.get("/api/user", headers=token)).status_code == 200  # cached

        off = await client.patch(f"/api/users/{user.id}", json={"isActive": False}, headers=headers)

        assert off.status_code == 200, off.text
        assert off.json()["isActive"] is False
        assert (await theirs.get("/api/user")).status_code == 401
        assert (await client.get("/api/user", headers=token)).status_code == 401
        relogin = await theirs.post(
            "/api/login", json={"email": user.email, "password": "correct horse battery staple"}
        )
        assert relogin.status_code == 401

    on = await client.patch(f"/api/users/{user.id}", json={"is_active": True}, headers=headers)
    assert on.status_code == 200, on.text
    assert (await client.get("/api/user", headers=token)).status_code == 200
    entries = await audit(db, "user.update")
    assert [(e.before, e.after) for e in entries] == [
        ({"isActive": True}, {"isActive": False}),
        ({"isActive": False}, {"isActive": True}),
    ]


async def test_updates_that_change_nothing_or_name_no_persona(
    client: httpx.AsyncClient, db: Database
) -> None:
    _, headers = await admin_headers_of(db)
    user = await create_user(db, persona="underwriter")

    same = await client.patch(
        f"/api/users/{user.id}", json={"persona": "underwriter", "isActive": True}, headers=headers
    )
    assert same.status_code == 200, same.text
    empty = await client.patch(f"/api/users/{user.id}", json={}, headers=headers)
    assert empty.status_code == 200, empty.text
    unknown = await client.patch(
        f"/api/users/{user.id}", json={"persona": "astronaut"}, headers=headers
    )
    assert unknown.status_code == 422, unknown.text
    assert "astronaut" in unknown.json()["detail"]
    extra = await client.patch(f"/api/users/{user.id}", json={"email": "x@y.z"}, headers=headers)
    assert extra.status_code == 422, extra.text
    assert await audit(db, "user.update") == []


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin, headers = await admin_headers_of(db)
    other = await create_user(db, persona="admin")
    async with unit_of_work(db) as s:
        await s.execute(update(User).where(User.id == other.id).values(is_active=False))

    for body in ({"persona": "underwriter"}, {"isActive": False}):
        refused = await client.patch(f"/api/users/{admin.id}", json=body, headers=headers)
        assert refused.status_code == 409, (body, refused.text)
        assert "last active admin" in refused.json()["detail"]

    # With a second active admin, either may step down.
    back = await client.patch(f"/api/users/{other.id}", json={"isActive": True}, headers=headers)
    assert back.status_code == 200, back.text
    demoted = await client.patch(
        f"/api/users/{admin.id}", json={"persona": "underwriter"}, headers=headers
    )
    assert demoted.status_code == 200, demoted.text
    other_headers = bearer(await token_for(db, other))
    last = await client.patch(
        f"/api/users/{other.id}", json={"isActive": False}, headers=other_headers
    )
    assert last.status_code == 409, last.text
    assert [e.after for e in await audit(db, "user.update")] == [
        {"isActive": True},
        {"persona": "underwriter"},
    ]


async def test_two_admins_demoting_each_other_at_once_leave_one(
    client: httpx.AsyncClient, db: Database
) -> None:
    first, first_headers = await admin_headers_of(db)
    second, second_headers = await admin_headers_of(db)

    answers = await asyncio.gather(
        client.patch(f"/api/users/{second.id}", json={"isActive": False}, headers=first_headers),
        client.patch(f"/api/users/{first.id}", json={"isActive": False}, headers=second_headers),
    )

    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    async with unit_of_work(db, write=False) as s:
        active = await s.scalars(
            select(User.id).where(User.persona == "admin", User.is_active.is_(True))
        )
        assert len(active.all()) == 1


async def test_unlock_clears_the_lockout(client: httpx.AsyncClient, db: Database) -> None:
    admin, headers = await admin_headers_of(db)
    user = await create_user(db, persona="underwriter")
    locked_until = utcnow() + timedelta(hours=1)
    async with unit_of_work(db) as s:
        await s.execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_login_count=7, locked_until=locked_until)
        )
    credentials = {"email": user.email, "password": "correct horse battery staple"}
    assert (await client.post("/api/login", json=credentials)).status_code == 401

    response = await client.post(f"/api/users/{user.id}/unlock", headers=headers)

    assert response.status_code == 200, response.text
    assert (response.json()["failedLoginCount"], response.json()["lockedUntil"]) == (0, None)
    assert (await client.post("/api/login", json=credentials)).status_code == 200
    (entry,) = await audit(db, "user.unlock")
    assert (entry.actor, entry.entity_id) == (admin.email, str(user.id))
    assert entry.before is not None and entry.before["failedLoginCount"] == 7
    assert entry.before["lockedUntil"] is not None
    assert entry.after == {"failedLoginCount": 0, "lockedUntil": None}


# --- permissions --------------------------------------------------------------------------


async def test_the_permission_catalogue(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    await grant_underwriter(db, "executions:create", "agents:write")
    headers = bearer(await token_for(db, user))

    response = await client.get("/api/permissions", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert {p["name"]: p["description"] for p in body["permissions"]} == PERMISSIONS
    assert body["personas"]["underwriter"] == ["agents:write", "executions:create"]
    assert body["personas"]["admin"] == sorted(PERMISSIONS)
    assert (await client.get("/api/permissions")).status_code == 401


async def test_editing_a_personas_permissions_takes_effect_at_once(
    client: httpx.AsyncClient, db: Database, app: FastAPI
) -> None:
    assert app.state.credentials.cache_seconds > 0  # the principal cache is on
    admin, headers = await admin_headers_of(db)
    user = await create_user(db, persona="underwriter")
    await grant_underwriter(db, "agents:write")
    uw = bearer(await token_for(db, user))
    assert (await client.get("/api/audit", headers=uw)).status_code == 403  # cached now

    granted = await client.put(
        "/api/personas/underwriter/permissions",
        json={"permissions": ["audit:read", "agents:write"]},
        headers=headers,
    )

    assert granted.status_code == 200, granted.text
    assert granted.json() == {
        "persona": "underwriter",
        "permissions": ["agents:write", "audit:read"],
        "before": ["agents:write"],
        "changed": True,
    }
    assert (await client.get("/api/audit", headers=uw)).status_code == 200

    revoked = await client.put(
        "/api/personas/underwriter/permissions", json={"permissions": []}, headers=headers
    )
    assert revoked.status_code == 200, revoked.text
    assert (await client.get("/api/audit", headers=uw)).status_code == 403
    refused = await client.post("/api/agents", json={"name": "No", "layer": "Role"}, headers=uw)
    assert refused.status_code == 403, refused.text

    entries = await audit(db, "permission.change")
    mine = [e for e in entries if e.actor == admin.email]
    assert [(e.before, e.after) for e in mine] == [
        ({"permissions": ["agents:write"]}, {"permissions": ["agents:write", "audit:read"]}),
        ({"permissions": ["agents:write", "audit:read"]}, {"permissions": []}),
    ]


async def test_persona_permission_edits_are_checked(
    client: httpx.AsyncClient, db: Database
) -> None:
    _, headers = await admin_headers_of(db)

    for key, permissions, status in (
        ("admin", ["audit:read"], 409),
        ("astronaut", ["audit:read"], 404),
        ("underwriter", ["audit:read", "agents:fly"], 422),
    ):
        response = await client.put(
            f"/api/personas/{key}/permissions", json={"permissions": permissions}, headers=headers
        )
        assert response.status_code == status, (key, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
    unchanged = await client.get("/api/permissions", headers=headers)
    assert "audit:read" not in unchanged.json()["personas"].get("underwriter", [])
