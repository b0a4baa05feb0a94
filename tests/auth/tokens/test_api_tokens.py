"""API tokens through the API and the CLI: creating one's own (with scopes and expiry),
listing without values, revoking (at once, with the principal cache on), administrators
managing anyone's, and the last-used time."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import ApiToken, User
from jarvis.cli.app import cli
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import sha256_hex
from jarvis.personas.grants import ensure_catalogue, set_persona_permissions
from jarvis.settings import get_settings
from tests.conftest import TEST_SECRET_KEY
from tests.factories import TEST_ACTOR, bearer, create_user, token_for

WAIT = 30.0  # a hang guard, never a timing assertion


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    body.setdefault("name", "ci")
    return await client.post("/api/user/tokens", json=body, headers=headers)


async def rows(db: Database, user: User) -> list[ApiToken]:
    async with unit_of_work(db, write=False) as s:
        found = await s.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        )
        return list(found)


async def audit(db: Database, action: str) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as s:
        found = await s.scalars(
            select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        )
        return list(found)


async def grant_underwriter(db: Database, *permissions: str) -> None:
    async with unit_of_work(db) as s:
        await set_persona_permissions(s, "underwriter", permissions, actor=TEST_ACTOR)


# --- creating ----------------------------------------------------------------------------


async def test_creating_a_token_shows_its_value_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, user, name="bootstrap"))

    response = await create(client, headers, name="laptop", expiresInDays=30)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "prefix", "scopes", "expiresAt", "createdAt", "token"}
    token = body["token"]
    assert token.startswith(body["prefix"]) and token.startswith("jv_")
    assert (body["name"], body["scopes"]) == ("laptop", None)
    assert response.headers["location"] == f"/api/user/tokens/{body['id']}"
    assert response.headers["cache-control"] == "no-store"
    stored = {row.id: row for row in await rows(db, user)}[body["id"]]
    assert stored.token_hash == sha256_hex(token)
    assert stored.expires_at is not None
    assert timedelta(days=29) < stored.expires_at - utcnow() <= timedelta(days=30)
    (entry,) = [e for e in await audit(db, "token.create") if e.entity_id == str(body["id"])]
    assert (entry.actor, entry.actor_id) == (user.email, user.id)
    assert token not in str(entry.after)
    # The new token works.
    me = await client.get("/api/user", headers=bearer(token))
    assert me.status_code == 200 and me.json()["email"] == user.email


async def test_listing_tokens_never_shows_their_values(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, user, name="bootstrap"))
    theirs = await token_for(db, other, name="theirs")
    created = [(await create(client, headers, name=n)).json() for n in ("one", "two")]
    revoked = await client.delete(f"/api/user/tokens/{created[0]['id']}", headers=headers)
    assert revoked.status_code == 204, revoked.text

    response = await client.get("/api/user/tokens", headers=headers)

    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 3
    assert [t["name"] for t in page["items"]] == ["two", "one", "bootstrap"]
    for item in page["items"]:
        assert set(item) == {
            "id",
            "name",
            "prefix",
            "scopes",
            "createdAt",
            "expiresAt",
            "lastUsedAt",
            "revokedAt",
        }
    by_name = {t["name"]: t for t in page["items"]}
    assert by_name["one"]["revokedAt"] is not None
    assert by_name["two"]["revokedAt"] is None
    for value in [c["token"] for c in created] + [headers["Authorization"][7:], theirs]:
        assert value not in response.text
    paged = (await client.get("/api/user/tokens?limit=1&offset=1", headers=headers)).json()
    assert [t["name"] for t in paged["items"]] == ["one"]


async def test_token_input_is_validated(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="admin")
    headers = bearer(await token_for(db, user))
    soon = (utcnow() + timedelta(days=1)).isoformat()

    for body, status in (
        ({"name": ""}, 422),
        ({"name": "x" * 101}, 422),
        ({"expiresAt": soon, "expiresInDays": 3}, 422),
        ({"expiresAt": (utcnow() - timedelta(minutes=1)).isoformat()}, 422),
        ({"expiresAt": "2030-01-01T00:00:00"}, 422),  # no time zone
        ({"expiresInDays": 0}, 422),
        ({"scopes": ["agents:fly"]}, 422),
        ({"token": "chosen-by-me"}, 422),
    ):
        response = await create(client, headers, **body)
        assert response.status_code == status, (body, response.text)
    first = await create(client, headers, name="dup")
    assert first.status_code == 201, first.text
    again = await create(client, headers, name="dup")
    assert again.status_code == 409, again.text


# --- scopes ------------------------------------------------------------------------------


async def test_a_scoped_token_does_only_what_its_scopes_allow(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db, persona="admin")
    headers = bearer(await token_for(db, admin))
    response = await create(client, headers, name="auditor", scopes=["audit:read"])
    assert response.status_code == 201, response.text
    assert response.json()["scopes"] == ["audit:read"]
    scoped = bearer(response.json()["token"])

    assert (await client.get("/api/audit", headers=scoped)).status_code == 200
    assert (await client.get("/api/user", headers=scoped)).status_code == 200  # no permission
    for method, path, body, permission in (
        ("GET", "/api/users", None, "users:admin"),
        ("POST", "/api/agents", {"name": "Scoped", "layer": "Role"}, "agents:write"),
    ):
        refused = await client.request(method, path, json=body, headers=scoped)
        assert refused.status_code == 403, (path, refused.text)
        assert f"the token's scopes do not include '{permission}'" in refused.json()["detail"]
    # The same user's unscoped token may do both.
    assert (await client.get("/api/users", headers=headers)).status_code == 200


async def test_scopes_cannot_exceed_the_callers_permissions(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db, persona="underwriter")
    await grant_underwriter(db, "agents:write", "executions:create")
    headers = bearer(await token_for(db, user))

    beyond = await create(client, headers, name="too-much", scopes=["agents:write", "users:admin"])
    assert beyond.status_code == 403, beyond.text
    assert "users:admin" in beyond.json()["detail"]
    assert "agents:write" not in beyond.json()["detail"]

    within = await create(client, headers, name="writer", scopes=["agents:write"])
    assert within.status_code == 201, within.text
    writer = bearer(within.json()["token"])
    assert (
        await client.post("/api/agents", json={"name": "By Scope", "layer": "Role"}, headers=writer)
    ).status_code == 201

    # Through a scoped token: neither an unlimited token nor wider scopes.
    unlimited = await create(client, writer, name="unlimited")
    assert unlimited.status_code == 403, unlimited.text
    wider = await create(client, writer, name="wider", scopes=["executions:create"])
    assert wider.status_code == 403, wider.text
    assert "executions:create" in wider.json()["detail"]
    narrower = await create(client, writer, name="same", scopes=["agents:write"])
    assert narrower.status_code == 201, narrower.text
    # Admins may choose any scope.
    admin = bearer(await token_for(db, await create_user(db, persona="admin")))
    any_scope = await create(client, admin, name="any", scopes=["users:admin", "audit:read"])
    assert any_scope.status_code == 201, any_scope.text
    assert any_scope.json()["scopes"] == ["audit:read", "users:admin"]


# --- expiry, revocation, last use ------------------------------------------------------------


async def test_an_expired_token_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, user))
    created = await create(client, headers, name="short", expiresInDays=1)
    token = created.json()["token"]
    async with unit_of_work(db) as s:
        await s.execute(
            update(ApiToken)
            .where(ApiToken.id == created.json()["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    response = await client.get("/api/user", headers=bearer(token))

    assert response.status_code == 401, response.text
    assert "invalid_token" in response.headers["www-authenticate"]
    assert (await client.get("/api/user", headers=headers)).status_code == 200


async def test_a_revoked_token_is_refused_at_once(
    client: httpx.AsyncClient, db: Database, app: Any
) -> None:
    assert app.state.credentials.cache_seconds > 0  # the principal cache is on
    user = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, user, name="keeper"))
    created = (await create(client, headers, name="doomed")).json()
    doomed = bearer(created["token"])
    assert (await client.get("/api/user", headers=doomed)).status_code == 200  # now cached

    response = await client.delete(f"/api/user/tokens/{created['id']}", headers=headers)

    assert response.status_code == 204, response.text
    refused = await client.get("/api/user", headers=doomed)
    assert refused.status_code == 401, refused.text
    assert (await client.get("/api/user", headers=headers)).status_code == 200
    (entry,) = await audit(db, "token.revoke")
    assert (entry.actor, entry.entity_type, entry.entity_id) == (
        user.email,
        "api_token",
        str(created["id"]),
    )
    # Revoking again changes nothing (and is not audited again).
    again = await client.delete(f"/api/user/tokens/{created['id']}", headers=headers)
    assert again.status_code == 204
    assert len(await audit(db, "token.revoke")) == 1


async def test_a_token_can_revoke_itself(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    created = (await create(client, bearer(await token_for(db, user)), name="self")).json()
    own = bearer(created["token"])

    assert (
        await client.delete(f"/api/user/tokens/{created['id']}", headers=own)
    ).status_code == 204
    assert (await client.get("/api/user/tokens", headers=own)).status_code == 401


async def test_another_users_token_is_not_found(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, user))
    theirs = await token_for(db, other)
    (their_row,) = await rows(db, other)

    response = await client.delete(f"/api/user/tokens/{their_row.id}", headers=headers)

    assert response.status_code == 404, response.text
    assert (await client.get("/api/user", headers=bearer(theirs))).status_code == 200
    assert await audit(db, "token.revoke") == []


async def test_last_use_is_recorded(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    token = await token_for(db, user)
    (row,) = await rows(db, user)
    assert row.last_used_at is None
    before = utcnow()

    assert (await client.get("/api/user", headers=bearer(token))).status_code == 200

    # Written off the request's path: wait for it (WAIT is a hang guard).
    async with asyncio.timeout(WAIT):
        while True:
            used = (await rows(db, user))[0].last_used_at
            if used is not None:
                break
            await asyncio.sleep(0.02)
    assert used >= before - timedelta(seconds=1)
    listed = (await client.get("/api/user/tokens", headers=bearer(token))).json()["items"]
    assert listed[0]["lastUsedAt"] is not None


# --- administrators ----------------------------------------------------------------------


async def test_an_admin_lists_and_revokes_a_users_tokens(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db, persona="admin")
    admin_headers = bearer(await token_for(db, admin))
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    token = await token_for(db, user, name="one")
    await token_for(db, other, name="theirs")
    (row,) = await rows(db, user)
    (their_row,) = await rows(db, other)

    listed = await client.get(f"/api/users/{user.id}/tokens", headers=admin_headers)
    assert listed.status_code == 200, listed.text
    assert [t["name"] for t in listed.json()["items"]] == ["one"]
    assert token not in listed.text

    wrong = await client.delete(
        f"/api/users/{user.id}/tokens/{their_row.id}", headers=admin_headers
    )
    assert wrong.status_code == 404, wrong.text
    assert (await client.get("/api/user", headers=bearer(token))).status_code == 200

    revoked = await client.delete(f"/api/users/{user.id}/tokens/{row.id}", headers=admin_headers)
    assert revoked.status_code == 204, revoked.text
    assert (await client.get("/api/user", headers=bearer(token))).status_code == 401
    (entry,) = await audit(db, "token.revoke")
    assert (entry.actor, entry.actor_id, entry.entity_id) == (admin.email, admin.id, str(row.id))
    assert entry.after is not None and entry.after["userId"] == user.id


async def test_admin_token_routes_need_users_admin(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, user))
    (row,) = await rows(db, user)

    for method, path in (
        ("GET", f"/api/users/{user.id}/tokens"),
        ("DELETE", f"/api/users/{user.id}/tokens/{row.id}"),
    ):
        refused = await client.request(method, path, headers=headers)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "users:admin" in refused.json()["detail"]
    assert (await client.get("/api/user", headers=headers)).status_code == 200


# --- the CLI ------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_db(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """A migrated SQLite file the CLI is configured to use, with one admin; (url, email)."""
    path = tmp_path / "cli.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    for name in list(os.environ):
        if name.startswith("JARVIS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JARVIS_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()

    async def arrange() -> str:
        db = Database.from_url(url)
        try:
            async with unit_of_work(db) as s:
                await ensure_builtin_registry(s)
                await ensure_catalogue(s)
            return (await create_user(db, persona="admin", email="bot@example.com")).email
        finally:
            await db.dispose()

    yield url, asyncio.run(arrange())
    get_settings.cache_clear()


def jarvis(*args: str) -> Any:
    result = runner.invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def stored_tokens(url: str) -> list[ApiToken]:
    async def read() -> list[ApiToken]:
        db = Database.from_url(url)
        try:
            async with unit_of_work(db, write=False) as s:
                return list(await s.scalars(select(ApiToken).order_by(ApiToken.id)))
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_cli_creates_scoped_tokens_lists_and_revokes_them(cli_db: tuple[str, str]) -> None:
    url, email = cli_db

    created = jarvis(
        "tokens", "create", "--user", email, "--name", "ci", "--scope", "audit:read",
        "--scope", "agents:write",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("jv_")
    assert "limited to agents:write, audit:read" in created.stderr
    plain = jarvis("tokens", "create", "--user", email, "--name", "all")
    assert plain.exit_code == 0, plain.output
    (ci, everything) = stored_tokens(url)
    assert ci.scopes == ["agents:write", "audit:read"]
    assert everything.scopes is None

    unknown = jarvis("tokens", "create", "--user", email, "--name", "x", "--scope", "agents:fly")
    assert unknown.exit_code == 1
    assert "agents:fly" in unknown.output

    listed = jarvis("tokens", "list", "--user", email)
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.stdout and "all" in listed.stdout
    assert "agents:write, audit:read" in listed.stdout
    assert "(all)" in listed.stdout
    assert ci.token_prefix in listed.stdout
    assert token not in listed.stdout

    revoked = jarvis("tokens", "revoke", "--user", email, "--name", "ci")
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.stdout
    assert stored_tokens(url)[0].revoked_at is not None
    assert stored_tokens(url)[1].revoked_at is None
    assert "revoked" in jarvis("tokens", "list", "--user", email).stdout
    again = jarvis("tokens", "revoke", "--user", email, "--name", "ci")
    assert again.exit_code == 0 and "already revoked" in again.stdout
    missing = jarvis("tokens", "revoke", "--user", email, "--name", "nope")
    assert missing.exit_code == 1
    assert "no token named 'nope'" in missing.output
    nobody = jarvis("tokens", "list", "--user", "ghost@example.com")
    assert nobody.exit_code == 1
    assert "ghost@example.com" in nobody.output
