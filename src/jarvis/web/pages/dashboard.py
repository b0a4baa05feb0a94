"""The dashboard, ``/``: what the viewer's persona needs to see first.

Admins get the operations view: system health, the six layers' agents with success rate
and SLA status, executions running now and waiting for a decision, the recent activity
and two charts of the last 24 hours. Every other persona gets their own desk: their
agents, their recent commands with the answers, and their work queue.

Figures are SQL aggregates and every list is bounded (orchestration/store/figures.py,
agents/stats.py): the page costs the same with ten executions or a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from jarvis.agents.stats import agents_of_persona, figures_per_layer
from jarvis.analytics.service import list_activities
from jarvis.core.identity import Principal
from jarvis.core.permissions import EXECUTIONS_APPROVE
from jarvis.db.migrate import head_revision, revision_on
from jarvis.db.session import DbSession
from jarvis.kit.clock import utcnow
from jarvis.orchestration.dependencies import DISPATCHER
from jarvis.orchestration.store.figures import (
    ExecutionLine,
    HourlyExecutions,
    awaiting_decision,
    count_by_status,
    executions_per_hour,
    recent_executions_of,
    running_executions,
)
from jarvis.orchestration.store.leases import live_workers
from jarvis.personas.service import get_persona
from jarvis.settings import SETTINGS
from jarvis.web.charts import Series, line_chart, stacked_bars
from jarvis.web.deps import Viewer
from jarvis.web.rendering import page_context, render

router = APIRouter(include_in_schema=False)

HOURS = 24
LIST_LIMIT = 8
QUEUE_LIMIT = 6
ACTIVITY_LIMIT = 8
LABEL_EVERY = 3
DATABASE_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
DISPATCHER_NAMES = {"in-process": "In-process", "taskiq-redis": "Taskiq on Redis"}
# The engine's SLA colours (orchestration/metrics.py) and the words a page shows for them.
SLA_WORDS = {"green": "met", "amber": "at risk", "red": "breached"}


@dataclass(frozen=True)
class Health:
    """What the admin sees of the system: the database, its schema, the dispatcher."""

    database: str
    revision: str | None
    head: str
    dispatcher: str
    live_workers: int

    @property
    def schema_at_head(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class WorkQueue:
    """One kind of work waiting for the viewer (executions to decide now; the submission
    and incident queues join this list when those areas arrive)."""

    key: str
    title: str
    items: list[ExecutionLine]
    total: int
    href: str
    empty: str


@dataclass(frozen=True)
class Chart:
    """An SVG chart and the same figures as table columns (label, then one per series)."""

    title: str
    svg: Any
    caption: str
    legend: list[tuple[str, str]]
    columns: list[str]
    rows: list[list[str]]


def ago(now: datetime, moment: datetime | None) -> str:
    """How long before ``now`` ``moment`` was, in words a glance can read."""
    if moment is None:
        return "–"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86_400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86_400
    return f"{days} day{'s' if days != 1 else ''} ago"


def _hour_labels(hourly: HourlyExecutions) -> list[str]:
    return [moment.strftime("%H:00") for moment in hourly.hours]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:g}%"


def executions_chart(hourly: HourlyExecutions, *, chart_id: str, whose: str) -> Chart:
    """Executions per hour, stacked by outcome."""
    labels = _hour_labels(hourly)
    ok, failed, other = sum(hourly.completed), sum(hourly.failed), sum(hourly.other)
    description = (
        f"{whose} per hour over the last {len(labels)} hours (UTC): {hourly.total} in all, "
        f"{ok} completed, {failed} failed, {other} still running or stopped."
    )
    svg = stacked_bars(
        chart_id,
        labels,
        [
            Series("completed", "series-ok", hourly.completed),
            Series("failed", "series-fail", hourly.failed),
            Series("other", "series-other", hourly.other),
        ],
        title=f"{whose} per hour",
        description=description,
        label_every=LABEL_EVERY,
        empty_message=f"No {whose.lower()} in the last {len(labels)} hours",
    )
    rows = [
        [label, str(a), str(b), str(c)]
        for label, a, b, c in zip(
            labels, hourly.completed, hourly.failed, hourly.other, strict=True
        )
    ]
    return Chart(
        title=f"{whose} per hour",
        svg=svg,
        caption=description,
        legend=[
            ("Completed", "series-ok"),
            ("Failed", "series-fail"),
            ("Running or stopped", "series-other"),
        ],
        columns=["Hour (UTC)", "Completed", "Failed", "Running or stopped"],
        rows=rows,
    )


def success_chart(hourly: HourlyExecutions, *, chart_id: str) -> Chart:
    """Share of settled executions that completed, per hour."""
    labels = _hour_labels(hourly)
    rates = hourly.success_rates()
    overall = hourly.success_rate()
    description = (
        f"Completed executions as a share of those that completed or failed, per hour over "
        f"the last {len(labels)} hours (UTC); "
        + (f"{overall:g}% over the whole period." if overall is not None else "none settled.")
    )
    svg = line_chart(
        chart_id,
        labels,
        rates,
        title="Success rate per hour",
        description=description,
        unit="%",
        max_value=100,
        label_every=LABEL_EVERY,
        empty_message="No execution has finished in this period",
    )
    return Chart(
        title="Success rate",
        svg=svg,
        caption=description,
        legend=[("Success rate", "series-main")],
        columns=["Hour (UTC)", "Success rate"],
        rows=[[label, _percent(rate)] for label, rate in zip(labels, rates, strict=True)],
    )


async def _health(request: Request, session: AsyncSession, now: datetime) -> Health:
    settings = SETTINGS.get(request)
    dispatcher = DISPATCHER.get(request)
    return Health(
        database=DATABASE_NAMES.get(session.get_bind().dialect.name, "database"),
        revision=await revision_on(await session.connection()),
        head=head_revision(),
        dispatcher=DISPATCHER_NAMES.get(dispatcher.kind, dispatcher.kind),
        live_workers=await live_workers(
            session, now=now, lease_seconds=settings.execution_lease_seconds
        ),
    )


async def _admin_view(request: Request, session: AsyncSession, now: datetime) -> dict[str, Any]:
    hourly = await executions_per_hour(session, now=now, hours=HOURS)
    counts = await count_by_status(session)
    layers = await figures_per_layer(session)
    awaiting, awaiting_total = await awaiting_decision(
        session, persona=None, created_by_id=None, limit=QUEUE_LIMIT
    )
    activities, _ = await list_activities(session, persona=None, limit=ACTIVITY_LIMIT, offset=0)
    return {
        "health": await _health(request, session, now),
        "counts": counts,
        "layers": layers,
        "agents_total": sum(f.agents for f in layers),
        "agents_active": sum(f.active for f in layers),
        "hourly": hourly,
        "charts": [
            executions_chart(hourly, chart_id="chart-executions", whose="Executions"),
            success_chart(hourly, chart_id="chart-success"),
        ],
        "running": await running_executions(session, limit=LIST_LIMIT),
        "work_queue": [
            WorkQueue(
                key="approvals",
                title="Executions awaiting approval",
                items=awaiting,
                total=awaiting_total,
                href="/executions?status=awaiting_approval",
                empty="No execution is waiting for a decision.",
            )
        ],
        "activities": activities,
    }


async def _persona_view(
    session: AsyncSession, principal: Principal, now: datetime
) -> dict[str, Any]:
    persona = await get_persona(session, principal.persona)
    agents, agents_total = await agents_of_persona(session, principal.persona, limit=LIST_LIMIT)
    hourly = await executions_per_hour(
        session, now=now, hours=HOURS, created_by_id=principal.user_id
    )
    queue: list[WorkQueue] = []
    may_decide = principal.can(EXECUTIONS_APPROVE)
    if may_decide:
        # A non-admin decides on the executions they started (orchestration/service.py).
        awaiting, total = await awaiting_decision(
            session,
            persona=principal.persona,
            created_by_id=principal.user_id,
            limit=QUEUE_LIMIT,
        )
        queue.append(
            WorkQueue(
                key="approvals",
                title="Executions awaiting your approval",
                items=awaiting,
                total=total,
                href="/executions?status=awaiting_approval",
                empty="Nothing is waiting for your decision.",
            )
        )
    return {
        "persona": persona,
        "agents": agents,
        "agents_total": agents_total,
        "hourly": hourly,
        "charts": [executions_chart(hourly, chart_id="chart-my-commands", whose="Commands")],
        "recent": await recent_executions_of(session, principal.user_id, limit=LIST_LIMIT),
        "work_queue": queue,
        "may_decide": may_decide,
        "waiting": sum(q.total for q in queue),
    }


@router.get("/")
async def dashboard(request: Request, session: DbSession, principal: Viewer) -> Response:
    """The viewer's dashboard: the operations view for admins, their desk for others."""
    ctx = await page_context(request, session, principal, section="dashboard")
    now = utcnow()
    if principal.is_admin:
        template, values = "dashboard/admin.html", await _admin_view(request, session, now)
    else:
        template, values = "dashboard/persona.html", await _persona_view(session, principal, now)
    return render(
        ctx,
        template,
        ago=lambda moment: ago(now, moment),
        sla_words=SLA_WORDS,
        **values,
    )
