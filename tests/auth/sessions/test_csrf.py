"""CSRF: unsafe requests signed in by the session cookie must echo the session's token."""

from __future__ import annotations

import hmac

import httpx
import pytest
from sqlalchemy import select

from jarvis.audit.models import AuditTrail
from jarvis.auth.sessions import cookies
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from tests.factories import DEFAULT_PASSWORD, bearer, create_user, token_for

AGENT = {"name": "CSRF probe", "layer": "System", "persona": "admin"}


async def _sign_in(client: httpx.AsyncClient, email: str) -> str:
    """Sign in by cookie and return the CSRF token, WITHOUT setting it on the client."""
    response = await client.post("/api/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    return response.cookies["jarvis_csrf"]


async def test_cookie_mutation_without_the_token_is_refused_and_audited(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db)
    await _sign_in(client, admin.email)

    response = await client.post("/api/agents", json=AGENT)

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "CSRF token is missing" in response.json()["detail"]
    async with unit_of_work(db, write=False) as session:
        entry = await session.scalar(
            select(AuditTrail).where(AuditTrail.action == "auth.forbidden")
        )
    assert entry is not None
    assert entry.actor_id == admin.id
    assert entry.after["path"] == "/api/agents"
    assert entry.after["method"] == "POST"


async def test_a_wrong_token_or_another_sessions_token_is_refused(
    app, client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db)
    await _sign_in(client, admin.email)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        foreign = await _sign_in(other, admin.email)

    wrong = await client.post("/api/agents", json=AGENT, headers={"X-CSRF-Token": "x" * 64})
    stolen = await client.post("/api/agents", json=AGENT, headers={"X-CSRF-Token": foreign})

    assert wrong.status_code == 403
    assert "CSRF token is wrong" in wrong.json()["detail"]
    assert stolen.status_code == 403


async def test_the_sessions_token_lets_the_request_through(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db)
    token = await _sign_in(client, admin.email)

    response = await client.post("/api/agents", json=AGENT, headers={"X-CSRF-Token": token})
    served = await client.get("/api/csrf")

    assert response.status_code == 201, response.text
    assert served.json()["csrfToken"] == token


async def test_a_form_field_carries_the_token_too(client: httpx.AsyncClient, db: Database) -> None:
    admin = await create_user(db)
    token = await _sign_in(client, admin.email)

    refused = await client.post("/api/logout", data={"csrf_token": "nope"})
    accepted = await client.post("/api/logout", data={"csrf_token": token})

    assert refused.status_code == 403
    assert accepted.status_code == 204
    assert (await client.get("/api/user")).status_code == 401


async def test_bearer_requests_need_no_csrf_token(client: httpx.AsyncClient, db: Database) -> None:
    admin = await create_user(db)
    token = await token_for(db, admin)

    response = await client.post("/api/agents", json=AGENT, headers=bearer(token))

    assert response.status_code == 201, response.text


async def test_safe_requests_need_no_token(client: httpx.AsyncClient, db: Database) -> None:
    admin = await create_user(db)
    await _sign_in(client, admin.email)

    assert (await client.get("/api/user")).status_code == 200


async def test_an_unknown_session_cookie_is_no_session(client: httpx.AsyncClient) -> None:
    client.cookies.set("jarvis_session", "forged")

    response = await client.post("/api/agents", json=AGENT)

    assert response.status_code == 401  # anonymous: sign in first, not a CSRF refusal


async def test_the_token_is_compared_in_constant_time(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(cookies.hmac, "compare_digest", spy)
    admin = await create_user(db)
    token = await _sign_in(client, admin.email)

    response = await client.post("/api/agents", json=AGENT, headers={"X-CSRF-Token": token})

    assert response.status_code == 201
    assert (token.encode(), token.encode()) in compared
