"""Config Registry pages: search, effective value and why, set / schedule / revert values,
history diffs, snapshots, change requests (four eyes) and persona colours."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import httpx
from fastapi import FastAPI

from jarvis.db.engine import Database
from jarvis.kit.clock import utcnow
from tests.web.conftest import Browser

TIMEOUT = "agent.timeout_seconds"
COLOURS = "persona.colors"
NEW_UNDERWRITER_COLOURS = {
    "value.primary": "#b91c1c",
    "value.secondary": "#7f1d1d",
    "value.accent": "#f87171",
    "value.background": "#1c0a0a",
    "value.glassmorphism": "rgba(28, 10, 10, 0.7)",
}


@asynccontextmanager
async def signed_in(app: FastAPI, db: Database, persona: str) -> AsyncIterator[Browser]:
    """Another browser (its own cookies) on the same app, signed in as a new user."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        other = Browser(client)
        await other.sign_in(db, persona)
        yield other


async def set_value(
    b: Browser, key: str, fields: dict[str, str], *, scope: str = "global", expect: int = 303
) -> httpx.Response:
    response = await b.post_form(f"/config/{key}", {"scope": scope, **fields})
    assert response.status_code == expect, response.text
    return response


async def effective(b: Browser, key: str, **scope: Any) -> dict[str, Any]:
    response = await b.client.get(f"/api/config/setting/{key}", params=scope)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def toast(response: httpx.Response) -> str:
    return unquote(response.cookies.get("jarvis_toast", ""))


async def test_search_lists_matching_keys(admin_browser: Browser) -> None:
    response = await admin_browser.get("/config", params={"q": "colour scheme"})
    assert response.status_code == 200
    assert 'href="/config/persona.colors"' in response.text
    assert 'href="/config/agent.timeout_seconds"' not in response.text
    listing = await admin_browser.get("/config", params={"q": "llm.provider"})
    assert "needs approval" in listing.text


async def test_explain_shows_the_winning_scope(admin_browser: Browser) -> None:
    await set_value(admin_browser, TIMEOUT, {"value": "40"})
    await set_value(
        admin_browser, TIMEOUT, {"value": "12", "scope.persona": "underwriter"}, scope="persona"
    )

    for_underwriter = await admin_browser.get(
        f"/config/{TIMEOUT}", params={"persona": "underwriter"}
    )
    assert for_underwriter.status_code == 200
    assert "status-source-persona" in for_underwriter.text
    assert 'class="candidate-outranked"' in for_underwriter.text  # the global value, shadowed
    assert "a more specific scope wins: persona (persona=underwriter)" in for_underwriter.text

    for_nobody = await admin_browser.get(f"/config/{TIMEOUT}")
    assert "status-source-global" in for_nobody.text
    assert "candidate-outranked" not in for_nobody.text


async def test_set_values_globally_and_per_persona(admin_browser: Browser) -> None:
    response = await set_value(admin_browser, TIMEOUT, {"value": "45", "reason": "slow partner"})
    assert response.headers["location"] == f"/config/{TIMEOUT}"
    assert "Saved version 1" in toast(response)
    response = await set_value(
        admin_browser, TIMEOUT, {"value": "12", "scope.persona": "underwriter"}, scope="persona"
    )
    assert response.headers["location"] == f"/config/{TIMEOUT}?persona=underwriter"

    assert (await effective(admin_browser, TIMEOUT))["value"] == 45
    underwriter = await effective(admin_browser, TIMEOUT, persona="underwriter")
    assert (underwriter["value"], underwriter["source"]) == (12, "persona")


async def test_schema_invalid_value_is_shown_next_to_its_field(admin_browser: Browser) -> None:
    stored = f"/api/config/values/{COLOURS}?persona=underwriter"
    versions = (await admin_browser.client.get(stored)).json()["total"]
    fields = {**NEW_UNDERWRITER_COLOURS, "value.primary": "not a colour"}
    response = await set_value(
        admin_browser,
        COLOURS,
        {**fields, "scope.persona": "underwriter"},
        scope="persona",
        expect=422,
    )
    error = re.search(r'id="f-value-primary-error">([^<]*)<', response.text)
    assert error and "does not match" in error.group(1)
    assert 'value="not a colour"' in response.text  # what was typed is kept
    assert (await admin_browser.client.get(stored)).json()["total"] == versions


async def test_scheduled_value_is_not_effective_yet(admin_browser: Browser) -> None:
    tomorrow = utcnow() + timedelta(days=1)
    await set_value(
        admin_browser,
        TIMEOUT,
        {"value": "90", "effectiveFrom": tomorrow.strftime("%Y-%m-%dT%H:%M")},
    )
    now = await effective(admin_browser, TIMEOUT)
    assert (now["value"], now["source"]) == (30, "default")
    later = await effective(admin_browser, TIMEOUT, at=(tomorrow + timedelta(hours=1)).isoformat())
    assert later["value"] == 90
    page = await admin_browser.get(f"/config/{TIMEOUT}")
    assert 'class="candidate-scheduled"' in page.text


async def test_history_diff_and_revert(admin_browser: Browser) -> None:
    await set_value(admin_browser, TIMEOUT, {"value": "10"})
    await set_value(admin_browser, TIMEOUT, {"value": "20"})
    page = await admin_browser.get(f"/config/{TIMEOUT}")
    assert '<li class="changed">10 → 20</li>' in page.text
    assert "Revert to v1" in page.text

    response = await admin_browser.post_form(
        f"/config/{TIMEOUT}/revert",
        {"version": "1", "scope.persona": "", "scope.agentId": "", "scope.workflowId": ""},
    )
    assert response.status_code == 303, response.text
    now = await effective(admin_browser, TIMEOUT)
    assert (now["value"], now["version"]) == (10, 3)


async def test_snapshot_create_diff_and_restore(admin_browser: Browser) -> None:
    await set_value(admin_browser, TIMEOUT, {"value": "10"})
    response = await admin_browser.post_form("/config/snapshots", {"name": "before"})
    assert response.status_code == 303, response.text
    snapshot = response.headers["location"]
    assert re.fullmatch(r"/config/snapshots/\d+", snapshot)
    duplicate = await admin_browser.post_form("/config/snapshots", {"name": "before"})
    assert duplicate.status_code == 409
    assert 'id="f-name-error"' in duplicate.text

    await set_value(admin_browser, TIMEOUT, {"value": "20"})
    page = await admin_browser.get(snapshot)
    assert f"<code>{TIMEOUT}</code> [global]: 10 → 20" in page.text
    confirm = await admin_browser.get(f"{snapshot}/restore")
    assert f"<code>{TIMEOUT}</code> [global]: 20 → 10" in confirm.text

    restored = await admin_browser.post_form(f"{snapshot}/restore", {"reason": "undo"})
    assert restored.status_code == 303, restored.text
    assert (await effective(admin_browser, TIMEOUT))["value"] == 10


async def test_change_request_four_eyes(app: FastAPI, db: Database, admin_browser: Browser) -> None:
    response = await set_value(admin_browser, "llm.provider", {"value": "openai"})
    assert response.headers["location"].endswith("#pending")
    assert "needs a second admin's approval" in toast(response)
    assert (await effective(admin_browser, "llm.provider"))["value"] == "rules"
    listing = await admin_browser.get("/config/changes")
    request_id = re.search(r'id="request-(\d+)"', listing.text)
    assert request_id
    approve = f"/config/changes/{request_id.group(1)}/approve"

    own = await admin_browser.post_form(approve)
    assert own.status_code == 403
    assert "You cannot approve your own change request" in own.text
    assert (await effective(admin_browser, "llm.provider"))["value"] == "rules"

    async with signed_in(app, db, "admin") as second_admin:
        decided = await second_admin.post_form(approve, {"reason": "agreed"})
        assert decided.status_code == 303, decided.text
    assert (await effective(admin_browser, "llm.provider"))["value"] == "openai"


async def test_readers_cannot_write(underwriter_browser: Browser) -> None:
    page = await underwriter_browser.get(f"/config/{TIMEOUT}")
    assert page.status_code == 200
    assert "Save value" not in page.text
    response = await set_value(underwriter_browser, TIMEOUT, {"value": "45"}, expect=403)
    assert "config:write" in response.text


async def test_persona_colours_change_the_underwriters_theme(
    app: FastAPI, db: Database, admin_browser: Browser
) -> None:
    theme = re.compile(r'href="(/theme/underwriter\.css\?v=[0-9a-f]+)"')
    async with signed_in(app, db, "underwriter") as underwriter:
        before = theme.search((await underwriter.get("/config")).text)
        assert before
        old_css = (await underwriter.client.get(before.group(1))).text
        await set_value(
            admin_browser,
            COLOURS,
            {**NEW_UNDERWRITER_COLOURS, "scope.persona": "underwriter"},
            scope="persona",
        )
        after = theme.search((await underwriter.get("/config")).text)
        assert after and after.group(1) != before.group(1)
        new_css = (await underwriter.client.get(after.group(1))).text
        assert new_css != old_css
