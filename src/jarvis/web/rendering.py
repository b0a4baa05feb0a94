"""Rendering pages: the Jinja2 environment, static asset URLs and the context every page
shares (who is signed in, their theme, the CSRF token, the navigation, the command bar).

Templates autoescape every value; nothing user-supplied is marked safe. Undefined names are
errors (a typo in a template fails its test instead of rendering blank).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from jarvis.auth.sessions.cookies import SESSION_COOKIE, csrf_token_for
from jarvis.config.dependencies import CONFIG
from jarvis.config.service import ConfigService
from jarvis.core.identity import Principal
from jarvis.personas.service import persona_colours, persona_names
from jarvis.settings import SECRET_KEY
from jarvis.web.theme import scheme_version

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
MODE_COOKIE = "jarvis_mode"
TOAST_COOKIE = "jarvis_toast"
MODES = ("auto", "light", "dark")
DEFAULT_THEME_PERSONA = "admin"


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    section: str


NAV = (
    NavItem("/", "Dashboard", "dashboard"),
    NavItem("/agents", "Agents", "agents"),
    NavItem("/executions", "Executions", "executions"),
    NavItem("/config", "Configuration", "config"),
)


@cache
def asset_version(relative: str) -> str:
    """A digest of a static file's content: its URL changes whenever the file does."""
    data = (STATIC_DIR / relative).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def asset_url(relative: str) -> str:
    """The URL of a static file. Stylesheets and images carry their digest (cached for a
    year); ES modules do not, because modules import each other by plain relative URLs and
    one module under two URLs would run twice (every listener doubled): they are revalidated
    instead (ETag, 304)."""
    if relative.endswith(".js"):
        return f"/static/{relative}"
    return f"/static/{relative}?v={asset_version(relative)}"


def _query(request: Request, **changes: Any) -> str:
    """The current URL's query with ``changes`` applied (None removes a parameter)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def _json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _duration(ms: float | int | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{round(ms)} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{int(ms // 60_000)} min {round((ms % 60_000) / 1000)} s"


def _build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals["asset_url"] = asset_url
    env.filters["json_pretty"] = _json_pretty
    env.filters["duration"] = _duration
    env.filters["urlquote"] = lambda s: quote(str(s), safe="")
    return env


environment = _build_environment()


@dataclass
class PageContext:
    """What every page knows about the request and its viewer."""

    request: Request
    principal: Principal | None
    section: str
    csrf_token: str = ""
    theme_href: str = ""
    mode: str = "auto"
    personas: list[tuple[str, str]] = field(default_factory=list)
    persona_name: str = ""
    toast: str | None = None

    @property
    def nav(self) -> tuple[NavItem, ...]:
        return NAV

    def query(self, **changes: Any) -> str:
        return _query(self.request, **changes)

    @property
    def path_with_query(self) -> str:
        url = self.request.url
        return url.path + (f"?{url.query}" if url.query else "")


async def theme_href(config: ConfigService, persona: str) -> str:
    scheme = (await persona_colours(config, persona)).model_dump()
    return f"/theme/{quote(persona, safe='')}.css?v={scheme_version(scheme)}"


async def _personas(session: AsyncSession, principal: Principal) -> list[tuple[str, str]]:
    """The personas the viewer may run commands as: every one for admins, else their own."""
    return await persona_names(session, key=None if principal.is_admin else principal.persona)


async def page_context(
    request: Request, session: AsyncSession, principal: Principal | None, section: str
) -> PageContext:
    """The shared context of a page for ``principal`` (None on the sign-in page)."""
    config = CONFIG.get(request)
    mode = request.cookies.get(MODE_COOKIE, "auto")
    ctx = PageContext(
        request=request,
        principal=principal,
        section=section,
        mode=mode if mode in MODES else "auto",
        toast=unquote(request.cookies.get(TOAST_COOKIE, ""))[:200] or None,
    )
    persona = principal.persona if principal is not None else DEFAULT_THEME_PERSONA
    ctx.theme_href = await theme_href(config, persona)
    if principal is not None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and principal.via == "session":
            ctx.csrf_token = csrf_token_for(SECRET_KEY.get(request), cookie)
        ctx.personas = await _personas(session, principal)
        ctx.persona_name = dict(ctx.personas).get(principal.persona, principal.persona)
    return ctx


def render(
    ctx: PageContext,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render ``template`` with the page context as ``page``."""
    html = environment.get_template(template).render(page=ctx, **values)
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    if ctx.toast:
        response.delete_cookie(TOAST_COOKIE, path="/")
    return response


def redirect(url: str, *, toast: str | None = None) -> RedirectResponse:
    """303 to ``url`` (after a form post); ``toast`` is shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    if toast:
        # A cookie, not a query parameter: a reload or a shared link does not repeat it.
        response.set_cookie(TOAST_COOKIE, quote(toast[:200]), max_age=60, samesite="lax")
    return response


def markup(text: str) -> Markup:
    """Trusted markup built by the server (SVG charts); never for user-supplied text."""
    return Markup(text)  # noqa: S704 - callers build it from escaped parts
