"""Wiring the web UI into the application: page routers, static files, persona theme
stylesheets and the HTML rendering of errors.

Errors keep one source of truth: the API's problem handlers decide status, title and
detail; for a browser on a page, the same problem is rendered as a page in the product's
style (``errors/error.html``), and a page that needs a signed-in viewer redirects to the
sign-in page instead.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from jarvis.auth.dependencies import resolve_principal
from jarvis.db.session import DATABASE, unit_of_work
from jarvis.web.deps import SignInRequired
from jarvis.web.pages import PAGE_ROUTERS
from jarvis.web.rendering import STATIC_DIR, page_context, redirect, render

# Paths that belong to the API and to machines: their errors stay problem+json.
MACHINE_PREFIXES = ("/api/", "/docs", "/openapi.json", "/health", "/metrics", "/static/")

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class VersionedStaticFiles(StaticFiles):
    """Static files; a URL with ``?v=<digest>`` (``asset_url``) is cached for a year."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        query = scope.get("query_string", b"")
        if response.status_code == 200 and query.startswith(b"v="):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        return response


def _is_page_route(request: Request) -> bool:
    route = request.scope.get("route")
    endpoint = getattr(route, "endpoint", None)
    return bool(endpoint is not None and endpoint.__module__.startswith("jarvis.web."))


def is_page_request(request: Request) -> bool:
    """A browser asking for a page (not the API, the docs or a file)."""
    path = request.url.path
    if path == "/api" or path.startswith(MACHINE_PREFIXES):
        return False
    return _is_page_route(request) or "text/html" in request.headers.get("accept", "")


async def _error_page(request: Request, problem: Response, exc: Exception) -> Response:
    try:
        body: dict[str, Any] = json.loads(bytes(problem.body))
    except ValueError:
        body = {}
    status = problem.status_code
    headers = {k: v for k, v in problem.headers.items() if k.lower() == "retry-after"}
    try:
        principal = await resolve_principal(request)
    except Exception:
        principal = None
    template = "errors/not_found.html" if status == 404 else "errors/error.html"
    try:
        async with unit_of_work(DATABASE.get(request), write=False) as session:
            ctx = await page_context(request, session, principal, section="")
    except Exception:
        # The error may be the database itself: the page is still shown, unthemed.
        return problem
    return render(
        ctx,
        template,
        status_code=status,
        headers=headers,
        status=status,
        title=str(body.get("title") or "Error"),
        detail=str(body.get("detail") or ""),
        errors=body.get("errors") or [],
        exception_type=type(exc).__name__,
    )


def _html_or_problem(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        if not is_page_request(request):
            return response
        if isinstance(exc, SignInRequired) or (
            response.status_code == 401 and _is_page_route(request)
        ):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(f"/login?next={quote(target, safe='')}")
        return await _error_page(request, response, exc)

    return handle


def install_web(app: FastAPI) -> None:
    """Add the page routers, /static and HTML errors (after the API's error handlers)."""
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/static", VersionedStaticFiles(directory=STATIC_DIR), name="static")
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _html_or_problem(handler)
