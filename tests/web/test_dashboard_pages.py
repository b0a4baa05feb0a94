"""The dashboard: the admin's operations view and every other persona's own desk."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import update

from jarvis.agents.models import Agent
from jarvis.auth.models import User
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.orchestration.models import AgentExecution
from tests.factories import create_agent, create_user
from tests.web.conftest import Browser


async def add_execution(
    db: Database,
    *,
    status: str,
    hours_ago: int = 0,
    persona: str = "admin",
    user: User | None = None,
    command: str = "Review the submission",
    response: str | None = None,
    error: str | None = None,
) -> str:
    """An execution created ``hours_ago`` clock hours back (at the start of that hour, so
    it lands in the same hourly bucket whatever the minute is now)."""
    execution_id = str(uuid.uuid4())
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    created = hour - timedelta(hours=hours_ago)
    async with unit_of_work(db) as session:
        session.add(
            AgentExecution(
                execution_id=execution_id,
                persona=persona,
                command=command,
                status=status,
                created_by=user.email if user else "tests",
                created_by_id=user.id if user else None,
                created_at=created,
                started_at=created,
                result={"response": response, "outputs": {}} if response else None,
                error=error,
            )
        )
    return execution_id


async def set_metrics(db: Database, agent_id: int, rate: float, sla: str) -> None:
    async with unit_of_work(db) as session:
        await session.execute(
            update(Agent)
            .where(Agent.id == agent_id)
            .values(success_rate=rate, sla_performance=rate, sla_status=sla)
        )


def row_of(html: str, layer: str) -> str:
    """The agents-per-layer table row of ``layer``."""
    match = re.search(
        rf"<tr>\s*<th scope=\"row\">\s*<a class=\"layer-name\"[^>]*>\d\. {layer}</a>.*?</tr>",
        html,
        re.S,
    )
    assert match, f"no row for {layer}"
    return match.group(0)


def stat(html: str, label: str) -> str:
    match = re.search(
        rf'<span class="stat-label">{label}</span>\s*<span class="stat-value">([^<]*)</span>', html
    )
    assert match, f"no stat {label}"
    return match.group(1)


async def test_signed_out_visitors_are_sent_to_sign_in(browser: Browser) -> None:
    response = await browser.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F"


async def test_admin_sees_health_layers_and_charts_from_the_data(
    admin_browser: Browser, db: Database
) -> None:
    brain = await create_agent(db, layer="Meta Brain")
    await set_metrics(db, brain.id, 90, "green")
    slow = await create_agent(db, layer="Meta Brain")
    await set_metrics(db, slow.id, 70, "amber")
    await create_agent(db, layer="Meta Brain", enabled=False)
    await create_agent(db, layer="Interface")  # no figures yet
    for status, hours_ago in [
        ("completed", 0),
        ("completed", 0),
        ("failed", 0),
        ("completed", 5),
        ("running", 0),
        ("awaiting_approval", 2),
        ("completed", 30),  # older than the charts' 24 hours
    ]:
        await add_execution(db, status=status, hours_ago=hours_ago, command=f"cmd {status}")

    html = (await admin_browser.get("/")).text

    assert "Schema behind" not in html and "schema at head" in html
    assert stat(html, "Running") == "1"
    assert stat(html, "Awaiting approval") == "1"
    assert stat(html, "Queued") == "0"
    assert stat(html, "Active agents") == "3"
    layers = re.findall(r'class="layer-name"[^>]*>\d\. ([^<]+)</a>', html)
    assert layers == ["Experience", "Meta Brain", "Role", "Process", "System", "Interface"]
    brain_row = row_of(html, "Meta Brain")
    assert '<strong>2</strong> <span class="muted">of 3</span>' in brain_row
    assert "80%" in brain_row  # mean of 90 and 70; the disabled agent does not count
    assert "at risk" in brain_row and "1 met · 1 at risk · 0 breached" in brain_row
    assert "no figures yet" in row_of(html, "Interface")
    # Executions per hour: this hour's bar has 2 completed + 1 failed + 1 running; the
    # awaiting one and the one 5 hours ago make two more bars; 30 hours ago is outside.
    chart = html[
        html.index('id="chart-executions"') : html.index(
            "</svg>", html.index('id="chart-executions"')
        )
    ]
    assert len(re.findall(r"<rect ", chart)) == 5
    assert re.findall(r'class="series-ok"[^>]*data-value="(\d+)"', chart) == ["1", "2"]
    assert re.findall(r'class="series-fail"[^>]*data-value="(\d+)"', chart) == ["1"]
    success = html[
        html.index('id="chart-success"') : html.index("</svg>", html.index('id="chart-success"'))
    ]
    assert re.findall(r'<circle[^>]*data-value="([\d.]+)"', success) == ["100", "66.7"]
    assert "cmd running" in html.split("Running now", 1)[1]
    assert "cmd awaiting_approval" in html.split("Work queue", 1)[1]


async def test_a_dashboard_without_data_shows_empty_states(admin_browser: Browser) -> None:
    html = (await admin_browser.get("/")).text
    assert "No executions in the last 24 hours" in html
    assert "No execution has finished in this period" in html
    assert "Nothing running right now" in html
    assert "No execution is waiting for a decision." in html
    assert '<rect class="series' not in html and 'class="series-dot"' not in html
    assert "No activity yet" in html
    assert html.count("no figures yet") == 6


async def test_underwriter_sees_their_commands_agents_and_work_queue(
    underwriter_browser: Browser, db: Database
) -> None:
    me = underwriter_browser.user
    assert me is not None
    colleague = await create_user(db, persona="underwriter")
    await create_agent(db, name="Risk Desk Agent", persona="underwriter", layer="Role")
    await create_agent(db, name="Admin Only Agent", persona="admin")
    await add_execution(
        db,
        status="completed",
        persona="underwriter",
        user=me,
        command="Review <script>alert(1)</script> Acme",
        response="Acme Logistics is within appetite.",
    )
    waiting = await add_execution(
        db, status="awaiting_approval", persona="underwriter", user=me, command="Bind Acme"
    )
    await add_execution(
        db, status="completed", persona="underwriter", user=colleague, command="Colleague's task"
    )
    await add_execution(
        db, status="awaiting_approval", persona="underwriter", user=colleague, command="Not mine"
    )

    html = (await underwriter_browser.get("/")).text

    assert "Commercial Property Underwriter" in html
    assert "Risk Desk Agent" in html and "Admin Only Agent" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Acme Logistics is within appetite." in html
    assert "Colleague&#39;s task" not in html and "Not mine" not in html
    queue = html.split("Executions awaiting your approval", 1)[1]
    assert f'href="/executions/{waiting}#decision"' in queue
    assert stat(html, "Waiting for you") == "1"
    assert stat(html, "Commands") == "2"
    assert "System health" not in html
