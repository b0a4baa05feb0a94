"""The live execution view in real Chromium against a live server: a command typed into the
command bar runs through the six layers in the execution dialog, updated by WebSocket
events (no reload); a paused execution is approved from its page; a WebSocket cut in the
middle of an execution reconnects and catches up without a missing or duplicated card."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jarvis.core.layers import LAYER_ORDER
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    PHONE,
    UNDERWRITER_EMAIL,
    LiveServer,
    _require_browser,
    call_api,
    save_screenshot,
    serve_demo,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.async_api import Page, WebSocket, WebSocketRoute

ACME = "Review the new submission from Acme Logistics"
BROKER_EMAIL_AGENT = "Broker Email Response Agent"
LAYERS = [layer.value for layer in LAYER_ORDER]
WAIT_MS = 30_000  # a hang guard for expectations, not a timing assertion


def layer(page: Page, name: str, within: str = "") -> Any:
    return page.locator(f'{within} [data-layer="{name}"]'.strip())


async def card_states(page: Page, within: str = "") -> list[tuple[str, str, str]]:
    """(step id, agent name, status) of every card in the view, by step id (cards the
    events brought are in the order their agents started)."""
    cards = page.locator(f"{within} [data-step]".strip())
    found = [
        (
            await c.get_attribute("data-step-id") or "",
            (await c.locator("[data-step-name]").inner_text()).strip(),
            await c.get_attribute("data-status") or "",
        )
        for c in await cards.all()
    ]
    return sorted(found, key=lambda card: int(card[0]))


async def api_steps(
    page: Page, server: LiveServer, execution_id: str
) -> list[tuple[str, str, str]]:
    shown = await call_api(page, server, "GET", f"/api/agent-executions/{execution_id}")
    steps = [(str(s["id"]), s["agentName"], s["status"]) for s in shown["steps"]]
    return sorted(steps, key=lambda step: int(step[0]))


def events_in(frames: list[str], execution_id: str) -> list[dict[str, Any]]:
    """The execution's events among WebSocket frames (JSON text)."""
    out = []
    for frame in frames:
        message = json.loads(frame)
        if message.get("executionId") == execution_id and "seq" in message:
            out.append(message)
    return out


# --- 1. the command bar ------------------------------------------------------------------


async def test_a_command_from_the_bar_runs_live_through_all_six_layers_in_the_dialog(
    underwriter_page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    page = underwriter_page
    frames: list[str] = []
    fragments: list[str] = []

    def watch_socket(ws: WebSocket) -> None:
        ws.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", watch_socket)
    page.on("request", lambda r: fragments.append(r.url) if "fragment=1" in r.url else None)
    await page.evaluate("() => { window.notReloaded = true; }")

    await page.get_by_label("Command", exact=True).fill(ACME)
    await page.get_by_label("Command", exact=True).press("Enter")

    dialog = page.locator("#execution-dialog")
    await expect(dialog).to_be_visible()
    panel = dialog.locator("[data-execution-panel]")
    await expect(panel).to_have_attribute("data-status", "awaiting_approval", timeout=WAIT_MS)
    execution_id = await panel.get_attribute("data-execution-id")
    assert execution_id
    for name in LAYERS[:-1]:
        await expect(layer(page, name, "#execution-dialog")).to_have_attribute(
            "data-status", "completed"
        )
    broker = panel.locator("[data-step]", has_text=BROKER_EMAIL_AGENT)
    await expect(broker).to_have_attribute("data-status", "awaiting_approval")
    await expect(panel.locator("[data-approval]")).to_be_visible()
    await save_screenshot(page, "execution-dialog", full_page=False)

    # Approving in the dialog: the JSON API, then every change arrives as an event.
    await panel.get_by_role("button", name="Approve").click()
    await expect(panel).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    for name in LAYERS:
        await expect(layer(page, name, "#execution-dialog")).to_have_attribute(
            "data-status", "completed"
        )
    await expect(broker).to_have_attribute("data-status", "completed")
    await expect(broker.locator("[data-step-decision]")).to_contain_text(
        f"Approved by {UNDERWRITER_EMAIL}"
    )
    await expect(panel.locator("[data-result]")).to_be_visible()
    await expect(panel.locator("[data-live-state]")).to_have_text("Finished: completed")

    # Live, not reloaded: one fragment, the same page, and the cards match the database.
    assert fragments == [f"{live_server.url}/executions/{execution_id}?fragment=1"]
    assert await page.evaluate("() => window.notReloaded === true")
    received = [e["type"] for e in events_in(frames, execution_id)]
    assert {"step_approved", "layer_completed", "execution_completed"} <= set(received)
    assert await card_states(page, "#execution-dialog") == await api_steps(
        page, live_server, execution_id
    )

    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_label("Command", exact=True)).to_be_focused()


async def test_a_pasted_email_keeps_its_lines_in_the_command_bar(
    admin_page: Page, live_server: LiveServer
) -> None:
    """The bar is a multi-line field: a paste of several lines keeps them, Shift+Enter
    breaks a line, the field grows with its text, and Enter runs the command as typed."""
    from playwright.async_api import expect

    page = admin_page
    bar = page.get_by_label("Command", exact=True)
    await bar.click()
    one_line = await bar.evaluate("(el) => el.getBoundingClientRect().height")
    pasted = "Which agents are waiting for approval?\nFrom: broker@example.com\n\nThanks,"
    # insertText is what a paste does to a field: one input of the whole text.
    await page.keyboard.insert_text(pasted)
    await bar.press("Shift+Enter")
    await page.keyboard.insert_text("Jo")
    await expect(bar).to_have_value(pasted + "\nJo")
    grown = await bar.evaluate("(el) => el.getBoundingClientRect().height")
    assert grown > one_line * 2, (one_line, grown)

    await bar.press("Enter")
    dialog = page.locator("#execution-dialog")
    panel = dialog.locator("[data-execution-panel]")
    await expect(panel).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    execution_id = await panel.get_attribute("data-execution-id")
    shown = await call_api(page, live_server, "GET", f"/api/agent-executions/{execution_id}")
    assert shown["command"] == pasted + "\nJo"
    await page.keyboard.press("Escape")
    await expect(bar).to_have_value("")


# --- 2. approving from the execution's page ----------------------------------------------


async def test_a_paused_execution_is_approved_from_its_page(
    underwriter_page: Page, live_server: LiveServer
) -> None:
    from playwright.async_api import expect

    page = underwriter_page
    started = await call_api(
        page,
        live_server,
        "POST",
        "/api/agent-executions",
        {"command": ACME, "persona": "underwriter"},
    )
    execution_id = started["executionId"]
    await page.goto(f"{live_server.url}/executions/{execution_id}")
    panel = page.locator("[data-execution-panel]")
    await expect(panel).to_have_attribute("data-status", "awaiting_approval", timeout=WAIT_MS)
    approval = page.get_by_role("region", name="Waiting for a decision")
    await expect(approval).to_contain_text(f"{BROKER_EMAIL_AGENT} (Interface) proposes")

    await approval.get_by_label("Comment").fill("Good to send")
    await approval.get_by_role("button", name="Approve").click()

    await expect(page.locator("[data-toasts]")).to_contain_text("Approved")
    await expect(panel).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await expect(approval).to_be_hidden()
    broker = panel.locator("[data-step]", has_text=BROKER_EMAIL_AGENT)
    await expect(broker.locator("[data-step-decision]")).to_have_text(
        f"Approved by {UNDERWRITER_EMAIL}: “Good to send”"
    )
    await expect(panel.locator("[data-execution-status]")).to_have_text("completed")
    assert page.url == f"{live_server.url}/executions/{execution_id}"  # no navigation
    shown = await call_api(page, live_server, "GET", f"/api/agent-executions/{execution_id}")
    assert shown["status"] == "completed"

    await save_screenshot(page, "execution-live")
    await page.set_viewport_size(PHONE)
    await save_screenshot(page, "execution-live")


# --- 3. a network drop in the middle of an execution -------------------------------------

SLOW_AGENTS = [  # echo agents of the admin persona that take their time
    ("Role", "Slow Role Agent", 400),
    ("Process", "Slow Process Agent", 400),
    ("System", "Slow System Agent", 400),
    ("Interface", "Slow Interface Agent", 1500),
]
CUT_AFTER_EVENTS = 8


@pytest.fixture(scope="module")
def slow_server(e2e_dir: Path) -> Iterator[LiveServer]:
    """A demo server of its own: this test adds slow agents, which nobody else should run."""
    _require_browser()
    path = e2e_dir / "live-execution.db"
    server = serve_demo(path)
    yield server
    server.stop()


class CutOnce:
    """Routes the page's WebSockets: the first connection passes ``CUT_AFTER_EVENTS``
    execution events to the page, then both of its ends are closed (the page sees a drop);
    the next one is held until ``release()`` and then passes everything."""

    def __init__(self) -> None:
        self.connections = 0
        self.forwarded: list[int] = []  # seqs the first connection passed on
        self.subscriptions: list[dict[str, Any]] = []  # what the page sent to subscribe
        self.after: list[dict[str, Any]] = []  # execution events after the drop
        self.held: WebSocketRoute | None = None
        self.cut = asyncio.Event()
        self.retried = asyncio.Event()

    async def route(self, ws: WebSocketRoute) -> None:
        self.connections += 1
        if self.connections == 1:
            server = ws.connect_to_server()
            ws.on_message(lambda message: self.from_page(server, message))
            server.on_message(lambda message: self.first(ws, server, message))
        else:
            self.held = ws
            self.retried.set()

    def from_page(self, server: WebSocketRoute, message: str | bytes) -> None:
        body = json.loads(message)
        if body.get("type") == "subscribe-execution":
            self.subscriptions.append(body)
        server.send(message)

    async def first(self, ws: WebSocketRoute, server: WebSocketRoute, message: str | bytes) -> None:
        if self.cut.is_set():
            return
        body = json.loads(message)
        ws.send(message)
        if "seq" in body:
            self.forwarded.append(body["seq"])
            if len(self.forwarded) == CUT_AFTER_EVENTS:
                self.cut.set()
                await server.close(code=1000)
                await ws.close(code=4000, reason="network drop")

    def release(self) -> None:
        assert self.held is not None
        ws = self.held
        server = ws.connect_to_server()
        ws.on_message(lambda message: self.from_page(server, message))

        def to_page(message: str | bytes) -> None:
            body = json.loads(message)
            if "seq" in body:
                self.after.append(body)
            ws.send(message)

        server.on_message(to_page)


async def test_a_dropped_socket_reconnects_and_catches_up_without_gaps_or_duplicates(
    page: Page, slow_server: LiveServer
) -> None:
    from playwright.async_api import expect

    await sign_in(page, slow_server, ADMIN_EMAIL)
    for layer_name, name, delay in SLOW_AGENTS:
        await call_api(
            page,
            slow_server,
            "POST",
            "/api/agents",
            {"name": name, "layer": layer_name, "kind": "echo", "config": {"delayMs": delay}},
        )
    cut = CutOnce()
    await page.route_web_socket("**/api/agent-executions/ws", cut.route)

    await page.get_by_label("Command", exact=True).fill("Walk slowly through the layers")
    await page.get_by_label("Command", exact=True).press("Enter")
    panel = page.locator("#execution-dialog [data-execution-panel]")
    await expect(panel).to_be_visible()
    execution_id = await panel.get_attribute("data-execution-id")
    assert execution_id

    async with asyncio.timeout(WAIT_MS / 1000):
        await cut.cut.wait()
    state = panel.locator("[data-live-state]")
    await expect(state).to_have_text("Reconnecting…")
    async with asyncio.timeout(WAIT_MS / 1000):
        await cut.retried.wait()  # the page's next attempt, after its backoff
    cut.release()

    await expect(state).to_have_text("Live", timeout=WAIT_MS)
    await expect(panel).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    await expect(state).to_have_text("Finished: completed")

    # The second subscription resumed after the last event the page had; the events that
    # followed start right after it and have no gap and no repeat.
    first, second = cut.subscriptions
    assert first["afterSeq"] < cut.forwarded[-1]
    assert second == {
        "type": "subscribe-execution",
        "executionId": execution_id,
        "afterSeq": cut.forwarded[-1],
    }
    seqs = [e["seq"] for e in cut.after if e["executionId"] == execution_id]
    assert seqs == list(range(cut.forwarded[-1] + 1, cut.forwarded[-1] + 1 + len(seqs)))
    assert cut.after[-1]["type"] == "execution_completed"
    # Every step exactly once, as the database has it.
    cards = await card_states(page, "#execution-dialog")
    assert len({step_id for step_id, _, _ in cards}) == len(cards)
    assert cards == await api_steps(page, slow_server, execution_id)
    assert {name for _, name, _ in cards} >= {name for _, name, _ in SLOW_AGENTS}
