"""The executions pages as a browser without JavaScript uses them: the list with its
filters, the six-layer view of an execution, the command bar's form, and the approve /
reject / cancel forms (post, redirect, the execution changed)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import update

from jarvis.auth.models import User
from jarvis.core.identity import Actor
from jarvis.core.layers import LAYER_ORDER
from jarvis.core.scope import GLOBAL
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.orchestration import service
from jarvis.orchestration.models import AgentExecution
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.personas.schemas import ColorScheme, PersonaRegister
from jarvis.personas.service import ensure_persona
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_agent, create_user, grant_permissions
from tests.web.conftest import Browser

WAIT = 60.0  # a hang guard, not a timing assertion
EXECUTION_LINK = re.compile(r'href="/executions/([0-9a-f-]{36})"')


async def queue(db: Database, user: User, command: str, persona: str | None = None) -> str:
    """An execution of ``user``'s, queued and never dispatched (it stays queued)."""
    async with unit_of_work(db) as session:
        execution = await service.create_execution(
            session,
            ExecutionCreate(command=command, persona=persona or user.persona),
            actor=Actor(label=user.email, user_id=user.id),
        )
    return execution.execution_id


async def change(db: Database, execution_id: str, **values: Any) -> None:
    async with unit_of_work(db) as session:
        await session.execute(
            update(AgentExecution)
            .where(AgentExecution.execution_id == execution_id)
            .values(**values)
        )


async def run(b: Browser, app: FastAPI, command: str, persona: str) -> str:
    """Run a command through the command bar's form; the id, once the engine stopped."""
    response = await b.post_form("/executions", {"command": command, "persona": persona})
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/executions/[0-9a-f-]{36}", location)
    async with asyncio.timeout(WAIT):
        await app.state.dispatcher.wait_idle()
    return location.rsplit("/", 1)[1]


async def api(b: Browser, execution_id: str) -> Any:
    response = await b.client.get(f"/api/agent-executions/{execution_id}")
    assert response.status_code == 200, response.text
    return response.json()


def listed(html: str) -> list[str]:
    """Execution ids linked from the list, in order."""
    return EXECUTION_LINK.findall(html)


async def test_list_filters_by_status_persona_and_date_and_pages(
    admin_browser: Browser, db: Database
) -> None:
    admin = admin_browser.user
    assert admin is not None
    first = await queue(db, admin, "first command")
    second = await queue(db, admin, "second command", persona="underwriter")
    third = await queue(db, admin, "third command")
    await change(db, first, created_at=datetime.now(UTC) - timedelta(days=10))
    await change(db, third, status="completed", duration_ms=1500)

    page = await admin_browser.get("/executions")
    assert page.status_code == 200
    assert listed(page.text) == [third, second, first]  # newest first
    assert "1.5 s" in page.text and "third command" in page.text

    completed = await admin_browser.get("/executions?status=completed")
    assert listed(completed.text) == [third]
    as_underwriter = await admin_browser.get("/executions?persona=underwriter")
    assert listed(as_underwriter.text) == [second]
    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    recent = await admin_browser.get(f"/executions?since={since}")
    assert listed(recent.text) == [third, second]
    bad = await admin_browser.get("/executions?since=yesterday&status=nonsense")
    assert "Give a date as YYYY-MM-DD" in bad.text
    assert "is not a status" in bad.text
    assert len(listed(bad.text)) == 3  # unknown filters are not applied

    one = await admin_browser.get("/executions?limit=2")
    assert listed(one.text) == [third, second]
    assert 'href="?limit=2&amp;offset=2"' in one.text
    two = await admin_browser.get("/executions?limit=2&offset=2")
    assert listed(two.text) == [first]


async def test_a_command_from_the_bar_runs_and_its_page_shows_all_six_layers(
    admin_browser: Browser, app: FastAPI, db: Database
) -> None:
    await create_agent(db, name="Greeter", layer="Experience", kind="echo")
    await create_agent(db, name="Answer Writer", layer="Interface", kind="echo")
    await create_agent(
        db, name="Fails Always", layer="Process", kind="echo", config={"failAttempts": 9}
    )
    async with unit_of_work(db) as session:  # retries at once
        await app.state.config.set_value(
            session, "agent.retry_backoff_seconds", 0, GLOBAL, actor=TEST_ACTOR
        )
    execution_id = await run(admin_browser, app, "Say hello to <b>everyone</b>", "admin")

    shown = await api(admin_browser, execution_id)
    assert shown["status"] == "failed"  # the Process agent failed for good: fail fast
    page = await admin_browser.get(f"/executions/{execution_id}")
    assert page.status_code == 200
    html = page.text
    positions = [html.index(f'data-layer="{layer.value}"') for layer in LAYER_ORDER]
    assert positions == sorted(positions)  # all six, top to bottom
    assert f'data-last-seq="{len(await events(admin_browser, execution_id))}"' in html
    assert "Say hello to &lt;b&gt;everyone&lt;/b&gt;" in html
    greeter = card(html, "Greeter")
    assert 'data-status="completed"' in greeter
    assert "Say hello to" in greeter  # the output's preview
    failing = card(html, "Fails Always")
    assert 'data-status="failed"' in failing
    assert "echo was told to fail attempt 3" in failing  # the error, after two retries
    assert "<dd data-step-attempt>3</dd>" in failing
    assert "data-step-name>Answer Writer<" not in html  # the Interface layer never ran
    assert "runs Answer Writer" in html  # though the plan had it
    assert 'data-layer="Interface" data-status="not_run"' in html
    assert "data-cancel-form hidden" in html  # nothing to cancel any more

    # Layers are complete when their layer_completed event says so (the row's layers_done
    # is stored only at the plan, a pause and the end).
    await change(db, execution_id, layers_done=0, status="running")
    running = (await admin_browser.get(f"/executions/{execution_id}")).text
    assert 'data-layer="Experience" data-status="completed"' in running
    assert 'data-layer="Process" data-status="failed"' in running

    fragment = await admin_browser.get(f"/executions/{execution_id}?fragment=1")
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section class="execution-panel"')
    assert "<html" not in fragment.text
    assert f'href="/executions/{execution_id}">Open the full page' in fragment.text


async def events(b: Browser, execution_id: str) -> list[Any]:
    response = await b.client.get(f"/api/agent-executions/{execution_id}/events")
    assert response.status_code == 200
    items: list[Any] = response.json()["items"]
    return items


def card(html: str, agent: str) -> str:
    """The markup of the step card of ``agent``."""
    match = re.search(
        r'<li class="step-card[^>]*>(?:(?!</li>).)*?' + re.escape(agent) + r".*?</li>",
        html,
        re.S,
    )
    assert match, f"no card for {agent}"
    return match.group(0)


async def test_bad_commands_are_shown_back_with_the_reason(
    admin_browser: Browser, db: Database
) -> None:
    empty = await admin_browser.post_form("/executions", {"command": "   ", "persona": "admin"})
    assert empty.status_code == 422
    assert "Type a command for JARVIS to run." in empty.text
    unknown = await admin_browser.post_form(
        "/executions", {"command": "hello", "persona": "nobody"}
    )
    assert unknown.status_code == 422
    assert "unknown persona &#39;nobody&#39;" in unknown.text
    assert 'id="f-persona"' in unknown.text and 'aria-invalid="true"' in unknown.text
    assert (await admin_browser.get("/executions")).text.count("data-execution-id") == 0


async def test_paused_executions_are_approved_rejected_or_cancelled_from_their_page(
    underwriter_browser: Browser, app: FastAPI, db: Database
) -> None:
    await create_agent(
        db,
        name="Checker",
        layer="Role",
        persona="underwriter",
        kind="echo",
        config={"requiresApproval": True},
    )
    approved = await run(underwriter_browser, app, "quote it", "underwriter")
    page = await underwriter_browser.get(f"/executions/{approved}")
    assert 'data-status="awaiting_approval"' in page.text
    assert f'action="/executions/{approved}/approve"' in page.text
    assert "<strong>Checker</strong> (Role) proposes" in page.text

    response = await underwriter_browser.post_form(
        f"/executions/{approved}/approve", {"comment": "looks right"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/executions/{approved}"
    async with asyncio.timeout(WAIT):
        await app.state.dispatcher.wait_idle()
    assert (await api(underwriter_browser, approved))["status"] == "completed"
    done = await underwriter_browser.get(f"/executions/{approved}")
    assert f"Approved by {underwriter_browser.user.email}: “looks right”" in done.text  # type: ignore[union-attr]
    again = await underwriter_browser.post_form(f"/executions/{approved}/approve", {})
    assert again.status_code == 303  # decided already: back to the page, which says so
    assert "Nothing%20to%20approve" in again.headers["set-cookie"]

    rejected = await run(underwriter_browser, app, "quote that", "underwriter")
    response = await underwriter_browser.post_form(
        f"/executions/{rejected}/reject", {"comment": "out of appetite"}
    )
    assert response.status_code == 303
    shown = await api(underwriter_browser, rejected)
    assert shown["status"] == "rejected"
    assert "out of appetite" in shown["error"]

    cancelled = await run(underwriter_browser, app, "quote another", "underwriter")
    response = await underwriter_browser.post_form(f"/executions/{cancelled}/cancel", {})
    assert response.status_code == 303
    assert (await api(underwriter_browser, cancelled))["status"] == "cancelled"


async def test_deciding_needs_the_approve_permission(browser: Browser, db: Database) -> None:
    async with unit_of_work(db) as session:
        await ensure_persona(
            session,
            PersonaRegister(
                key="observer",
                display_name="Observer",
                color_scheme=ColorScheme(
                    primary="#1d4ed8",
                    secondary="#1e3a8a",
                    accent="#60a5fa",
                    background="#0f172a",
                    glassmorphism="rgba(15, 23, 42, 0.7)",
                ),
            ),
            actor=TEST_ACTOR,
            config=config_service(db, poll_seconds=0),
        )
    await grant_permissions(db, "observer", "executions:create")
    user = await browser.sign_in(db, "observer")
    execution_id = await queue(db, user, "watch only")
    await change(db, execution_id, status="awaiting_approval")

    page = await browser.get(f"/executions/{execution_id}")
    assert page.status_code == 200
    assert "/approve" not in page.text  # no form the viewer cannot use
    response = await browser.post_form(f"/executions/{execution_id}/approve", {})
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert "executions:approve" in response.text


async def test_other_users_executions_are_not_shown_to_non_admins(
    underwriter_browser: Browser, db: Database
) -> None:
    other = await create_user(db, persona="underwriter")
    theirs = await queue(db, other, "someone else's command")
    mine = await queue(db, underwriter_browser.user, "my command")  # type: ignore[arg-type]

    assert listed((await underwriter_browser.get("/executions")).text) == [mine]
    page = await underwriter_browser.get(f"/executions/{theirs}")
    assert page.status_code == 403
    assert "belongs to another user" in page.text
    api_answer = await underwriter_browser.client.get(f"/api/agent-executions/{theirs}")
    assert api_answer.status_code == 403  # as the API answers
    assert (
        await underwriter_browser.post_form(f"/executions/{theirs}/cancel", {})
    ).status_code == 403
    missing = await underwriter_browser.get("/executions/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
