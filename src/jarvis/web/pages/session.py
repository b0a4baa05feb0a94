"""Signing in and out, the persona theme stylesheets and the light/dark preference."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from jarvis.auth.sessions.signin import sign_in_with_password, sign_out
from jarvis.auth.sso.oauth import LOGIN_PATHS, safe_next_path
from jarvis.auth.sso.providers import sign_in_providers
from jarvis.config.dependencies import CONFIG
from jarvis.core.guards import current_principal
from jarvis.core.personas import PERSONA_KEY_PATTERN
from jarvis.db.session import DbSession
from jarvis.errors import JarvisError
from jarvis.personas.service import persona_colours
from jarvis.web.forms import read_form
from jarvis.web.rendering import (
    MODE_COOKIE,
    MODES,
    page_context,
    redirect,
    render,
)
from jarvis.web.theme import scheme_version, theme_css

router = APIRouter(include_in_schema=False)

MODE_COOKIE_DAYS = 365


def _providers(request: Request, next_path: str) -> list[dict[str, str]]:
    suffix = f"?next={quote(next_path, safe='')}" if next_path != "/" else ""
    return [
        {"id": p.id, "name": p.name, "href": LOGIN_PATHS[p.id] + suffix}
        for p in sign_in_providers(request)
    ]


@router.get("/login")
async def login_page(request: Request, session: DbSession) -> Response:
    principal = await current_principal(request)
    next_path = safe_next_path(request.query_params.get("next"))
    if principal is not None:
        return redirect(next_path)
    ctx = await page_context(request, session, None, section="login")
    return render(
        ctx,
        "login.html",
        next_path=next_path,
        email="",
        error=None,
        providers=_providers(request, next_path),
    )


@router.post("/login")
async def login_submit(request: Request, session: DbSession) -> Response:
    form = await read_form(request)
    email = form.get("email").strip()
    next_path = safe_next_path(form.get("next"))
    response = redirect(next_path, toast="Signed in")
    error: str | None = None
    status = 422
    if not email or not form.get("password"):
        error = "Enter your e-mail address and password."
    else:
        try:
            await sign_in_with_password(
                request, response, CONFIG.get(request), email, form.get("password")
            )
        except JarvisError as exc:
            if exc.status not in (401, 429):
                raise
            error, status = exc.detail[:1].upper() + exc.detail[1:], exc.status
    if error is None:
        return response
    ctx = await page_context(request, session, None, section="login")
    return render(
        ctx,
        "login.html",
        status_code=status,
        next_path=next_path,
        email=email,
        error=error,
        providers=_providers(request, next_path),
    )


@router.post("/logout")
async def logout_submit(request: Request, session: DbSession) -> Response:
    response = redirect("/login", toast="Signed out")
    await sign_out(request, response, session)
    return response


@router.get("/theme/{persona}.css")
async def theme_stylesheet(
    request: Request,
    persona: Annotated[str, Path(pattern=PERSONA_KEY_PATTERN)],
) -> Response:
    """The persona's colours as CSS custom properties (immutable under its version)."""
    config = CONFIG.get(request)
    scheme = (await persona_colours(config, persona)).model_dump()
    version = scheme_version(scheme)
    cache = (
        "public, max-age=31536000, immutable"
        if request.query_params.get("v") == version
        else "no-cache"
    )
    return Response(
        theme_css(scheme),
        media_type="text/css",
        headers={"Cache-Control": cache, "ETag": f'"{version}"'},
    )


@router.post("/preferences/mode")
async def set_mode(request: Request) -> Response:
    """Light, dark or the system's choice (a cookie read when pages render)."""
    form = await read_form(request)
    mode = form.get("mode")
    if mode not in MODES:
        mode = "auto"
    response = redirect(safe_next_path(form.get("next")))
    response.set_cookie(
        MODE_COOKIE, mode, max_age=MODE_COOKIE_DAYS * 86400, samesite="lax", httponly=False
    )
    return response
