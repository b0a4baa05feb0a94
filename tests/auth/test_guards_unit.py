"""A permission guard (``UsersAdmin``) and ``require_auth`` on routes mounted for the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter

from jarvis.core.guards import Authenticated
from jarvis.core.guards import UsersAdmin as Admin
from jarvis.db.engine import Database
from jarvis.settings import Settings
from tests.factories import app_client, bearer, create_user, login, token_for

PROBLEM = "application/problem+json"

probe = APIRouter(prefix="/test-only")


@probe.get("/admin")
async def admin_only(principal: Admin) -> dict[str, object]:
    return {"userId": principal.user_id, "persona": principal.persona, "via": principal.via}


@probe.post("/admin")
async def admin_mutation(principal: Admin) -> dict[str, object]:
    return {"userId": principal.user_id}


@probe.get("/signed-in")
async def signed_in_only(principal: Authenticated) -> dict[str, object]:
    return {"userId": principal.user_id, "via": principal.via}


@pytest.fixture
async def guarded(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, db, probe) as c:
        yield c


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_permission_guard_refuses_anonymous_callers(
    guarded: httpx.AsyncClient, method: str
) -> None:
    response = await guarded.request(method, "/test-only/admin")

    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:jarvis:problem:unauthorized"


async def test_permission_guard_forbids_other_personas(
    guarded: httpx.AsyncClient, db: Database
) -> None:
    underwriter = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, underwriter))

    for method in ("GET", "POST"):
        response = await guarded.request(method, "/test-only/admin", headers=headers)
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        body = response.json()
        assert body["type"] == "urn:jarvis:problem:forbidden"
        assert body["status"] == 403
        assert "underwriter" in body["detail"]
        assert "users:admin" in body["detail"]
        assert body["permission"] == "users:admin"


async def test_permission_guard_admits_the_admin_persona(
    guarded: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db, persona="admin")

    response = await guarded.get("/test-only/admin", headers=bearer(await token_for(db, admin)))

    assert response.status_code == 200, response.text
    assert response.json() == {"userId": admin.id, "persona": "admin", "via": "token"}


async def test_permission_guard_admits_an_admin_session(
    guarded: httpx.AsyncClient, db: Database
) -> None:
    admin = await create_user(db, persona="admin")
    await login(guarded, admin.email)

    response = await guarded.post("/test-only/admin")

    assert response.status_code == 200, response.text
    assert response.json() == {"userId": admin.id}


async def test_require_auth_admits_any_persona(guarded: httpx.AsyncClient, db: Database) -> None:
    underwriter = await create_user(db, persona="underwriter")
    await login(guarded, underwriter.email)

    response = await guarded.get("/test-only/signed-in")

    assert response.status_code == 200, response.text
    assert response.json() == {"userId": underwriter.id, "via": "session"}


async def test_require_auth_refuses_anonymous(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/test-only/signed-in")

    assert response.status_code == 401
    assert "POST /api/login" in response.json()["detail"]
