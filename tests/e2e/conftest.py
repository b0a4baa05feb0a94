"""Browser tests: a live JARVIS server (uvicorn in a subprocess) driven by real Chromium.

Playwright's async API drives Debian's Chromium (``/usr/bin/chromium``, installed by
``make test`` when missing). Without it, or without the ``playwright`` package, the suite is
skipped and the run's summary says so (``SKIPPED SUITE browser``); with ``CI=true`` the tests
fail instead.

The browser never reaches the internet: every request whose host is not 127.0.0.1 is
answered from :class:`ExternalRequests` (a stand-in registered by the test) or aborted, and
the host resolver maps every other name to nothing.

Every test here runs on one session-wide event loop, the loop the shared browser lives on.

Screenshots (:func:`save_screenshot`) go to ``JARVIS_ARTIFACTS_DIR``, by default
``test-artifacts/screenshots/`` at the repository's root (ignored by git), as
``<name>-desktop.png`` or ``<name>-phone.png``.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio

from jarvis.auth.bootstrap import ensure_admin
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.demo.service import seed_demo
from jarvis.wiring import config_service
from tests.conftest import IN_CI, TEST_SECRET_KEY, _skipped_suites

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Route, ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Below Playwright's routing, for what the browser fetches on its own: no name but
    # 127.0.0.1 resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LOCAL_HOST = "127.0.0.1"
SERVER_START_SECONDS = 60
E2E_DIR = Path(__file__).parent
# The demo's sign-ins (passwords in LiveServer.demo_users).
ADMIN_EMAIL = "admin@jarvis.local"
UNDERWRITER_EMAIL = "rachel.thompson@jarvis.local"
IT_SUPPORT_EMAIL = "john.stevens@jarvis.local"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every browser test on the session's loop, where the shared browser lives."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


# --- why the suite cannot run -----------------------------------------------------------


def _browser_unavailable() -> str | None:
    """None when Playwright and Chromium are installed, else why not."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is not installed ({exc}); run `make install`"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing; `make test` installs Debian's chromium package"
    return None


def _require_browser() -> None:
    reason = _browser_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    _skipped_suites["browser"] = reason
    pytest.skip(reason)


# --- live servers -----------------------------------------------------------------------


@dataclass
class LiveServer:
    """A JARVIS server in its own process, serving ``url``."""

    url: str
    process: subprocess.Popen[str]
    log: list[str]
    demo_users: dict[str, str] = field(default_factory=dict)  # email -> password (+ admin)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def _server_env(database_url: str, extra: dict[str, str]) -> dict[str, str]:
    # The developer's own JARVIS_* settings (Redis, production, CORS...) stay out.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("JARVIS_")}
    env |= {
        "JARVIS_DATABASE_URL": database_url,
        "JARVIS_SECRET_KEY": TEST_SECRET_KEY,
        "JARVIS_LOG_LEVEL": "WARNING",
        "JARVIS_RATE_LIMITS": "false",
        **extra,
    }
    return env


def start_live_server(database: Path, **settings: str) -> LiveServer:
    """Serve the migrated SQLite file ``database`` on a free port; ``settings`` are extra
    ``JARVIS_*`` variables. Returns once /api/health answers 200."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "jarvis.main:app",
            "--host",
            LOCAL_HOST,
            "--port",
            "0",  # uvicorn binds a free port and names it in its log
            "--no-access-log",
            "--log-level",
            "info",
        ],
        env=_server_env(f"sqlite+aiosqlite:///{database}", settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def drain(stream: Any) -> None:  # keeps the pipe from filling up, and keeps the log
        for line in stream:
            log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    url = None
    while url is None:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            raise RuntimeError("the live server did not start:\n" + "".join(log))
        match = re.search(r"Uvicorn running on (http://\S+)", line)
        if match:
            url = match.group(1)
    server = LiveServer(url=url, process=process, log=log)
    try:
        _wait_healthy(server, deadline)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: LiveServer, deadline: float) -> None:
    while True:
        try:
            if httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the live server is not healthy:\n" + "".join(server.log))
        time.sleep(0.05)


def serve_demo(path: Path) -> LiveServer:
    """A live server on a new SQLite file at ``path`` with the demo and its sign-ins."""
    users = asyncio.run(_prepare_database(f"sqlite+aiosqlite:///{path}", demo=True))
    server = start_live_server(path)
    server.demo_users = users
    return server


async def _prepare_database(url: str, *, demo: bool) -> dict[str, str]:
    """Migrate, add the built-in registry, and (``demo``) seed the demo and the first admin;
    return the demo users' passwords."""
    await upgrade(url)
    db = Database.from_url(url)
    try:
        # Committed first: ConfigService reads the registry on its own connection.
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
        if not demo:
            return {}
        config = config_service(db, poll_seconds=0)
        async with unit_of_work(db) as session:
            result = await seed_demo(session, config=config)
            # The first admin, as `jarvis seed demo` adds it (password generated).
            admin = await ensure_admin(
                session, email=ADMIN_EMAIL, password=None, generate=True, config=config
            )
        users = dict(result.users_created)
        if admin is not None and admin.generated_password is not None:
            users[ADMIN_EMAIL] = admin.generated_password
        return users
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def live_server(e2e_dir: Path) -> Iterator[LiveServer]:
    """The demo, served with the default settings (CORS closed)."""
    _require_browser()
    path = e2e_dir / "demo.db"
    server = serve_demo(path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cors_live_server(e2e_dir: Path, other_origin: OtherOrigin) -> Iterator[LiveServer]:
    """An empty JARVIS whose JARVIS_CORS_ORIGINS names :func:`other_origin`."""
    _require_browser()
    path = e2e_dir / "cors.db"
    asyncio.run(_prepare_database(f"sqlite+aiosqlite:///{path}", demo=False))
    server = start_live_server(path, JARVIS_CORS_ORIGINS=other_origin.url)
    yield server
    server.stop()


# --- a second origin --------------------------------------------------------------------


@dataclass
class OtherOrigin:
    """A plain HTTP server on another port of 127.0.0.1 (so another origin) serving an
    empty page at every path, with no security headers; tests build on it with script."""

    url: str
    server: ThreadingHTTPServer


class _EmptyPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = b"<!doctype html><html><head><title>other origin</title></head><body></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass


@pytest.fixture(scope="session")
def other_origin() -> Iterator[OtherOrigin]:
    httpd = ThreadingHTTPServer((LOCAL_HOST, 0), _EmptyPage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield OtherOrigin(url=f"http://{LOCAL_HOST}:{httpd.server_address[1]}", server=httpd)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# --- the browser ------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, shared by the session."""
    _require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class ExternalRequests:
    """What the browser asked of hosts other than 127.0.0.1: ``stand_ins`` maps a URL to the
    (content type, body) served in its place; everything else is aborted."""

    stand_ins: dict[str, tuple[str, str]] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    async def handle(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == LOCAL_HOST:
            await route.continue_()
        elif url in self.stand_ins:
            content_type, body = self.stand_ins[url]
            self.served.append(url)
            await route.fulfill(status=200, content_type=content_type, body=body)
        else:
            self.refused.append(url)
            await route.abort("internetdisconnected")


@pytest.fixture
def external() -> ExternalRequests:
    return ExternalRequests()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser, external: ExternalRequests) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (cookies, storage) per test, cut off from the internet."""
    ctx = await browser.new_context()
    await ctx.route("**/*", external.handle)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


# --- pages: viewports, signed-in pages, screenshots -------------------------------------

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
PHONE_MAX_WIDTH = 600
REPO_ROOT = E2E_DIR.parents[1]


def artifacts_dir() -> Path:
    """Where screenshots go: ``JARVIS_ARTIFACTS_DIR`` or ``test-artifacts/screenshots/``."""
    configured = os.environ.get("JARVIS_ARTIFACTS_DIR")
    return Path(configured) if configured else REPO_ROOT / "test-artifacts" / "screenshots"


async def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save ``page`` (the whole page, or the viewport with ``full_page=False``) as
    ``<artefacts>/<name>-desktop.png`` or ``<name>-phone.png`` by the viewport's width, and
    return the file's path."""
    viewport = page.viewport_size
    kind = "phone" if viewport is not None and viewport["width"] <= PHONE_MAX_WIDTH else "desktop"
    target = artifacts_dir() / f"{name}-{kind}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    if full_page:  # from the top: a sticky header scrolled along would cut the page
        await page.evaluate("() => window.scrollTo(0, 0)")
    await page.screenshot(path=target, full_page=full_page, animations="disabled")
    return target


async def new_context(
    browser: Browser, external: ExternalRequests, **options: Any
) -> BrowserContext:
    """Another browser profile cut off from the internet, with Playwright's context
    ``options`` (viewport, java_script_enabled...); the caller closes it."""
    ctx = await browser.new_context(**({"viewport": DESKTOP} | options))
    await ctx.route("**/*", external.handle)
    return ctx


async def sign_in(page: Page, server: LiveServer, email: str) -> None:
    """Sign in as the demo user ``email`` through the sign-in form; lands on the dashboard."""
    await page.goto(f"{server.url}/login")
    await page.get_by_label("E-mail address").fill(email)
    await page.get_by_label("Password").fill(server.demo_users[email])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{server.url}/")


async def call_api(
    page: Page, server: LiveServer, method: str, path: str, body: object = None
) -> Any:
    """Call the JSON API as the page's signed-in user (its session cookie and the CSRF
    header) and return the decoded answer; anything but 2xx fails the test."""
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    response = await page.request.fetch(
        server.url + path,
        method=method,
        data=body,
        headers={"X-CSRF-Token": cookies.get("jarvis_csrf", "")},
    )
    assert response.ok, f"{method} {path}: {response.status} {await response.text()}"
    return None if response.status == 204 else await response.json()


@pytest_asyncio.fixture(loop_scope="session")
async def admin_page(page: Page, live_server: LiveServer) -> Page:
    """The demo's admin, signed in, on the dashboard (desktop viewport)."""
    await page.set_viewport_size(DESKTOP)
    await sign_in(page, live_server, ADMIN_EMAIL)
    return page


@pytest_asyncio.fixture(loop_scope="session")
async def underwriter_page(page: Page, live_server: LiveServer) -> Page:
    """Rachel Thompson, the demo underwriter, signed in, on the dashboard (desktop)."""
    await page.set_viewport_size(DESKTOP)
    await sign_in(page, live_server, UNDERWRITER_EMAIL)
    return page
