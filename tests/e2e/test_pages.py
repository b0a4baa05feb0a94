"""The pages as a person uses them, in real Chromium against the live demo server: every
page rendered and saved as a screenshot (desktop and phone), signing in, creating an agent
past a field error, a persona colour changed in the Config Registry, keyboard-only use,
reading without JavaScript, and escaping of what users typed.

``JARVIS_UPDATE_SCREENSHOTS=1`` also copies the README's screenshots to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from jarvis.demo.data import PERSONAS
from jarvis.web.theme import mode_theme, to_hex
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    DESKTOP,
    IT_SUPPORT_EMAIL,
    PHONE,
    REPO_ROOT,
    UNDERWRITER_EMAIL,
    artifacts_dir,
    call_api,
    new_context,
    save_screenshot,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

    from tests.e2e.conftest import ExternalRequests, LiveServer


# --- every page, on a desktop and a phone ----------------------------------------------

# Commands the tour runs first, so that the dashboards and lists have executions to show:
# (command, persona, who runs it).
TOUR_COMMANDS = (
    ("Review the new submission from Acme Logistics", "underwriter", UNDERWRITER_EMAIL),
    ("Laptop won't connect to VPN, urgent", "it_support", ADMIN_EMAIL),
    ("Which agents are waiting for approval?", "admin", ADMIN_EMAIL),
)
# Pages the README shows: artefact name -> file in docs/screenshots/.
README_SCREENSHOTS = {
    "dashboard-admin-desktop": "dashboard.png",
    "agents-desktop": "agents.png",
    "config-key-desktop": "config-key.png",
    "execution-desktop": "execution.png",
    "dashboard-admin-phone": "dashboard-phone.png",
}
README_HEIGHT = {"desktop": 1100, "phone": 844}
DOCS_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
TOUR_AGENT = "Intent Router"


@dataclass
class Tour:
    """What the tour's pages show: the executions it ran and a demo agent."""

    executions: dict[str, str]  # command -> execution id
    agent_id: int


def _run_commands(server: LiveServer) -> dict[str, str]:
    """Run TOUR_COMMANDS through the JSON API and wait until each stops moving."""
    ids: dict[str, str] = {}
    clients: dict[str, httpx.Client] = {}
    try:
        for command, persona, email in TOUR_COMMANDS:
            if email not in clients:
                clients[email] = client = httpx.Client(base_url=server.url, timeout=30)
                login = {"email": email, "password": server.demo_users[email]}
                client.post("/api/login", json=login).raise_for_status()
            client = clients[email]
            response = client.post(
                "/api/agent-executions",
                json={"command": command, "persona": persona},
                headers={"X-CSRF-Token": client.cookies["jarvis_csrf"]},
            )
            response.raise_for_status()
            ids[command] = execution_id = response.json()["executionId"]
            for _ in range(600):  # a hang guard, not a timing assertion
                body = client.get(f"/api/agent-executions/{execution_id}").json()
                if body["status"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"{command!r} did not finish: {body['status']}")
        admin = clients[ADMIN_EMAIL]
        agents = admin.get("/api/agents", params={"q": TOUR_AGENT}).json()["items"]
        return ids | {"agent": str(next(a["id"] for a in agents if a["name"] == TOUR_AGENT))}
    finally:
        for client in clients.values():
            client.close()


@pytest.fixture(scope="module")
def tour(live_server: LiveServer) -> Tour:
    ids = _run_commands(live_server)
    return Tour(executions=ids, agent_id=int(ids.pop("agent")))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_every_page_renders_and_is_saved_as_a_screenshot(
    browser: Browser,
    external: ExternalRequests,
    live_server: LiveServer,
    tour: Tour,
    viewport: ViewportSize,
) -> None:
    from playwright.async_api import expect

    url = live_server.url
    kind = "phone" if viewport is PHONE else "desktop"
    errors: list[str] = []
    context = await new_context(browser, external, viewport=viewport, color_scheme="light")
    try:
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))

        async def shot(path: str, name: str, heading: str | re.Pattern[str]) -> None:
            response = await page.goto(url + path)
            assert response is not None and response.status < 500, path
            await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            await save_screenshot(page, name)
            if f"{name}-{kind}" in README_SCREENSHOTS:  # the page's top, for the README
                await page.set_viewport_size({**viewport, "height": README_HEIGHT[kind]})
                await save_screenshot(page, f"{name}-top", full_page=False)
                await page.set_viewport_size(viewport)

        await shot("/login", "login", "Sign in to JARVIS")
        await sign_in(page, live_server, ADMIN_EMAIL)
        await shot("/", "dashboard-admin", "Operations overview")
        await shot("/agents", "agents", re.compile("Agent"))
        await shot(f"/agents/{tour.agent_id}", "agent-detail", TOUR_AGENT)
        await page.goto(f"{url}/agents/new")
        await page.get_by_label("Name").fill("Flood Zone Checker")
        await page.get_by_label("Layer").select_option("System")
        await page.get_by_label("Business function").fill("Flood Risk!")
        await page.get_by_role("button", name="Create agent").click()
        await expect(page.get_by_label("Business function")).to_have_attribute(
            "aria-invalid", "true"
        )
        await save_screenshot(page, "agent-form-error")
        await shot("/config", "config", "Configuration")
        await shot("/config/persona.colors?persona=underwriter", "config-key", "persona.colors")
        await shot("/executions", "executions", "Executions")
        acme = tour.executions[TOUR_COMMANDS[0][0]]
        await shot(f"/executions/{acme}", "execution", "Execution")
        await shot("/no-such-page", "not-found", re.compile("could not find", re.IGNORECASE))

        await context.clear_cookies()
        await sign_in(page, live_server, UNDERWRITER_EMAIL)
        await shot("/", "dashboard-underwriter", re.compile("."))
    finally:
        await context.close()
    assert errors == []
    if os.environ.get("JARVIS_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name, target in README_SCREENSHOTS.items():
            page_name, _, screen = name.rpartition("-")
            source = artifacts_dir() / f"{page_name}-top-{screen}.png"
            if source.exists():
                shutil.copyfile(source, DOCS_SCREENSHOTS / target)


async def test_sign_in_shows_the_error_then_lands_on_the_dashboard(
    page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    await page.goto(f"{live_server.url}/")
    await page.wait_for_url(f"{live_server.url}/login?next=%2F")

    await page.get_by_label("E-mail address").fill(ADMIN_EMAIL)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()

    await expect(page.get_by_role("alert")).to_have_text("The e-mail or password is incorrect")
    await expect(page.get_by_label("E-mail address")).to_have_value(ADMIN_EMAIL)
    await page.get_by_label("Password").fill(live_server.demo_users[ADMIN_EMAIL])
    await page.get_by_role("button", name="Sign in").click()

    await page.wait_for_url(f"{live_server.url}/")
    await expect(page.get_by_role("link", name="Dashboard", exact=True)).to_have_attribute(
        "aria-current", "page"
    )


# --- agents ---------------------------------------------------------------------------


async def test_creating_an_agent_fixes_a_field_error_on_the_way(
    admin_page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    page = admin_page
    await page.get_by_role("link", name="Agents", exact=True).click()
    await page.get_by_role("link", name="New agent").click()
    await page.get_by_label("Name").fill("Flood Zone Checker")
    await page.get_by_label("Layer").select_option("System")
    await page.get_by_label("Business function").fill("Flood Risk!")
    await page.get_by_role("button", name="Create agent").click()

    function = page.get_by_label("Business function")
    await expect(function).to_have_attribute("aria-invalid", "true")
    await expect(function).to_have_accessible_description(
        re.compile("Use lower-case letters, digits and underscores")
    )
    await expect(page.get_by_role("alert").filter(has_text="need attention")).to_be_visible()
    await expect(page.get_by_label("Name")).to_have_value("Flood Zone Checker")

    await function.fill("flood_risk")
    await page.get_by_role("button", name="Create agent").click()

    await expect(page).to_have_url(re.compile(rf"^{live_server.url}/agents/\d+$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Flood Zone Checker")
    await expect(page.get_by_role("status")).to_contain_text("Created agent Flood Zone Checker")


# --- theme ----------------------------------------------------------------------------

NEW_PRIMARY = "#b3261e"
# The theme's colours as the page computes them.
THEME_COLOURS = """
() => ({
    button: getComputedStyle(document.documentElement).getPropertyValue("--button").trim(),
    runButton: getComputedStyle(document.querySelector(".command-bar button[type=submit]"))
        .backgroundColor,
})
"""


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


async def test_a_persona_colour_changed_in_the_registry_themes_the_next_page(
    browser: Browser, external: ExternalRequests, admin_page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    context = await new_context(browser, external, color_scheme="light")
    try:
        john = await context.new_page()
        await sign_in(john, live_server, IT_SUPPORT_EMAIL)
        before = await john.evaluate(THEME_COLOURS)

        page = admin_page
        await page.get_by_role("link", name="Configuration", exact=True).click()
        await page.get_by_label("Search keys and descriptions").fill("colors")
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("link", name="persona.colors").click()
        await page.get_by_label("For persona").select_option(label="IT Support Engineer")
        await page.get_by_role("button", name="Show effective value").click()
        await page.wait_for_url("**/config/persona.colors?persona=it_support*")
        form = page.locator("form[data-set-value]")
        await form.get_by_label("Primary").fill(NEW_PRIMARY)
        await form.get_by_label("Scope", exact=True).select_option("persona")
        await form.get_by_label("Persona", exact=True).select_option(label="IT Support Engineer")
        await form.get_by_label("Reason").fill("Service desk brand refresh")
        await form.get_by_role("button", name="Save value").click()
        await expect(page.get_by_role("status")).to_contain_text("aved")

        await john.reload()
        after = await john.evaluate(THEME_COLOURS)
    finally:
        await context.close()

    demo = next(p for p in PERSONAS if p.key == "it_support").color_scheme
    assert demo is not None
    scheme = demo.model_dump() | {"primary": NEW_PRIMARY}
    expected = to_hex(mode_theme(scheme, "light").button)
    assert after["button"] == expected
    assert after["runButton"] == _rgb(expected)
    assert before["button"] != expected and before["runButton"] != after["runButton"]


# --- keyboard -------------------------------------------------------------------------

# The focused element as (tag, accessible-ish name) and whether its focus is drawn (an
# outline or a ring), read by the page itself.
FOCUSED = """
() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const outlined = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    const name = el.getAttribute("aria-label") || (el.labels && el.labels[0]
        ? el.labels[0].textContent : "") || el.textContent || el.value || "";
    return {tag: el.tagName.toLowerCase(), name: name.trim().replace(/\\s+/g, " "),
            visible: outlined || style.boxShadow !== "none",
            inViewport: (() => { const r = el.getBoundingClientRect();
                return r.bottom > 0 && r.top < innerHeight && r.width > 0; })()};
}
"""
MAX_TABS = 250
IN_MAIN = "() => document.activeElement.closest('main') !== null"


async def _focused(page: Page) -> dict[str, object] | None:
    result: dict[str, object] | None = await page.evaluate(FOCUSED)
    return result


async def test_the_dashboard_is_usable_with_the_keyboard_alone(admin_page: Page) -> None:
    from playwright.async_api import expect

    page = admin_page
    await page.reload()
    order: list[dict[str, object]] = []
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        focused = await _focused(page)
        if focused is None:  # focus left the document: past the last control, no trap
            break
        order.append(focused)
    else:
        raise AssertionError(f"Tab never left the page after {MAX_TABS} presses: {order[-5:]}")

    names = [str(item["name"]) for item in order]
    assert names[:6] == [
        "Skip to content",
        "JARVIS dashboard",
        "Dashboard",
        "Agents",
        "Executions",
        "Configuration",
    ]
    top = names.index("Sign out")
    assert names[top + 1 : top + 4] == ["Command", "Run as persona", "Run"]
    assert names[-1] == "API"  # the footer's link, reached after everything in <main>
    assert len(order) > top + 5, "nothing in <main> takes focus"
    assert [item for item in order if not item["visible"]] == []
    assert [item for item in order if not item["inViewport"]] == []

    # The skip link moves focus to the content; Enter on a nav link navigates.
    await page.reload()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await page.keyboard.press("Tab")  # the first control of the content, past the header
    assert await page.evaluate(IN_MAIN), await _focused(page)
    await page.reload()
    for _ in range(names.index("Agents") + 1):
        await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Agents", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/agents")
    await expect(page.get_by_role("link", name="Agents", exact=True)).to_have_attribute(
        "aria-current", "page"
    )


# --- without JavaScript ---------------------------------------------------------------


async def test_sign_in_and_reading_work_without_javascript(
    browser: Browser, external: ExternalRequests, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    context = await new_context(browser, external, java_script_enabled=False)
    try:
        page = await context.new_page()
        await sign_in(page, live_server, UNDERWRITER_EMAIL)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await expect(page.get_by_text("Underwriting Workbench Experience Agent")).to_be_visible()

        await page.get_by_role("link", name="Agents", exact=True).click()
        await page.wait_for_url("**/agents")
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await expect(
            page.get_by_role("link", name="Carrier Brand Experience Agent")
        ).to_be_visible()
        assert await page.evaluate("() => document.scripts.length") > 0  # and none ran
    finally:
        await context.close()


# --- escaping -------------------------------------------------------------------------

SCRIPT_NAME = '<script>alert("agent")</script><img src=x onerror=alert(2)>'


async def test_a_script_tag_agent_name_is_shown_as_text(
    admin_page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    page = admin_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    agent = await call_api(
        page, live_server, "POST", "/api/agents", {"name": SCRIPT_NAME, "layer": "Process"}
    )
    try:
        await page.goto(f"{live_server.url}/agents/{agent['id']}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(SCRIPT_NAME)
        await page.goto(f"{live_server.url}/agents?q=agent%22%29")
        await expect(page.get_by_role("link", name=SCRIPT_NAME)).to_be_visible()
        await page.goto(f"{live_server.url}/")

        assert await page.locator("main img[src=x], main script:not([src])").count() == 0
        assert dialogs == []
    finally:
        await call_api(page, live_server, "DELETE", f"/api/agents/{agent['id']}")


async def test_light_and_dark_mode_follow_the_system_until_the_viewer_chooses(
    admin_page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    page = admin_page
    dark_bg = to_hex(mode_theme(_admin_colours(), "dark").background)
    light_bg = to_hex(mode_theme(_admin_colours(), "light").background)
    body_bg = "el => getComputedStyle(el).getPropertyValue('--bg').trim()"

    await page.emulate_media(color_scheme="dark")
    await page.goto(live_server.url + "/")
    assert await page.locator("body").evaluate(body_bg) == dark_bg
    toggle = page.locator("[data-mode-toggle]")
    await expect(toggle).to_have_attribute("aria-label", "Switch to light mode")
    await toggle.click()
    await expect(page.locator("html")).to_have_attribute("data-mode", "light")
    assert await page.locator("body").evaluate(body_bg) == light_bg
    # The choice is remembered against the system's preference, and can be changed back.
    await page.goto(live_server.url + "/agents")
    await expect(page.locator("html")).to_have_attribute("data-mode", "light")
    await page.locator("[data-mode-toggle]").click()
    await expect(page.locator("html")).to_have_attribute("data-mode", "dark")
    assert await page.locator("body").evaluate(body_bg) == dark_bg


def _admin_colours() -> dict[str, str]:
    from jarvis.personas.service import ADMIN_PERSONA

    return ADMIN_PERSONA.color_scheme.model_dump()
