"""Sign-in sessions: listing and revoking one's own, administrators revoking anyone's,
the audit and announcement of each revocation, and the sweep of ended sessions."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import OAuthLoginState, User, UserSession
from jarvis.auth.sessions.cookies import CSRF_COOKIE, SESSION_COOKIE
from jarvis.auth.sessions.sweeper import SessionSweeper, delete_expired_sessions
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import sha256_hex
from jarvis.personas.grants import ensure_catalogue
from tests.factories import bearer, create_user, login, token_for

PROBLEM = "application/problem+json"
WAIT = 30.0  # a hang guard, never a timing assertion


@asynccontextmanager
async def browser(
    app: FastAPI, user_agent: str = "pytest-browser"
) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser (its own cookie jar) on the same application."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"User-Agent": user_agent}
    ) as client:
        yield client


async def signed_in(client: httpx.AsyncClient, email: str) -> int:
    """Sign ``client`` in; the id of its new session."""
    await login(client, email)
    sessions = (await client.get("/api/user/sessions")).json()["items"]
    (current,) = [s for s in sessions if s["current"]]
    return int(current["id"])


async def audit(db: Database, action: str) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as s:
        rows = await s.scalars(
            select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        )
        return list(rows)


async def add_session(
    db: Database,
    user: User,
    *,
    expires_in: timedelta = timedelta(days=1),
    revoked_ago: timedelta | None = None,
) -> int:
    """A session row made directly (to arrange ended ones); its id."""
    now = utcnow()
    async with unit_of_work(db) as s:
        row = UserSession(
            session_hash=sha256_hex(secrets.token_hex(16)),
            user_id=user.id,
            created_at=now - timedelta(days=30),
            expires_at=now + expires_in,
            revoked_at=now - revoked_ago if revoked_ago is not None else None,
            via="password",
        )
        s.add(row)
        await s.flush()
        return row.id


# --- one's own sessions -------------------------------------------------------------------


async def test_lists_live_sessions_and_marks_the_current_one(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    await add_session(db, user, expires_in=-timedelta(minutes=1))  # expired
    await add_session(db, user, revoked_ago=timedelta(minutes=1))  # revoked
    async with browser(app, "phone") as phone, browser(app) as stranger:
        phone_id = await signed_in(phone, user.email)
        await signed_in(stranger, other.email)
        laptop_id = await signed_in(client, user.email)

        response = await client.get("/api/user/sessions")
        from_phone = (await phone.get("/api/user/sessions")).json()

    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    by_id = {item["id"]: item for item in page["items"]}
    assert set(by_id) == {laptop_id, phone_id}
    assert [item["id"] for item in page["items"]] == [laptop_id, phone_id]  # newest first
    assert by_id[laptop_id]["current"] is True
    assert by_id[phone_id]["current"] is False
    assert by_id[phone_id]["userAgent"] == "phone"
    assert by_id[phone_id]["via"] == "password"
    assert by_id[phone_id]["ipAddress"]
    assert set(by_id[phone_id]) == {
        "id",
        "createdAt",
        "expiresAt",
        "ipAddress",
        "userAgent",
        "via",
        "current",
    }
    assert [i["id"] for i in from_phone["items"] if i["current"]] == [phone_id]
    # A token caller sees the same sessions, none of them current.
    via_token = await client.get("/api/user/sessions", headers=bearer(await token_for(db, user)))
    assert {i["id"] for i in via_token.json()["items"]} == {laptop_id, phone_id}


async def test_sessions_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/user/sessions"),
        ("DELETE", "/api/user/sessions"),
        ("DELETE", "/api/user/sessions/1"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_revoking_another_session_ends_it_at_once_and_is_audited(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    async with browser(app) as phone:
        phone_id = await signed_in(phone, user.email)
        assert (await phone.get("/api/user")).status_code == 200  # now in the principal cache
        await signed_in(client, user.email)

        response = await client.delete(f"/api/user/sessions/{phone_id}")

        assert response.status_code == 204, response.text
        # The revocation reached the cache (JARVIS_AUTH_CACHE_SECONDS is on by default).
        assert (await phone.get("/api/user")).status_code == 401
        assert (await client.get("/api/user")).status_code == 200
    assert "set-cookie" not in response.headers  # the caller's own session is untouched
    (entry,) = await audit(db, "session.revoke")
    assert (entry.actor, entry.actor_id) == (user.email, user.id)
    assert (entry.entity_type, entry.entity_id) == ("user_session", str(phone_id))
    assert entry.after is not None
    assert (entry.after["userId"], entry.after["sessionId"]) == (user.id, phone_id)
    async with unit_of_work(db, write=False) as s:
        row = await s.get(UserSession, phone_id)
        assert row is not None and row.revoked_at is not None


async def test_revoking_the_current_session_signs_out(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    current = await signed_in(client, user.email)
    cookie = client.cookies[SESSION_COOKIE]

    response = await client.delete(f"/api/user/sessions/{current}")

    assert response.status_code == 204, response.text
    cleared = {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}
    assert set(cleared) == {SESSION_COOKIE, CSRF_COOKIE}
    assert all("max-age=0" in h.lower() for h in cleared.values()), cleared
    client.cookies.clear()
    again = await client.get("/api/user", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert again.status_code == 401


async def test_a_cookie_caller_must_send_the_csrf_token(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    async with browser(app) as phone:
        phone_id = await signed_in(phone, user.email)
        await signed_in(client, user.email)

        token = client.headers.pop("X-CSRF-Token")  # set by login()
        missing = await client.delete(f"/api/user/sessions/{phone_id}")
        wrong = await client.delete(
            f"/api/user/sessions/{phone_id}", headers={"X-CSRF-Token": token[::-1]}
        )

        for refused in (missing, wrong):
            assert refused.status_code == 403, refused.text
            assert refused.json()["reason"] == "csrf"
        assert (await phone.get("/api/user")).status_code == 200
        ok = await client.delete(f"/api/user/sessions/{phone_id}", headers={"X-CSRF-Token": token})
        assert ok.status_code == 204, ok.text


async def test_another_users_session_is_not_found(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    ended = await add_session(db, user, revoked_ago=timedelta(minutes=1))
    async with browser(app) as theirs:
        their_id = await signed_in(theirs, other.email)
        await signed_in(client, user.email)

        for session_id in (their_id, ended, 10**6):
            response = await client.delete(f"/api/user/sessions/{session_id}")
            assert response.status_code == 404, response.text
            assert response.json()["detail"] == f"no live session with id {session_id}"

        assert (await theirs.get("/api/user")).status_code == 200
    assert await audit(db, "session.revoke") == []


async def test_revoking_all_other_sessions_keeps_the_current_one(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    async with browser(app) as a, browser(app) as b, browser(app) as theirs:
        a_id = await signed_in(a, user.email)
        b_id = await signed_in(b, user.email)
        await signed_in(theirs, other.email)
        current = await signed_in(client, user.email)

        response = await client.delete("/api/user/sessions")

        assert response.status_code == 204, response.text
        assert (await a.get("/api/user")).status_code == 401
        assert (await b.get("/api/user")).status_code == 401
        assert (await theirs.get("/api/user")).status_code == 200
    listed = (await client.get("/api/user/sessions")).json()["items"]
    assert [s["id"] for s in listed] == [current]
    revoked = {int(e.entity_id or 0) for e in await audit(db, "session.revoke")}
    assert revoked == {a_id, b_id}


async def test_a_token_caller_revoking_all_sessions_revokes_every_one(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    await signed_in(client, user.email)
    client.cookies.clear()

    response = await client.delete("/api/user/sessions", headers=bearer(await token_for(db, user)))

    assert response.status_code == 204, response.text
    assert "set-cookie" not in response.headers
    assert len(await audit(db, "session.revoke")) == 1


# --- administrators -----------------------------------------------------------------------


async def test_an_admin_lists_and_revokes_a_users_sessions(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db, persona="admin")
    admin_headers = bearer(await token_for(db, admin))
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    async with browser(app) as a, browser(app) as b, browser(app) as theirs:
        a_id = await signed_in(a, user.email)
        b_id = await signed_in(b, user.email)
        their_id = await signed_in(theirs, other.email)

        listed = await client.get(f"/api/users/{user.id}/sessions", headers=admin_headers)
        assert listed.status_code == 200, listed.text
        assert {s["id"] for s in listed.json()["items"]} == {a_id, b_id}
        assert not any(s["current"] for s in listed.json()["items"])

        # Another user's session under this user's path is not found.
        wrong = await client.delete(
            f"/api/users/{user.id}/sessions/{their_id}", headers=admin_headers
        )
        assert wrong.status_code == 404, wrong.text

        one = await client.delete(f"/api/users/{user.id}/sessions/{a_id}", headers=admin_headers)
        assert one.status_code == 204, one.text
        assert (await a.get("/api/user")).status_code == 401
        assert (await b.get("/api/user")).status_code == 200

        every = await client.delete(f"/api/users/{user.id}/sessions", headers=admin_headers)
        assert every.status_code == 204, every.text
        assert (await b.get("/api/user")).status_code == 401
        assert (await theirs.get("/api/user")).status_code == 200

    entries = await audit(db, "session.revoke")
    assert [int(e.entity_id or 0) for e in entries] == [a_id, b_id]
    assert {(e.actor, e.actor_id) for e in entries} == {(admin.email, admin.id)}
    assert all(e.after and e.after["userId"] == user.id for e in entries)
    empty = await client.get(f"/api/users/{user.id}/sessions", headers=admin_headers)
    assert empty.json()["total"] == 0


async def test_admin_session_routes_need_users_admin_and_a_known_user(
    client: httpx.AsyncClient, db: Database, admin_headers: dict[str, str]
) -> None:
    user = await create_user(db, persona="underwriter")
    uw_headers = bearer(await token_for(db, user))

    for method, path in (
        ("GET", f"/api/users/{user.id}/sessions"),
        ("DELETE", f"/api/users/{user.id}/sessions"),
        ("DELETE", f"/api/users/{user.id}/sessions/1"),
    ):
        refused = await client.request(method, path, headers=uw_headers)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "users:admin" in refused.json()["detail"]
        missing = await client.request(
            method, path.replace(str(user.id), "999999", 1), headers=admin_headers
        )
        assert missing.status_code == 404, (method, path, missing.text)


# --- cleanup ------------------------------------------------------------------------------


async def _arrange_ended(db: Database) -> tuple[set[int], set[int], set[int], set[int]]:
    """Sessions and sign-in states, some of which the sweep must delete: (sessions kept,
    sessions deleted, states kept, states deleted)."""
    async with unit_of_work(db) as s:
        await ensure_catalogue(s)  # what the app stores at start-up (no app runs here)
    user = await create_user(db, persona="underwriter")
    day = timedelta(days=1)
    keep = {
        await add_session(db, user),  # live
        await add_session(db, user, expires_in=-day),  # expired yesterday
        await add_session(db, user, revoked_ago=day),  # revoked yesterday
        await add_session(db, user, expires_in=-6 * day),  # expired six days ago
    }
    gone = {
        await add_session(db, user, expires_in=-8 * day),  # expired eight days ago
        await add_session(db, user, revoked_ago=8 * day),  # revoked eight days ago
        await add_session(db, user, expires_in=-8 * day, revoked_ago=9 * day),
    }
    now = utcnow()
    async with unit_of_work(db) as s:
        states = [
            OAuthLoginState(
                state_hash=sha256_hex(secrets.token_hex(8)),
                provider="github",
                code_verifier="v" * 43,
                expires_at=now + delta,
            )
            for delta in (timedelta(minutes=5), -timedelta(minutes=1), -day)
        ]
        s.add_all(states)
        await s.flush()
        states_keep, states_gone = {states[0].id}, {states[1].id, states[2].id}
    return keep, gone, states_keep, states_gone


async def _remaining(db: Database) -> tuple[set[int], set[int]]:
    async with unit_of_work(db, write=False) as s:
        sessions = set((await s.scalars(select(UserSession.id))).all())
        states = set((await s.scalars(select(OAuthLoginState.id))).all())
    return sessions, states


async def test_delete_expired_sessions_deletes_exactly_what_ended_long_ago(db: Database) -> None:
    keep, gone, states_keep, states_gone = await _arrange_ended(db)

    async with unit_of_work(db) as s:
        deleted = await delete_expired_sessions(s, older_than=timedelta(days=7))

    assert deleted == len(gone) + len(states_gone)
    assert await _remaining(db) == (keep, states_keep)
    async with unit_of_work(db) as s:
        assert await delete_expired_sessions(s, older_than=timedelta(days=7)) == 0
    # A shorter retention reaches the sessions that ended yesterday too.
    async with unit_of_work(db) as s:
        assert await delete_expired_sessions(s, older_than=timedelta(hours=1)) == 3
    sessions, _ = await _remaining(db)
    assert len(sessions) == 1


async def test_the_sweeper_deletes_ended_sessions_on_its_own(db: Database) -> None:
    keep, _, states_keep, _ = await _arrange_ended(db)
    sweeper = SessionSweeper(db, interval_seconds=3600)
    await sweeper.start()
    try:
        await asyncio.wait_for(sweeper.swept.wait(), WAIT)
    finally:
        await sweeper.close()

    assert await _remaining(db) == (keep, states_keep)
