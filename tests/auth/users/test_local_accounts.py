"""Local accounts: password policy, lockout and its expiry, password change, session
fixation, and the audit of every sign-in."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import User, UserSession
from jarvis.auth.users.passwords import password_problems
from jarvis.auth.users.service import create_user as service_create_user
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import ValidationFailed
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import keyed_digest
from tests.conftest import TEST_SECRET_KEY
from tests.factories import DEFAULT_PASSWORD, TEST_ACTOR, create_personas, create_user, login

PROBLEM = "application/problem+json"


async def _attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    response = await client.post("/api/login", json={"email": email, "password": password})
    client.cookies.clear()
    return response


async def _audit(db: Database, action: str) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as s:
        rows = await s.scalars(
            select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        )
        return list(rows.all())


async def _set_config(client: httpx.AsyncClient, admin: dict[str, str], key: str, value: object):
    response = await client.post(
        "/api/config/setting", json={"key": key, "value": value}, headers=admin
    )
    assert response.status_code in (200, 201), response.text


# --- password policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short1!", "at least 10 characters"),
        ("password123", "most common"),
        ("aaaaaaaaaaaaaaa", "4 different characters"),
        ("rachel.thompson-2026", "e-mail name"),
    ],
)
def test_password_policy_names_the_rule(password: str, problem: str) -> None:
    problems = password_problems(password, email="rachel.thompson@example.com", min_length=10)
    assert any(problem in p for p in problems), problems


def test_a_good_password_passes_the_policy() -> None:
    assert password_problems(DEFAULT_PASSWORD, email="a@example.com", min_length=10) == []


async def test_creating_a_user_enforces_the_policy(db: Database) -> None:
    await create_personas(db)
    with pytest.raises(ValidationFailed) as raised:
        async with unit_of_work(db) as session:
            await service_create_user(
                session, email="x@example.com", persona="admin", password="tiny", actor=TEST_ACTOR
            )
    assert raised.value.errors and raised.value.errors[0]["loc"] == ["password"]


# --- lockout ----------------------------------------------------------------------------------


async def test_repeated_failures_lock_the_account_until_it_expires(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    for _ in range(4):
        assert (await _attempt(client, user.email, "wrong password!")).status_code == 401
    fifth = await _attempt(client, user.email, "wrong password!")
    assert fifth.status_code == 401
    assert "locked" in fifth.json()["detail"]

    # Even the right password is refused while the lock holds.
    locked = await _attempt(client, user.email, DEFAULT_PASSWORD)
    assert locked.status_code == 401
    assert "locked" in locked.json()["detail"]

    # The lock expires (moved into the past here rather than waiting 15 minutes).
    async with unit_of_work(db) as session:
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
    assert (await _attempt(client, user.email, DEFAULT_PASSWORD)).status_code == 200

    reasons = [row.after["reason"] for row in await _audit(db, "auth.login_failed")]
    assert reasons == ["bad_password"] * 4 + ["bad_password_locked", "locked"]


async def test_a_success_resets_the_failure_count(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    for _ in range(4):
        await _attempt(client, user.email, "wrong password!")
    assert (await _attempt(client, user.email, DEFAULT_PASSWORD)).status_code == 200
    for _ in range(4):
        await _attempt(client, user.email, "wrong password!")

    assert (await _attempt(client, user.email, DEFAULT_PASSWORD)).status_code == 200


async def test_the_lockout_threshold_comes_from_configuration(
    client: httpx.AsyncClient, db: Database, admin_headers: dict[str, str]
) -> None:
    await _set_config(client, admin_headers, "auth.lockout_threshold", 2)
    user = await create_user(db, persona="underwriter")
    await _attempt(client, user.email, "wrong password!")
    second = await _attempt(client, user.email, "wrong password!")

    assert "locked" in second.json()["detail"]


async def test_unknown_accounts_are_refused_like_wrong_passwords(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    unknown = await _attempt(client, "nobody@example.com", DEFAULT_PASSWORD)
    wrong = await _attempt(client, user.email, "wrong password!")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]
    failures = await _audit(db, "auth.login_failed")
    assert [f.after["reason"] for f in failures] == ["unknown_account", "bad_password"]
    assert failures[0].after["email"] == "nobody@example.com"


# --- sessions: fixation and the audit of sign-ins ---------------------------------------------


async def test_signing_in_replaces_a_planted_session_id(
    client: httpx.AsyncClient, db: Database
) -> None:
    victim = await create_user(db)
    attacker = await create_user(db)
    # The attacker signs in and plants their session id in the victim's browser...
    planted = (
        await client.post(
            "/api/login", json={"email": attacker.email, "password": DEFAULT_PASSWORD}
        )
    ).cookies["jarvis_session"]
    client.cookies.clear()
    client.cookies.set("jarvis_session", planted)
    # ...then the victim signs in with it.
    response = await client.post(
        "/api/login", json={"email": victim.email, "password": DEFAULT_PASSWORD}
    )
    fresh = response.cookies["jarvis_session"]

    assert fresh != planted
    async with unit_of_work(db, write=False) as session:
        old = await session.scalar(
            select(UserSession).where(
                UserSession.session_hash == keyed_digest(TEST_SECRET_KEY, planted)
            )
        )
    assert old is not None and old.revoked_at is not None
    client.cookies.clear()
    client.cookies.set("jarvis_session", planted)
    assert (await client.get("/api/user")).status_code == 401


async def test_password_change_rotates_the_session_and_ends_the_others(
    app, client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await login(other, user.email)
        await login(client, user.email)
        before = client.cookies["jarvis_session"]

        changed = await client.post(
            "/api/user/password",
            json={"currentPassword": DEFAULT_PASSWORD, "newPassword": "a brand new passphrase"},
        )
        assert changed.status_code == 200, changed.text
        after = changed.cookies["jarvis_session"]
        assert after != before
        client.cookies.set("jarvis_session", after)
        client.headers["X-CSRF-Token"] = changed.cookies["jarvis_csrf"]
        assert (await client.get("/api/user")).status_code == 200
        assert (await other.get("/api/user")).status_code == 401

    client.cookies.clear()
    assert (await _attempt(client, user.email, DEFAULT_PASSWORD)).status_code == 401
    assert (await _attempt(client, user.email, "a brand new passphrase")).status_code == 200
    assert len(await _audit(db, "user.password_change")) == 1


async def test_password_change_checks_the_current_password_and_the_policy(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    await login(client, user.email)

    wrong = await client.post(
        "/api/user/password",
        json={"currentPassword": "not it at all", "newPassword": "a brand new passphrase"},
    )
    weak = await client.post(
        "/api/user/password", json={"currentPassword": DEFAULT_PASSWORD, "newPassword": "short"}
    )

    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["loc"] == ["body", "currentPassword"]
    assert weak.status_code == 422
    assert weak.json()["errors"][0]["loc"] == ["body", "newPassword"]
    assert (await client.get("/api/user")).status_code == 200  # nothing was ended


async def test_successful_sign_in_is_audited_with_how(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    await login(client, user.email)

    [entry] = await _audit(db, "auth.login")
    assert entry.actor_id == user.id
    assert entry.after["via"] == "password"
