"""Security headers (jarvis.kit.headers.SecurityHeaders) on a small Starlette app and on
the real app, the docs pages' hashed CSP, and CORS (closed unless origins are named)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from jarvis.db.engine import Database
from jarvis.kit.headers import (
    DEFAULT_CSP,
    SecurityHeaders,
    csp_hash,
    docs_csp,
    inline_blocks,
)
from jarvis.main import create_app
from jarvis.settings import Settings
from tests.factories import app_client

ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
HSTS = "max-age=63072000; includeSubDomains"


def directives(policy: str) -> dict[str, list[str]]:
    """A CSP as {directive: [sources]}."""
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        assert name not in parsed, f"{name} twice in {policy}"
        parsed[name] = sources
    return parsed


def assert_security_headers(response: httpx.Response, *, hsts: bool = False) -> None:
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    policy = directives(response.headers["content-security-policy"])
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "camera=()" in response.headers["permissions-policy"]
    if hsts:
        assert response.headers["strict-transport-security"] == HSTS
    else:
        assert "strict-transport-security" not in response.headers


# --- the middleware on a small Starlette app ----------------------------------------------


async def plain(request: Request) -> Response:
    return PlainTextResponse("hello")


async def own_headers(request: Request) -> Response:
    return PlainTextResponse(
        "framed",
        headers={
            "Content-Security-Policy": "default-src 'none'",
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def small_app(**options: object) -> SecurityHeaders:
    app = Starlette(
        routes=[
            Route("/", plain),
            Route("/own", own_headers),
            Route("/special", plain),
            WebSocketRoute("/ws", echo),
        ]
    )
    return SecurityHeaders(app, **options)  # type: ignore[arg-type]


@pytest.fixture
async def small() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=small_app(hsts=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_every_response_carries_the_headers(small: httpx.AsyncClient) -> None:
    for path in ("/", "/missing"):
        response = await small.get(path)
        assert_security_headers(response)
        assert response.headers["content-security-policy"] == DEFAULT_CSP
    assert (await small.get("/missing")).status_code == 404
    assert (await small.post("/")).status_code == 405
    assert_security_headers(await small.post("/"))


async def test_the_default_policy_is_strict() -> None:
    policy = directives(DEFAULT_CSP)

    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "https://avatars.githubusercontent.com"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in DEFAULT_CSP


async def test_headers_the_app_set_itself_are_kept(small: httpx.AsyncClient) -> None:
    response = await small.get("/own")

    assert response.headers["content-security-policy"] == "default-src 'none'"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'"]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_hsts_only_when_asked_for() -> None:
    transport = httpx.ASGITransport(app=small_app(hsts=True))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        assert_security_headers(await c.get("/"), hsts=True)


async def test_a_custom_policy_and_per_path_policies() -> None:
    app = small_app(hsts=False, csp="default-src 'none'", per_path={"/special": "img-src *"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/")).headers["content-security-policy"] == "default-src 'none'"
        special = await c.get("/special")
        assert special.headers["content-security-policy"] == "img-src *"
        assert special.headers["x-frame-options"] == "DENY"
        # Exact paths only: a longer path is not the special one.
        assert (await c.get("/special/x")).headers["content-security-policy"] == (
            "default-src 'none'"
        )


def test_websockets_pass_through_untouched() -> None:
    with TestClient(small_app(hsts=True)) as c, c.websocket_connect("/ws") as socket:
        socket.send_text("ping")
        assert socket.receive_text() == "ping"


# --- the docs pages' policies ----------------------------------------------------------------


def test_inline_blocks_and_their_hashes() -> None:
    html = (
        "<html><head><style>b { color: red }</style>"
        '<script src="https://cdn.example/x.js"></script></head>'
        "<body><script>\n  run(1 < 2 && 'a');\n</script></body></html>"
    )

    scripts, styles = inline_blocks(html)

    assert scripts == ["\n  run(1 < 2 && 'a');\n"]
    assert styles == ["b { color: red }"]
    # The value the CSP specification gives for the hash of "alert('Hello, world.');".
    assert csp_hash("alert('Hello, world.');") == (
        "'sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng='"
    )


def test_docs_policies_allow_the_cdn_and_the_exact_inline_script() -> None:
    policies = docs_csp("/openapi.json", "JARVIS")

    assert set(policies) == {"/docs", "/docs/oauth2-redirect", "/redoc"}
    swagger = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="JARVIS - Swagger UI",
        oauth2_redirect_url="/docs/oauth2-redirect",
    )
    [script], [] = inline_blocks(bytes(swagger.body).decode())
    docs = directives(policies["/docs"])
    assert docs["script-src"] == ["'self'", "https://cdn.jsdelivr.net", csp_hash(script)]
    assert docs["style-src"] == ["'self'", "https://cdn.jsdelivr.net"]
    assert docs["frame-ancestors"] == ["'none'"]
    for policy in policies.values():
        assert "'unsafe-inline'" not in policy
        assert "'unsafe-eval'" not in policy
    # Another OpenAPI URL is another inline script, so another hash.
    other = directives(docs_csp("/api/openapi.json", "JARVIS")["/docs"])
    assert other["script-src"] != docs["script-src"]


def test_no_openapi_no_docs_policies() -> None:
    assert docs_csp(None, "JARVIS") == {}
    assert set(docs_csp("/openapi.json", "JARVIS", redoc_url=None)) == {
        "/docs",
        "/docs/oauth2-redirect",
    }


# --- the real application ----------------------------------------------------------------


async def test_the_app_answers_with_the_headers(client: httpx.AsyncClient) -> None:
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert_security_headers(health)
    assert health.headers["content-security-policy"] == DEFAULT_CSP

    missing = await client.get("/api/no-such-thing")
    assert missing.status_code == 404
    assert_security_headers(missing)

    problem = await client.post("/api/login", json={"email": "not-an-email"})
    assert problem.status_code == 422
    assert problem.headers["content-type"].startswith("application/problem+json")
    assert_security_headers(problem)


async def test_an_unexpected_error_answers_with_the_headers_too(
    settings: Settings, db: Database
) -> None:
    router = APIRouter()

    @router.get("/api/test-explodes")
    async def explodes() -> None:
        raise RuntimeError("boom")

    app = create_app(settings, database=db)
    app.include_router(router)
    async with app.router.lifespan_context(app):
        # The 500 handler re-raises after answering; look at the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get("/api/test-explodes")

    assert response.status_code == 500
    assert_security_headers(response)


async def test_production_adds_hsts(database_url: str, db: Database) -> None:
    settings = Settings(
        database_url=database_url,
        env="production",
        secret_key="production-secret-" + "p" * 40,
        log_level="WARNING",
    )
    async with app_client(settings, db) as c:
        assert_security_headers(await c.get("/api/health"), hsts=True)


async def test_the_docs_page_csp_allows_exactly_its_inline_script(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for path, kind in (("/docs", "script-src"), ("/docs/oauth2-redirect", "script-src")):
        page = await client.get(path)
        assert page.status_code == 200
        assert_security_headers(page)
        scripts, _ = inline_blocks(page.text)
        assert scripts, f"{path} has no inline script any more"
        allowed = directives(page.headers["content-security-policy"])[kind]
        for script in scripts:
            assert csp_hash(script) in allowed, path
    docs = directives((await client.get("/docs")).headers["content-security-policy"])
    assert "https://cdn.jsdelivr.net" in docs["script-src"]
    assert "https://cdn.jsdelivr.net" in docs["style-src"]

    redoc = await client.get("/redoc")
    if app.redoc_url is None:
        # ReDoc's bundle injects <style> elements, which no policy without
        # 'unsafe-inline' allows: the app may serve Swagger UI only.
        assert redoc.status_code == 404
        return
    assert redoc.status_code == 200
    assert_security_headers(redoc)
    _, styles = inline_blocks(redoc.text)
    assert styles
    redoc_policy = directives(redoc.headers["content-security-policy"])
    for style in styles:
        assert csp_hash(style) in redoc_policy["style-src"]
    assert "https://cdn.jsdelivr.net" in redoc_policy["script-src"]

    # The API itself keeps the strict policy.
    health = await client.get("/api/health")
    assert health.headers["content-security-policy"] == DEFAULT_CSP


# --- CORS -----------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    answer = await client.options("/api/agents", headers=preflight("https://a.example"))
    assert "access-control-allow-origin" not in answer.headers

    simple = await client.get("/api/agents", headers={"Origin": "https://a.example"})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_allows_exactly_the_configured_origins(database_url: str, db: Database) -> None:
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 40,
        log_level="WARNING",
        cors_origins="https://a.example, https://b.example",
    )
    async with app_client(settings, db) as c:
        allowed = await c.options("/api/agents", headers=preflight("https://a.example"))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://a.example"
        assert "POST" in allowed.headers["access-control-allow-methods"]
        second = await c.options("/api/agents", headers=preflight("https://b.example"))
        assert second.headers["access-control-allow-origin"] == "https://b.example"

        refused = await c.options("/api/agents", headers=preflight("https://evil.example"))
        assert refused.headers.get("access-control-allow-origin") not in (
            "https://evil.example",
            "*",
        )
        assert "access-control-allow-origin" not in refused.headers

        simple = await c.get("/api/agents", headers={"Origin": "https://a.example"})
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == "https://a.example"
        other = await c.get("/api/agents", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # Preflights and answers carry the security headers as well.
        assert_security_headers(allowed)
        assert re.search(r"\bOrigin\b", simple.headers.get("vary", ""))
