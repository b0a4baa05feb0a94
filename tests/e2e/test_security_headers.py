"""The security headers as a browser enforces them: the CSP refuses injected inline script
and still lets Swagger UI start, CORS is closed unless an origin is named, and no other
origin can frame the app. Real Chromium against a live server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from jarvis.kit.headers import DEFAULT_CSP

if TYPE_CHECKING:
    from playwright.async_api import Page, Route

    from tests.e2e.conftest import ExternalRequests, LiveServer, OtherOrigin

# Runs before any script of every document (outside the page's CSP) and keeps what the CSP
# refused, as the page itself sees it.
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
    window.cspViolations.push({directive: event.effectiveDirective, blocked: event.blockedURI});
});
"""

SWAGGER_CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
# Stands in for Swagger UI's bundle: records the call the page's inline script makes, and
# fetches the OpenAPI document as the real bundle would (connect-src 'self').
SWAGGER_STAND_IN = """
window.SwaggerUIBundle = function (options) {
    window.swaggerCalls = (window.swaggerCalls || []).concat([options.url]);
    fetch(options.url)
        .then((response) => response.json())
        .then((doc) => { window.openapiTitle = doc.info.title; });
    return {};
};
window.SwaggerUIBundle.presets = {apis: {}};
window.SwaggerUIBundle.SwaggerUIStandalonePreset = {};
"""

# fetch() from the page's own origin; a CORS refusal rejects the promise.
CROSS_ORIGIN_FETCH = """
async (url) => {
    try {
        const response = await fetch(url);
        return {ok: true, status: response.status, body: await response.json()};
    } catch (error) {
        return {ok: false, error: String(error)};
    }
}
"""

# Adds an <iframe> per URL and waits until each has finished loading (or failed to).
ADD_FRAMES = """
async (urls) => {
    await Promise.all(urls.map((url) => new Promise((resolve) => {
        const frame = document.createElement('iframe');
        frame.src = url;
        frame.addEventListener('load', resolve);
        document.body.appendChild(frame);
    })));
}
"""


async def _inject_inline_script(page: Page) -> None:
    from playwright.async_api import Error

    try:
        await page.add_script_tag(content="window.pwned = 1")
    except Error:
        # Playwright reports the refused script as an error on some versions; what the page
        # did (below) is what the tests judge.
        pass


def _without_csp(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "content-security-policy"}


# --- inline script ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/health", "/docs", "/api/no-such-route"])
async def test_an_injected_inline_script_is_refused(
    page: Page, live_server: LiveServer, path: str
) -> None:
    await page.add_init_script(RECORD_CSP_VIOLATIONS)
    await page.goto(live_server.url + path)

    await _inject_inline_script(page)

    assert await page.evaluate("window.pwned") is None
    violations = await page.evaluate("window.cspViolations")
    assert {"directive": "script-src-elem", "blocked": "inline"} in violations


async def test_the_same_injection_runs_once_the_csp_is_gone(
    page: Page, live_server: LiveServer
) -> None:
    """The control for the test above: the very page, without its CSP header, runs it."""

    async def strip_csp(route: Route) -> None:
        response = await route.fetch()
        await route.fulfill(response=response, headers=_without_csp(response.headers))

    await page.route(f"{live_server.url}/api/health", strip_csp)
    await page.add_init_script(RECORD_CSP_VIOLATIONS)
    await page.goto(f"{live_server.url}/api/health")

    await _inject_inline_script(page)

    assert await page.evaluate("window.pwned") == 1
    assert await page.evaluate("window.cspViolations") == []


# --- Swagger UI -------------------------------------------------------------------------


def _serve_swagger_stand_in(external: ExternalRequests) -> None:
    external.stand_ins[f"{SWAGGER_CDN}/swagger-ui-bundle.js"] = (
        "application/javascript",
        SWAGGER_STAND_IN,
    )
    external.stand_ins[f"{SWAGGER_CDN}/swagger-ui.css"] = ("text/css", "#swagger-ui {}")


async def test_swagger_ui_starts_under_its_csp(
    page: Page, live_server: LiveServer, external: ExternalRequests
) -> None:
    _serve_swagger_stand_in(external)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.add_init_script(RECORD_CSP_VIOLATIONS)

    await page.goto(f"{live_server.url}/docs")
    await page.wait_for_function("() => window.openapiTitle !== undefined")

    assert await page.evaluate("window.swaggerCalls") == ["/openapi.json"]
    assert await page.evaluate("window.openapiTitle") == "JARVIS"
    assert await page.evaluate("window.cspViolations") == []
    assert errors == []
    assert sorted(external.served) == sorted(external.stand_ins)


async def test_swagger_ui_init_script_runs_only_by_its_hash(
    page: Page, live_server: LiveServer, external: ExternalRequests
) -> None:
    """The control for the test above: /docs under the default policy (no hash, no CDN)
    gets neither the bundle nor its inline script run."""

    async def default_policy(route: Route) -> None:
        response = await route.fetch()
        headers = _without_csp(response.headers) | {"content-security-policy": DEFAULT_CSP}
        await route.fulfill(response=response, headers=headers)

    _serve_swagger_stand_in(external)
    await page.route(f"{live_server.url}/docs", default_policy)
    await page.add_init_script(RECORD_CSP_VIOLATIONS)

    await page.goto(f"{live_server.url}/docs")
    await page.wait_for_load_state("load")

    assert await page.evaluate("window.swaggerCalls") is None
    violations = await page.evaluate("window.cspViolations")
    assert {"directive": "script-src-elem", "blocked": "inline"} in violations
    assert {
        "directive": "script-src-elem",
        "blocked": f"{SWAGGER_CDN}/swagger-ui-bundle.js",
    } in violations


# --- CORS -------------------------------------------------------------------------------


async def test_cross_origin_fetch_is_refused_by_default(
    page: Page, live_server: LiveServer, other_origin: OtherOrigin
) -> None:
    await page.goto(other_origin.url)

    result: dict[str, Any] = await page.evaluate(
        CROSS_ORIGIN_FETCH, f"{live_server.url}/api/health"
    )

    assert result == {"ok": False, "error": "TypeError: Failed to fetch"}


async def test_cross_origin_fetch_is_allowed_for_a_named_origin(
    page: Page, cors_live_server: LiveServer, other_origin: OtherOrigin
) -> None:
    await page.goto(other_origin.url)

    result: dict[str, Any] = await page.evaluate(
        CROSS_ORIGIN_FETCH, f"{cors_live_server.url}/api/health"
    )

    assert result["ok"] is True, result
    assert result["status"] == 200
    assert result["body"]["status"] == "ok"


# --- framing ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/health", "/docs"])
async def test_another_origin_cannot_frame_the_app(
    page: Page, live_server: LiveServer, other_origin: OtherOrigin, path: str
) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto(other_origin.url)
    framed = live_server.url + path
    # The control: a frame of the page's own origin loads.
    own = f"{other_origin.url}/own"

    await page.evaluate(ADD_FRAMES, [framed, own])

    frames = {frame.url: frame for frame in page.frames if frame is not page.main_frame}
    assert own in frames
    assert await frames[own].title() == "other origin"
    assert framed not in frames  # the refused frame shows Chromium's error page instead
    assert any("frame-ancestors 'none'" in text for text in console), console
