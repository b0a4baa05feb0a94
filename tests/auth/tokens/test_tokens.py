"""API tokens: created once, stored as SHA-256, sent as ``Authorization: Bearer``."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import ApiToken, User
from jarvis.auth.tokens.service import API_TOKEN_PREFIX, create_api_token
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import Conflict, NotFound, ValidationFailed
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import sha256_hex
from tests.factories import TEST_ACTOR, bearer, create_user, login, token_for

PROBLEM = "application/problem+json"


async def token_rows(db: Database) -> list[ApiToken]:
    async with unit_of_work(db, write=False) as s:
        return list(await s.scalars(select(ApiToken).order_by(ApiToken.id)))


def assert_bearer_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_is_returned_once_and_only_its_sha256_is_stored(db: Database) -> None:
    user = await create_user(db)

    async with unit_of_work(db) as s:
        row, token = await create_api_token(s, email=user.email, name="ci", actor=TEST_ACTOR)

    assert token.startswith(API_TOKEN_PREFIX)
    assert len(token) > 40
    (stored,) = await token_rows(db)
    assert stored.id == row.id
    assert stored.user_id == user.id
    assert stored.name == "ci"
    assert stored.token_hash == sha256_hex(token)
    assert stored.token_prefix == token[:10]
    columns = [str(getattr(stored, c.key)) for c in ApiToken.__table__.columns]
    assert not any(token in value for value in columns)
    async with unit_of_work(db, write=False) as s:
        entry = await s.scalar(select(AuditTrail).where(AuditTrail.action == "token.create"))
    assert entry is not None
    assert entry.entity_id == str(row.id)
    assert token not in str(entry.after)


async def test_tokens_are_unique(db: Database) -> None:
    user = await create_user(db)

    first = await token_for(db, user, name="one")
    second = await token_for(db, user, name="two")

    assert first != second


async def test_bearer_token_authenticates_reads(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    token = await token_for(db, user)

    response = await client.get("/api/user", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert response.json()["email"] == user.email
    assert response.json()["persona"] == "underwriter"
    assert "set-cookie" not in response.headers


async def test_bearer_token_authorises_mutations(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    token = await token_for(db, user)

    response = await client.post(
        "/api/agents", json={"name": "Token Agent", "layer": "Role"}, headers=bearer(token)
    )

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Token Agent"
    async with unit_of_work(db, write=False) as s:
        entry = await s.scalar(select(AuditTrail).where(AuditTrail.action == "agent.create"))
    assert entry is not None
    assert entry.actor_id == user.id
    assert entry.actor == user.email


async def test_unknown_token_is_rejected(client: httpx.AsyncClient, db: Database) -> None:
    await token_for(db, await create_user(db))

    response = await client.get("/api/user", headers=bearer(API_TOKEN_PREFIX + "x" * 43))

    assert_bearer_401(response)
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_revoked_token_is_rejected(app, client: httpx.AsyncClient, db: Database) -> None:  # type: ignore[no-untyped-def]
    token = await token_for(db, await create_user(db))
    assert (await client.get("/api/user", headers=bearer(token))).status_code == 200

    async with unit_of_work(db) as s:
        await s.execute(update(ApiToken).values(revoked_at=utcnow()))
    # Edited behind the application's back: nothing announced it to the principal cache
    # (DELETE /api/user/tokens/{id} does; tests/auth/tokens/test_api_tokens.py).
    app.state.credentials.clear()

    for response in (
        await client.get("/api/user", headers=bearer(token)),
        await client.post(
            "/api/agents", json={"name": "X", "layer": "Role"}, headers=bearer(token)
        ),
    ):
        assert_bearer_401(response)
        assert "invalid_token" in response.headers["www-authenticate"]


async def test_expired_token_is_rejected(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db)
    async with unit_of_work(db) as s:
        row, expired = await create_api_token(
            s,
            email=user.email,
            name="expired",
            actor=TEST_ACTOR,
            expires_at=utcnow() + timedelta(seconds=30),
        )
        row.expires_at = utcnow() - timedelta(seconds=1)  # a token created earlier
        _, current = await create_api_token(
            s,
            email=user.email,
            name="current",
            actor=TEST_ACTOR,
            expires_at=utcnow() + timedelta(days=1),
        )

    assert_bearer_401(await client.get("/api/user", headers=bearer(expired)))
    assert (await client.get("/api/user", headers=bearer(current))).status_code == 200


async def test_token_of_deactivated_user_is_rejected(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    token = await token_for(db, user)
    async with unit_of_work(db) as s:
        await s.execute(update(User).where(User.id == user.id).values(is_active=False))

    assert_bearer_401(await client.get("/api/user", headers=bearer(token)))


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Basic x", "Bearer ", "Bearer", "Token abc", "bearer\tabc"],
)
async def test_malformed_authorization_header_is_rejected(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get("/api/user", headers={"Authorization": authorization})

    assert_bearer_401(response)


async def test_malformed_authorization_header_is_rejected_on_mutations(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/agents",
        json={"name": "X", "layer": "Role"},
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )

    assert_bearer_401(response)


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, db: Database) -> None:
    token = await token_for(db, await create_user(db))

    response = await client.get("/api/user", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200


async def test_bad_bearer_is_not_rescued_by_a_session_cookie(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await create_user(db)
    await login(client, user.email)
    assert (await client.get("/api/user")).status_code == 200

    response = await client.get("/api/user", headers=bearer("jv_not-a-token"))

    assert_bearer_401(response)


async def test_duplicate_token_name_for_a_user_conflicts(db: Database) -> None:
    user = await create_user(db)
    other = await create_user(db)
    await token_for(db, user, name="ci")

    with pytest.raises(Conflict) as raised:
        async with unit_of_work(db) as s:
            await create_api_token(s, email=user.email, name="  ci  ", actor=TEST_ACTOR)

    assert raised.value.status == 409
    assert "ci" in raised.value.detail
    # Another user may use the same name.
    await token_for(db, other, name="ci")
    assert sorted((t.user_id, t.name) for t in await token_rows(db)) == sorted(
        [(user.id, "ci"), (other.id, "ci")]
    )


async def test_token_for_unknown_user_or_bad_name_is_refused(db: Database) -> None:
    user = await create_user(db)

    with pytest.raises(NotFound):
        async with unit_of_work(db) as s:
            await create_api_token(s, email="ghost@example.com", name="x", actor=TEST_ACTOR)
    for name in ("", "   ", "n" * 101):
        with pytest.raises(ValidationFailed) as raised:
            async with unit_of_work(db) as s:
                await create_api_token(s, email=user.email, name=name, actor=TEST_ACTOR)
        assert raised.value.errors == [{"loc": ["name"], "msg": "must be 1 to 100 characters"}]
    assert await token_rows(db) == []
