"""Every route × every persona answers 401 / 403 / success as the permission table says.

The test enumerates the application's HTTP routes, reads what each one requires from its
dependencies (nothing, a signed-in caller, or a named permission), and calls it as an
anonymous client and as a user of every persona, with the grants read from the database
(``persona_permissions``). A route that requires nothing must be listed in ``PUBLIC`` with
the reason; so a new route cannot ship unguarded without someone writing down why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from jarvis.core.guards import RequirePermission, require_auth
from jarvis.core.permissions import PERMISSIONS
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.personas.grants import permission_table, set_persona_permissions
from jarvis.personas.schemas import ColorScheme, PersonaRegister
from jarvis.personas.service import register_persona
from jarvis.web.deps import PagePermission, page_viewer
from tests.factories import TEST_ACTOR, bearer, create_personas, create_user, token_for

# (METHOD, path) -> why anyone may call it.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/api/health"): "load balancers probe it",
    ("GET", "/api/agents"): "the seed's public read",
    ("GET", "/api/agents/{agent_id}"): "the seed's public read",
    ("GET", "/api/agents/{agent_id}/versions"): "public like the agent it belongs to",
    ("GET", "/api/agent-kinds"): "describes the product, not data",
    ("GET", "/api/layers"): "the six layers, fixed by the product",
    ("GET", "/api/personas/all"): "the seed's public read (the sign-in page shows them)",
    ("POST", "/api/login"): "how a caller gets a session in the first place",
    ("POST", "/api/logout"): "ends the caller's own session, if any; harmless without",
    ("GET", "/api/login/providers"): "the sign-in page lists them before anyone signs in",
    ("GET", "/api/login/github"): "starts a sign-in",
    ("GET", "/api/callback"): "finishes a sign-in",
    ("GET", "/api/login/oidc"): "starts a sign-in",
    ("GET", "/api/callback/oidc"): "finishes a sign-in",
}
# Pages anyone may open or post (everything else under jarvis.web needs a signed-in viewer).
PUBLIC_PAGES: dict[tuple[str, str], str] = {
    ("GET", "/login"): "the sign-in page",
    ("POST", "/login"): "signing in",
    ("POST", "/logout"): "ends the browser's own session, if any",
    ("GET", "/theme/{persona}.css"): "colours, shown on the sign-in page too",
    ("POST", "/preferences/mode"): "light or dark, a cookie of the browser's own",
}
# Not JSON API routes: FastAPI's documentation pages.
FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
_PARAM = re.compile(r"\{[^}/]+\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    permission: str | None  # None: any signed-in caller
    authenticated: bool

    @property
    def url(self) -> str:
        # Identifiers nothing has: guarded routes must refuse before looking anything up,
        # permitted callers get 404/422, never 401/403.
        return _PARAM.sub("999999", self.path)


def _requirements(dependant: Dependant) -> tuple[bool, set[str]]:
    authenticated = False
    permissions: set[str] = set()
    for sub in dependant.dependencies:
        if sub.call is require_auth or sub.call is page_viewer:
            authenticated = True
        if isinstance(sub.call, RequirePermission | PagePermission):
            authenticated = True
            permissions.add(sub.call.permission)
        inner_auth, inner_perms = _requirements(sub)
        authenticated = authenticated or inner_auth
        permissions |= inner_perms
    return authenticated, permissions


def _is_page(route: APIRoute) -> bool:
    return route.endpoint.__module__.startswith("jarvis.web.")


def operations(app: FastAPI, *, pages: bool = False) -> list[Operation]:
    """The JSON API's operations (or, with ``pages``, the web pages' routes)."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or _is_page(route) != pages:
            continue
        path = context.path_format
        if path in FRAMEWORK:
            continue
        authenticated, permissions = _requirements(context.dependant)
        assert len(permissions) <= 1, f"{path} requires several permissions"
        for method in sorted((context.methods or set()) - {"HEAD"}):
            found.append(Operation(method, path, next(iter(permissions), None), authenticated))
    return found


async def test_every_route_is_guarded_or_listed_public(app: FastAPI) -> None:
    ops = operations(app)
    assert any(op.path == "/api/agents" and op.method == "POST" for op in ops)
    unguarded = [
        f"{op.method} {op.path}"
        for op in ops
        if not op.authenticated and (op.method, op.path) not in PUBLIC
    ]
    assert unguarded == [], "routes anyone may call, not listed in PUBLIC:\n" + "\n".join(unguarded)


async def test_every_page_needs_a_signed_in_viewer_or_is_listed_public(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    pages = operations(app, pages=True)
    assert any(op.path == "/agents" for op in pages)
    listed = {(op.method, op.path) for op in pages if not op.authenticated}
    assert listed == set(PUBLIC_PAGES), "page routes anyone may call vs PUBLIC_PAGES"
    wrong = []
    for op in pages:
        if not op.authenticated:
            continue
        # Anonymous browsers are sent to the sign-in page and come back where they were.
        response = await client.request(
            op.method,
            op.url,
            headers={"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"},
            content="" if op.method == "POST" else None,
        )
        location = response.headers.get("location", "")
        if response.status_code != 303 or not location.startswith("/login?next=%2F"):
            wrong.append(f"anonymous {op.method} {op.path} -> {response.status_code} {location}")
    assert wrong == [], "\n".join(wrong)


async def test_public_list_names_only_existing_public_routes(app: FastAPI) -> None:
    ops = {(op.method, op.path): op for op in operations(app)}
    # Sign-in routes of providers are listed even when a build lacks them; the rest must exist.
    provider_routes = {k for k in PUBLIC if k[1].startswith(("/api/login/", "/api/callback"))}
    stale = [k for k in PUBLIC if k not in ops and k not in provider_routes]
    assert stale == []
    guarded_but_listed = [k for k in PUBLIC if k in ops and ops[k].authenticated]
    assert guarded_but_listed == []


async def test_every_permission_a_route_names_is_in_the_catalogue(app: FastAPI) -> None:
    named = {op.permission for op in operations(app) if op.permission}
    assert named <= set(PERMISSIONS)
    # Every permission but governance:write (its routes arrive with the governance suite)
    # guards at least one route.
    assert set(PERMISSIONS) - named <= {"governance:write"}


DYNAMIC = PersonaRegister(
    key="claims_handler",
    display_name="Claims handler",
    person_name=None,
    description="A persona registered at run time: it has the default permissions",
    color_scheme=ColorScheme(
        primary="#b45309",
        secondary="#78350f",
        accent="#f59e0b",
        background="#1c1917",
        glassmorphism="rgba(28, 25, 23, 0.7)",
    ),
)


async def _personas_with_tokens(db: Database, app: FastAPI) -> dict[str, str]:
    await create_personas(db)
    async with unit_of_work(db) as session:
        await register_persona(session, DYNAMIC, actor=TEST_ACTOR, config=app.state.config)
        # A persona with an unusual mix, so the matrix is not just "admin or not".
        await set_persona_permissions(
            session, "underwriter", ["config:approve", "audit:read"], actor=TEST_ACTOR
        )
    tokens = {}
    for persona in ("admin", "underwriter", "claims_handler"):
        user = await create_user(db, persona=persona)
        tokens[persona] = await token_for(db, user)
    return tokens


@pytest.mark.parametrize("check", ["anonymous", "personas"])
async def test_route_persona_matrix(
    app: FastAPI, client: httpx.AsyncClient, db: Database, check: str
) -> None:
    tokens = await _personas_with_tokens(db, app)
    async with unit_of_work(db, write=False) as session:
        table = await permission_table(session)
    assert table["claims_handler"] == ["executions:create"]  # the configured default set
    assert table["underwriter"] == ["audit:read", "config:approve"]
    assert set(table["admin"]) == set(PERMISSIONS)

    wrong = []
    for op in operations(app):
        if not op.authenticated:
            continue
        body = {} if op.method in {"POST", "PUT", "PATCH"} else None
        if check == "anonymous":
            response = await client.request(op.method, op.url, json=body)
            if response.status_code != 401:
                wrong.append(f"anonymous {op.method} {op.path} -> {response.status_code}")
            continue
        for persona, token in tokens.items():
            response = await client.request(op.method, op.url, json=body, headers=bearer(token))
            allowed = op.permission is None or op.permission in table[persona]
            status = response.status_code
            refused_for_permission = status == 403 and "permission" in response.json()
            if allowed and (status == 401 or refused_for_permission or status >= 500):
                wrong.append(f"{persona} {op.method} {op.path} -> {status} (should be allowed)")
            if not allowed and not refused_for_permission:
                wrong.append(f"{persona} {op.method} {op.path} -> {status} (should be 403)")
    assert wrong == [], "\n".join(wrong)


async def test_page_persona_matrix(app: FastAPI, client: httpx.AsyncClient, db: Database) -> None:
    """Pages declare their permissions like the API (PagePermission); each persona gets the
    403 page naming the permission, or gets past it (never a 500)."""
    tokens = await _personas_with_tokens(db, app)
    async with unit_of_work(db, write=False) as session:
        table = await permission_table(session)
    guarded = [op for op in operations(app, pages=True) if op.permission]
    assert {op.permission for op in guarded} >= {"agents:write", "config:write"}
    wrong = []
    for op in guarded:
        for persona, token in tokens.items():
            response = await client.request(
                op.method,
                op.url,
                content="" if op.method == "POST" else None,
                headers={
                    **bearer(token),
                    "Accept": "text/html",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            allowed = op.permission in table[persona]
            refused = response.status_code == 403 and f"the {op.permission} permission" in (
                response.text
            )
            if allowed and (refused or response.status_code >= 500):
                wrong.append(f"{persona} {op.method} {op.path} -> {response.status_code}")
            if not allowed and not refused:
                wrong.append(f"{persona} {op.method} {op.path} -> {response.status_code} (403?)")
    assert wrong == [], "\n".join(wrong)


async def test_refusals_name_the_permission(client: httpx.AsyncClient, db: Database) -> None:
    user = await create_user(db, persona="underwriter")
    response = await client.post("/api/agents", json={}, headers=bearer(await token_for(db, user)))

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["permission"] == "agents:write"
    assert "agents:write" in response.json()["detail"]
    assert "underwriter" in response.json()["detail"]
