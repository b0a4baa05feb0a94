"""The agent directory pages: list, create, edit, delete, versions, permissions, escaping.

Each test runs on SQLite and PostgreSQL; the browser posts forms as one without
JavaScript does (urlencoded, CSRF token in the form).
"""

from __future__ import annotations

import re

import httpx

from jarvis.agents.schemas import AgentUpdate
from jarvis.agents.service import update_agent
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from tests.factories import TEST_ACTOR, create_agent
from tests.web.conftest import Browser

NEW_AGENT: dict[str, str | list[str]] = {
    "name": "Broker Mail Reader",
    "layer": "Interface",
    "persona": "admin",
    "business_function": "underwriting",
    "kind": "echo",
    "fields_kind": "echo",
    "governance_status": "pending",
    "risk_level": "medium",
    "maturity_level": "2",
    "enabled": "true",
}


def names_in(html: str) -> set[str]:
    """The agent names the list links to."""
    return set(re.findall(r'<a href="/agents/\d+">([^<]+)</a>', html))


def edit_form(version: int, **changes: str) -> dict[str, str | list[str]]:
    """The edit form of the agent ``test_edit...`` creates, as posted, with ``changes``."""
    same = {"name": "Claims Router", "layer": "Process", "maturity_level": "1"}
    return {**NEW_AGENT, **same, "version": str(version), **changes}


async def api_agent(client: httpx.AsyncClient, agent_id: int) -> dict[str, object]:
    response = await client.get(f"/api/agents/{agent_id}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_list_filters_searches_and_pages(admin_browser: Browser, db: Database) -> None:
    empty = await admin_browser.get("/agents")
    assert empty.status_code == 200
    assert 'href="/agents/new"' in empty.text and "Create agent" in empty.text
    await create_agent(db, name="Claims Router", layer="Process", governance_status="approved")
    await create_agent(db, name="Policy Reader", layer="System", business_function="claims")
    await create_agent(db, name="Quote Writer", layer="System", persona="underwriter")

    async def shown(query: str) -> set[str]:
        response = await admin_browser.get(f"/agents?{query}")
        assert response.status_code == 200, response.text
        return names_in(response.text)

    assert await shown("layer=Process") == {"Claims Router"}
    assert await shown("governanceStatus=approved") == {"Claims Router"}
    assert await shown("persona=underwriter") == {"Quote Writer"}
    assert await shown("businessFunction=claims") == {"Policy Reader"}
    assert await shown("q=reader&layer=") == {"Policy Reader"}
    # System agents by name: Policy Reader, Quote Writer; the second page holds one.
    second = await admin_browser.get("/agents?layer=System&limit=1&offset=1")
    assert names_in(second.text) == {"Quote Writer"}
    assert 'rel="prev"' in second.text and "2–2 of 2" in second.text


async def test_create_shows_errors_next_to_fields_then_creates(
    admin_browser: Browser, client: httpx.AsyncClient
) -> None:
    bad = await admin_browser.post_form(
        "/agents",
        {**NEW_AGENT, "kind": "llm", "fields_kind": "llm", "business_function": "Under Writing"},
    )
    assert bad.status_code == 422, bad.text
    # Next to the field, with what was typed kept.
    assert re.search(r'id="f-business_function-error">Use lower-case letters', bad.text)
    assert 'value="Broker Mail Reader"' in bad.text and 'value="Under Writing"' in bad.text

    no_prompt = await admin_browser.post_form(
        "/agents", {**NEW_AGENT, "kind": "llm", "fields_kind": "llm"}
    )
    assert no_prompt.status_code == 422, no_prompt.text
    assert 'id="f-config-prompt-error"' in no_prompt.text  # the kind's own setting

    created = await admin_browser.post_form(
        "/agents",
        {
            **NEW_AGENT,
            "kind": "llm",
            "fields_kind": "llm",
            "config.prompt": "Summarise {{ command }}",
        },
    )
    assert created.status_code == 303, created.text
    agent_id = int(created.headers["location"].rsplit("/", 1)[1])
    agent = await api_agent(client, agent_id)
    assert agent["name"] == "Broker Mail Reader"
    assert agent["layer"] == "Interface"
    assert agent["kind"] == "llm"
    assert agent["config"] == {"prompt": "Summarise {{ command }}"}  # defaults not written


async def test_choosing_another_kind_shows_its_settings(admin_browser: Browser) -> None:
    page = await admin_browser.get("/agents/new?kind=llm")
    assert page.status_code == 200
    assert 'name="config.prompt"' in page.text and 'name="config.delayMs"' not in page.text
    # Without JavaScript: "Load fields" posts the form and keeps what was typed.
    reloaded = await admin_browser.post_form(
        "/agents", {**NEW_AGENT, "kind": "llm", "fields_kind": "echo", "action": "load-kind"}
    )
    assert reloaded.status_code == 200, reloaded.text
    assert 'name="config.prompt"' in reloaded.text
    assert 'value="Broker Mail Reader"' in reloaded.text
    assert 'name="fields_kind" value="llm"' in reloaded.text


async def test_edit_saves_and_a_stale_edit_is_refused_with_an_explanation(
    admin_browser: Browser, client: httpx.AsyncClient, db: Database
) -> None:
    agent = await create_agent(db, name="Claims Router", layer="Process")
    form = await admin_browser.get(f"/agents/{agent.id}/edit")
    assert 'name="version" value="1"' in form.text

    saved = await admin_browser.post_form(
        f"/agents/{agent.id}/edit", edit_form(1, description="Routes claims")
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/agents/{agent.id}"

    stale = await admin_browser.post_form(
        f"/agents/{agent.id}/edit", edit_form(1, description="Something else")
    )
    assert stale.status_code == 409, stale.text
    assert "Someone else changed this agent" in stale.text
    assert "They changed: Description." in stale.text
    assert 'name="version" value="2"' in stale.text  # saving again replaces theirs
    assert "Something else" in stale.text  # what the viewer typed is still there
    assert (await api_agent(client, agent.id))["description"] == "Routes claims"


async def test_delete_asks_first_then_deletes(
    admin_browser: Browser, client: httpx.AsyncClient, db: Database
) -> None:
    agent = await create_agent(db, name="Old Agent")
    detail = await admin_browser.get(f"/agents/{agent.id}")
    assert 'data-dialog-open="delete-agent"' in detail.text
    confirm = await admin_browser.get(f"/agents/{agent.id}/delete")
    assert confirm.status_code == 200
    assert f'action="/agents/{agent.id}/delete"' in confirm.text

    deleted = await admin_browser.post_form(f"/agents/{agent.id}/delete")
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/agents"
    assert (await client.get(f"/api/agents/{agent.id}")).status_code == 404


async def test_version_diff_and_restore(
    admin_browser: Browser, client: httpx.AsyncClient, db: Database
) -> None:
    agent = await create_agent(
        db, name="Quote Writer", description="first words", config={"delayMs": 5}
    )
    async with unit_of_work(db) as session:
        await update_agent(
            session,
            agent.id,
            AgentUpdate(description="second words", config={"delayMs": 7, "input": "x"}),
            actor=TEST_ACTOR,
        )
    history = await admin_browser.get(f"/agents/{agent.id}")
    assert f'href="/agents/{agent.id}/versions/1"' in history.text

    version = await admin_browser.get(f"/agents/{agent.id}/versions/1")
    assert version.status_code == 200
    changes = re.findall(r'<li class="(added|removed|changed)">(.*?)</li>', version.text, re.S)
    texts = {
        kind: [re.sub(r"<[^>]+>", "", t) for k, t in changes if k == kind]
        for kind in ("added", "changed")
    }
    assert "changed: Description: first words → second words" in texts["changed"]
    assert "changed: Setting delayMs: 5 → 7" in texts["changed"]
    assert "added: Setting input: x" in texts["added"]

    restored = await admin_browser.post_form(f"/agents/{agent.id}/versions/1/restore")
    assert restored.status_code == 303
    body = await api_agent(client, agent.id)
    assert body["description"] == "first words"
    assert body["config"] == {"delayMs": 5}
    assert body["version"] == 3


async def test_agent_names_are_escaped(admin_browser: Browser, db: Database) -> None:
    agent = await create_agent(db, name="<script>alert(1)</script>")
    for path in ("/agents", f"/agents/{agent.id}"):
        page = await admin_browser.get(path)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<script>alert(1)" not in page.text


async def test_without_agents_write_the_directory_is_read_only(
    underwriter_browser: Browser, db: Database
) -> None:
    agent = await create_agent(db, name="Claims Router")
    listing = await underwriter_browser.get("/agents")
    assert "Claims Router" in listing.text
    assert 'href="/agents/new"' not in listing.text
    detail = await underwriter_browser.get(f"/agents/{agent.id}")
    assert detail.status_code == 200
    assert f'href="/agents/{agent.id}/edit"' not in detail.text
    refused = await underwriter_browser.post_form("/agents", NEW_AGENT)
    assert refused.status_code == 403
    assert "agents:write" in refused.text
    assert (await underwriter_browser.post_form(f"/agents/{agent.id}/delete")).status_code == 403
