"""Security headers on every HTTP response (pure ASGI middleware), and the CSP of the
interactive API docs.

The Content-Security-Policy never allows ``'unsafe-inline'``: our pages load their
scripts and styles from our own origin. FastAPI's docs pages load Swagger UI (or ReDoc)
from a CDN and carry an inline script (or style); those paths get a policy that allows the
CDN and exactly those inline blocks, by their SHA-256 hashes (:func:`docs_csp`).

The middleware must wrap the whole app, Starlette's error middleware included, for the
500 answer to carry the headers too: use :func:`install_security_headers`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import Any

from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: https://avatars.githubusercontent.com; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=()"
)
# Where FastAPI's docs pages load Swagger UI, ReDoc, ReDoc's fonts and their favicon.
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_FAVICON_HOST = "https://fastapi.tiangolo.com"
REDOC_FONT_CSS = "https://fonts.googleapis.com"
REDOC_FONT_FILES = "https://fonts.gstatic.com"


class SecurityHeaders:
    """Add the security headers to every HTTP response that does not set them itself.

    ``csp`` replaces the default policy; ``per_path`` gives exact paths their own policy
    (see :func:`docs_csp`). ``hsts`` adds Strict-Transport-Security: production only,
    since a browser that has seen it refuses plain HTTP to the host for two years.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool,
        csp: str | None = None,
        per_path: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.headers = _encode(_security_headers(csp or DEFAULT_CSP, hsts=hsts))
        self.per_path = {
            path: _encode(_security_headers(policy, hsts=hsts))
            for path, policy in (per_path or {}).items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.per_path.get(scope["path"], self.headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in extra if header[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(
    app: Starlette,
    *,
    hsts: bool,
    csp: str | None = None,
    per_path: Mapping[str, str] | None = None,
) -> None:
    """Wrap ``app``'s whole middleware stack in :class:`SecurityHeaders`.

    ``app.add_middleware`` cannot do this: Starlette keeps its ServerErrorMiddleware
    outermost, so the 500 answer to an unexpected exception would leave without the headers.
    """
    build_stack = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return SecurityHeaders(build_stack(), hsts=hsts, csp=csp, per_path=per_path)

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]


def _security_headers(csp: str, *, hsts: bool) -> dict[str, str]:
    headers = {
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        "referrer-policy": "strict-origin-when-cross-origin",
        "x-frame-options": "DENY",
        "cross-origin-opener-policy": "same-origin",
        "permissions-policy": PERMISSIONS_POLICY,
    }
    if hsts:
        headers["strict-transport-security"] = HSTS
    return headers


def _encode(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class _InlineBlocks(HTMLParser):
    """Collects the text of inline ``<script>`` (without ``src``) and ``<style>`` blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._current: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not any(name == "src" for name, _ in attrs):
            self._current, self._text = self.scripts, []
        elif tag == "style":
            self._current, self._text = self.styles, []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._current is not None:
            self._current.append("".join(self._text))
            self._current = None


def inline_blocks(html: str) -> tuple[list[str], list[str]]:
    """The inline scripts and inline styles of an HTML page, exactly as the browser hashes
    them."""
    parser = _InlineBlocks()
    parser.feed(html)
    parser.close()
    return parser.scripts, parser.styles


def csp_hash(source: str) -> str:
    """The CSP source expression allowing one inline block: ``'sha256-<base64>'``."""
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def _docs_policy(
    html: str,
    *,
    script_hosts: Iterable[str] = (),
    style_hosts: Iterable[str] = (),
    font_hosts: Iterable[str] = (),
    worker: str | None = None,
) -> str:
    scripts, styles = inline_blocks(html)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hosts, *map(csp_hash, scripts)],
        "style-src": ["'self'", *style_hosts, *map(csp_hash, styles)],
        "img-src": ["'self'", "data:", DOCS_FAVICON_HOST],
        "connect-src": ["'self'"],
        "font-src": ["'self'", *font_hosts],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    if worker is not None:
        directives["worker-src"] = ["'self'", worker]
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def docs_csp(
    openapi_url: str | None,
    title: str,
    *,
    docs_url: str | None = "/docs",
    redoc_url: str | None = "/redoc",
    oauth2_redirect_url: str | None = "/docs/oauth2-redirect",
    init_oauth: dict[str, Any] | None = None,
    swagger_ui_parameters: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Per-path policies for FastAPI's docs pages, hashed from the very HTML FastAPI serves
    for these arguments (pass the app's own: ``app.openapi_url``, ``app.title``, and the
    ``swagger_ui_*`` ones when set). Assumes the app is served at the root path ``/``.

    Swagger UI (``/docs``) works under its policy. ReDoc does not: its bundle injects
    ``<style>`` elements (styled-components) that only ``'unsafe-inline'`` would allow, so
    an app with this policy should set ``redoc_url=None`` (and pass it here).
    """
    if openapi_url is None:
        return {}
    policies: dict[str, str] = {}
    if docs_url is not None:
        swagger = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url,
            init_oauth=init_oauth,
            swagger_ui_parameters=swagger_ui_parameters,
        )
        policies[docs_url] = _docs_policy(
            bytes(swagger.body).decode(), script_hosts=[DOCS_CDN], style_hosts=[DOCS_CDN]
        )
        if oauth2_redirect_url is not None:
            redirect = get_swagger_ui_oauth2_redirect_html()
            policies[oauth2_redirect_url] = _docs_policy(bytes(redirect.body).decode())
    if redoc_url is not None:
        redoc = get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc")
        policies[redoc_url] = _docs_policy(
            bytes(redoc.body).decode(),
            script_hosts=[DOCS_CDN],
            style_hosts=[DOCS_CDN, REDOC_FONT_CSS],
            font_hosts=[REDOC_FONT_FILES],
            # ReDoc runs its search index in a Web Worker made from a blob: URL.
            worker="blob:",
        )
    return policies
