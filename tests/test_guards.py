"""Every mutation route needs a signed-in caller, except the few listed here on purpose.

This is the test that fails when a new POST/PUT/PATCH/DELETE route forgets its
``Authenticated`` (or ``Admin``) dependency. Adding a route to ``ANONYMOUS_MUTATIONS``
is a security decision: say why next to it.
"""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

MUTATING_METHODS = frozenset({"post", "put", "patch", "delete"})

ANONYMOUS_MUTATIONS = frozenset(
    {
        ("POST", "/api/login"),  # how a caller gets a session in the first place
        ("POST", "/api/logout"),  # ends the caller's own session, if any; harmless without
    }
)

PROBLEM = "application/problem+json"
_PATH_PARAM = re.compile(r"\{[^}/]+\}")


def mutating_operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (METHOD, path template) the OpenAPI document lists for a mutating method."""
    operations = []
    for path, item in app.openapi()["paths"].items():
        for method in item:
            if method in MUTATING_METHODS:
                operations.append((method.upper(), path))
    return sorted(operations)


async def test_every_mutation_requires_authentication(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    operations = mutating_operations(app)
    guarded = [op for op in operations if op not in ANONYMOUS_MUTATIONS]
    assert ("POST", "/api/agents") in guarded  # the enumeration finds real routes

    unguarded = []
    for method, template in guarded:
        url = _PATH_PARAM.sub("1", template)
        response = await client.request(method, url, json={})
        ok = (
            response.status_code == 401
            and response.headers.get("content-type", "").startswith(PROBLEM)
            and response.json().get("status") == 401
        )
        if not ok:
            unguarded.append(f"{method} {template} -> {response.status_code} {response.text[:200]}")

    assert unguarded == [], "mutations reachable without signing in:\n" + "\n".join(unguarded)


async def test_anonymous_allow_list_names_existing_routes(app: FastAPI) -> None:
    operations = set(mutating_operations(app))

    stale = ANONYMOUS_MUTATIONS - operations
    assert stale == set(), f"allow-listed routes that no longer exist: {sorted(stale)}"


async def test_allow_listed_routes_really_are_anonymous(client: httpx.AsyncClient) -> None:
    # They answer on their own terms (validation, wrong credentials), never "sign in first".
    login = await client.post("/api/login", json={})
    logout = await client.post("/api/logout", json={})

    assert login.status_code == 422
    assert logout.status_code == 204


async def test_reads_stay_public(client: httpx.AsyncClient) -> None:
    # The seed's read endpoints are public; this pins that so a change is deliberate.
    for url in ("/api/agents", "/api/layers", "/api/personas/all", "/api/health"):
        response = await client.get(url)
        assert response.status_code == 200, (url, response.text)
