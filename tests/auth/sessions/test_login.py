"""Password sign-in, the session cookie, sign-out and the signed-in user."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import structlog
from sqlalchemy import select, update

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import User, UserSession
from jarvis.auth.sessions.cookies import csrf_token_for
from jarvis.auth.users.service import create_user as service_create_user
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import keyed_digest
from jarvis.main import create_app
from jarvis.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.factories import DEFAULT_PASSWORD, TEST_ACTOR, create_personas, create_user

COOKIE = "jarvis_session"
PROBLEM = "application/problem+json"


def session_cookie(response: httpx.Response) -> dict[str, str]:
    """The attributes of the ``jarvis_session`` Set-Cookie header, lower-cased names.

    The cookie's value is under ``"value"``; flags without a value map to ``""``.
    """
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    first, *attributes = [part.strip() for part in headers[0].split(";")]
    parsed = {"value": first.partition("=")[2]}
    for attribute in attributes:
        name, _, value = attribute.partition("=")
        parsed[name.lower()] = value
    return parsed


def with_cookie(token: str) -> dict[str, str]:
    """The session cookie, and the CSRF token unsafe requests signed in by it must carry."""
    return {"Cookie": f"{COOKIE}={token}", "X-CSRF-Token": csrf_token_for(TEST_SECRET_KEY, token)}


async def sign_in(client: httpx.AsyncClient, email: str) -> str:
    """Sign in and return the raw session cookie value; the client's jar is left empty."""
    response = await client.post("/api/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    token = session_cookie(response)["value"]
    client.cookies.clear()
    return token


async def audit_rows(db: Database, action: str) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as s:
        rows = await s.scalars(
            select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        )
        return list(rows)


async def session_rows(db: Database) -> list[UserSession]:
    async with unit_of_work(db, write=False) as s:
        return list(await s.scalars(select(UserSession).order_by(UserSession.id)))


# --- signing in -------------------------------------------------------------------------


async def test_login_returns_user_in_camel_case_and_sets_session_cookie(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")

    response = await client.post(
        "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["persona"] == "underwriter"
    assert body["isActive"] is True
    assert body["lastLoginAt"] is not None
    for key in ("firstName", "lastName", "profileImageUrl", "createdAt", "profile"):
        assert key in body
    assert "displayName" in body["profile"]
    assert not any("_" in key for key in body), body
    assert "passwordHash" not in body and "password_hash" not in body

    cookie = session_cookie(response)
    assert len(cookie["value"]) >= 32
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert "secure" not in cookie
    assert int(cookie["max-age"]) == 30 * 24 * 3600


async def test_login_cookie_is_secure_in_production(
    database_url: str, db: Database, client: httpx.AsyncClient
) -> None:
    user = await create_user(db)
    production = Settings(
        database_url=database_url,
        env="production",
        secret_key=secrets.token_urlsafe(30)[:40],
        log_level="WARNING",
    )
    saved_logging = structlog.get_config()
    try:
        app = create_app(production, database=db)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
                response = await c.post(
                    "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
                )
    finally:
        structlog.configure(**saved_logging)

    assert response.status_code == 200, response.text
    cookie = session_cookie(response)
    assert "secure" in cookie
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"

    # The development app (the ``client`` fixture) does not set the flag.
    dev = await client.post("/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert "secure" not in session_cookie(dev)


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, email="Mixed.Case@Example.COM")
    assert user.email == "mixed.case@example.com"

    response = await client.post(
        "/api/login", json={"email": "MIXED.case@example.Com", "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "mixed.case@example.com"


async def test_wrong_password_and_unknown_email_give_the_same_401(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)

    wrong_password = await client.post(
        "/api/login", json={"email": user.email, "password": "not the password"}
    )
    unknown_email = await client.post(
        "/api/login", json={"email": "nobody@example.com", "password": DEFAULT_PASSWORD}
    )

    for response in (wrong_password, unknown_email):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM)
        assert COOKIE not in response.headers.get("set-cookie", "")
    first, second = wrong_password.json(), unknown_email.json()
    for key in ("type", "title", "status", "detail"):
        assert first[key] == second[key], key
    assert first["status"] == 401
    assert first["type"] == "urn:jarvis:problem:unauthorized"
    assert "incorrect" in first["detail"]
    assert await session_rows(db) == []


async def test_inactive_user_cannot_sign_in(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    async with unit_of_work(db) as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))

    response = await client.post(
        "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert COOKIE not in response.headers.get("set-cookie", "")


async def test_user_without_password_cannot_sign_in(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_personas(db)
    async with unit_of_work(db) as s:
        await service_create_user(
            s, email="nopass@example.com", persona="admin", password=None, actor=TEST_ACTOR
        )

    response = await client.post(
        "/api/login", json={"email": "nopass@example.com", "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 401
    assert COOKIE not in response.headers.get("set-cookie", "")


async def test_password_is_compared_exactly_including_surrounding_spaces(
    client: httpx.AsyncClient, db: Database
) -> None:
    # Passwords set through the service (CLI) keep their spaces; login must not strip them.
    user = await create_user(db, password="  spaced out secret  ")

    exact = await client.post(
        "/api/login", json={"email": user.email, "password": "  spaced out secret  "}
    )
    stripped = await client.post(
        "/api/login", json={"email": user.email, "password": "spaced out secret"}
    )

    assert exact.status_code == 200, exact.text
    assert stripped.status_code == 401


async def test_login_payload_is_validated(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/login", json={"email": "not-an-email"})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    locs = [error["loc"] for error in response.json()["errors"]]
    assert ["body", "email"] in locs
    assert ["body", "password"] in locs


async def test_session_row_holds_only_a_keyed_digest(
    client: httpx.AsyncClient, app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    user = await create_user(db)
    token = await sign_in(client, user.email)

    rows = await session_rows(db)

    assert len(rows) == 1
    row = rows[0]
    assert row.user_id == user.id
    assert row.session_hash == keyed_digest(app.state.secret_key, token)
    assert row.session_hash != token
    stored = [str(getattr(row, c.key)) for c in UserSession.__table__.columns]
    assert not any(token in value for value in stored)
    assert row.revoked_at is None


# --- the session ------------------------------------------------------------------------


async def test_current_user_with_cookie_and_without(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)

    anonymous = await client.get("/api/user")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith(PROBLEM)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    token = await sign_in(client, user.email)
    signed_in = await client.get("/api/user", headers=with_cookie(token))
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["email"] == user.email
    assert signed_in.json()["id"] == user.id

    forged = await client.get("/api/user", headers=with_cookie(token[:-2] + "xx"))
    assert forged.status_code == 401


async def test_cookie_jar_carries_the_session(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    login = await client.post(
        "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200

    response = await client.get("/api/user")

    assert response.status_code == 200
    assert response.json()["email"] == user.email


async def test_login_rotates_the_session_id(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    first = await client.post(
        "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    old = session_cookie(first)["value"]

    # The jar still holds the old cookie, which this login must revoke.
    second = await client.post(
        "/api/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    new = session_cookie(second)["value"]
    client.cookies.clear()

    assert second.status_code == 200
    assert new != old
    assert (await client.get("/api/user", headers=with_cookie(old))).status_code == 401
    assert (await client.get("/api/user", headers=with_cookie(new))).status_code == 200
    rows = await session_rows(db)
    assert len(rows) == 2
    assert rows[0].revoked_at is not None
    assert rows[1].revoked_at is None


async def test_expired_session_is_rejected(app, client: httpx.AsyncClient, db: Database) -> None:  # type: ignore[no-untyped-def]
    user = await create_user(db)
    token = await sign_in(client, user.email)
    assert (await client.get("/api/user", headers=with_cookie(token))).status_code == 200

    async with unit_of_work(db) as s:
        await s.execute(update(UserSession).values(expires_at=utcnow() - timedelta(minutes=1)))
    # Edited behind the application's back: nothing announced it to the principal cache.
    app.state.credentials.clear()

    response = await client.get("/api/user", headers=with_cookie(token))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_session_of_deactivated_user_is_rejected(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    token = await sign_in(client, user.email)
    async with unit_of_work(db) as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))

    response = await client.get("/api/user", headers=with_cookie(token))

    assert response.status_code == 401


async def test_session_cookie_authorises_mutations(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    token = await sign_in(client, user.email)

    response = await client.post(
        "/api/agents", json={"name": "Cookie Agent", "layer": "Role"}, headers=with_cookie(token)
    )

    assert response.status_code == 201, response.text
    created = await audit_rows(db, "agent.create")
    assert [row.actor_id for row in created] == [user.id]


# --- signing out ------------------------------------------------------------------------


async def test_logout_revokes_the_session_and_clears_the_cookie(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    token = await sign_in(client, user.email)

    response = await client.post("/api/logout", headers=with_cookie(token))

    assert response.status_code == 204
    assert response.content == b""
    cleared = session_cookie(response)
    assert cleared["value"] in ("", '""')
    assert cleared["max-age"] == "0"
    assert cleared["path"] == "/"
    assert (await client.get("/api/user", headers=with_cookie(token))).status_code == 401
    (row,) = await session_rows(db)
    assert row.revoked_at is not None


async def test_logout_without_a_session_is_harmless(
    client: httpx.AsyncClient, db: Database
) -> None:
    anonymous = await client.post("/api/logout")
    unknown = await client.post("/api/logout", headers=with_cookie("not-a-session"))

    for response in (anonymous, unknown):
        assert response.status_code == 204
        assert session_cookie(response)["max-age"] == "0"
    assert await audit_rows(db, "auth.logout") == []


async def test_logout_twice_writes_one_audit_entry(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    token = await sign_in(client, user.email)

    first = await client.post("/api/logout", headers=with_cookie(token))
    second = await client.post("/api/logout", headers=with_cookie(token))

    assert (first.status_code, second.status_code) == (204, 204)
    assert len(await audit_rows(db, "auth.logout")) == 1


async def test_login_and_logout_are_audited(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    token = await sign_in(client, user.email)
    await client.post("/api/logout", headers=with_cookie(token))

    (row,) = await session_rows(db)
    (login_entry,) = await audit_rows(db, "auth.login")
    (logout_entry,) = await audit_rows(db, "auth.logout")
    for entry in (login_entry, logout_entry):
        assert entry.actor_id == user.id
        assert entry.actor == user.email
        assert entry.entity_type == "user_session"
        assert entry.entity_id == str(row.id)
    assert login_entry.after is not None
    assert login_entry.after["userId"] == user.id
    assert login_entry.after["via"] == "password"
    assert token not in str(login_entry.after)
    assert logout_entry.id > login_entry.id


async def test_failed_login_is_not_audited_as_a_login(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)

    response = await client.post("/api/login", json={"email": user.email, "password": "wrong!!"})

    assert response.status_code == 401
    assert await audit_rows(db, "auth.login") == []


@pytest.fixture
async def second_client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_logout_ends_only_that_session(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    laptop = await sign_in(client, user.email)
    phone = await sign_in(second_client, user.email)

    await client.post("/api/logout", headers=with_cookie(laptop))

    assert (await client.get("/api/user", headers=with_cookie(laptop))).status_code == 401
    assert (await client.get("/api/user", headers=with_cookie(phone))).status_code == 200
