"""Execution figures for dashboards: counts by status, executions per hour, short lists.

Everything here is an aggregate or a bounded list, computed in SQL along existing indexes
(status; created_at; persona + created_at; created_by_id + created_at), so a dashboard
costs the same with ten executions or a million.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.orchestration.lifecycle import ACTIVE, STEP_COUNTED, ExecutionStatus, StepStatus
from jarvis.orchestration.models import executions_table, steps_table

# Statuses of executions that have not ended, in the order a dashboard lists them.
ACTIVE_STATUSES: tuple[str, ...] = tuple(s.value for s in ACTIVE)
X = ExecutionStatus
HOUR = timedelta(hours=1)
PREVIEW_CHARS = 160


@dataclass(frozen=True)
class ExecutionLine:
    """One execution as a dashboard list shows it."""

    execution_id: str
    command: str
    persona: str
    status: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    layers_done: int
    # The start of the answer (completed) or of the error (failed), if any.
    preview: str | None = None


@dataclass
class HourlyExecutions:
    """Executions created in each of the last ``len(hours)`` clock hours (UTC), oldest
    first, by how they ended: completed, failed, and everything else (still going,
    cancelled, rejected)."""

    hours: list[datetime]
    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    other: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.completed) + sum(self.failed) + sum(self.other)

    def success_rates(self) -> list[float | None]:
        """Per hour: completed / (completed + failed) in percent; None when none settled."""
        return [
            round(100 * ok / (ok + bad), 1) if ok + bad else None
            for ok, bad in zip(self.completed, self.failed, strict=True)
        ]

    def success_rate(self) -> float | None:
        """Over the whole window, as ``success_rates``."""
        ok, bad = sum(self.completed), sum(self.failed)
        return round(100 * ok / (ok + bad), 1) if ok + bad else None


def _hour_key(dialect: str, column: Any) -> ColumnElement[str]:
    """The UTC clock hour of a timestamp as text, 'YYYY-MM-DD HH', on either backend.

    The formats are inlined constants, not bind parameters: PostgreSQL must see the
    GROUP BY expression exactly as in the select list.
    """
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), column)
        return func.to_char(utc, literal_column("'YYYY-MM-DD HH24'"), type_=String)
    # SQLite stores UTC timestamps as ISO text (jarvis.db.base.UTCDateTime).
    return func.strftime(literal_column("'%Y-%m-%d %H'"), column, type_=String)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def executions_per_hour(
    session: AsyncSession,
    *,
    now: datetime,
    hours: int = 24,
    created_by_id: int | None = None,
) -> HourlyExecutions:
    """Executions created per clock hour over the last ``hours`` hours (the current,
    partial hour included), everyone's or one user's; one grouped query."""
    first = _floor_hour(now) - (hours - 1) * HOUR
    buckets = [first + i * HOUR for i in range(hours)]
    index = {moment.strftime("%Y-%m-%d %H"): i for i, moment in enumerate(buckets)}
    t = executions_table
    hour = _hour_key(session.get_bind().dialect.name, t.c.created_at).label("hour")
    conditions = [t.c.created_at >= first]
    if created_by_id is not None:
        conditions.append(t.c.created_by_id == created_by_id)
    rows = await session.execute(
        select(hour, t.c.status, func.count()).where(*conditions).group_by(hour, t.c.status)
    )
    figures = HourlyExecutions(
        hours=buckets, completed=[0] * hours, failed=[0] * hours, other=[0] * hours
    )
    for key, status, count in rows.all():
        position = index.get(key)
        if position is None:  # created "in the future" (clock skew between servers)
            continue
        series = {X.COMPLETED.value: figures.completed, X.FAILED.value: figures.failed}.get(
            status, figures.other
        )
        series[position] += count
    return figures


async def count_by_status(
    session: AsyncSession, statuses: Sequence[str] = ACTIVE_STATUSES
) -> dict[str, int]:
    """How many executions are in each of ``statuses`` now (zero included)."""
    t = executions_table
    rows = await session.execute(
        select(t.c.status, func.count()).where(t.c.status.in_(statuses)).group_by(t.c.status)
    )
    counts = dict.fromkeys(statuses, 0)
    for status, count in rows.all():
        counts[status] = count
    return counts


def _preview(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


_LINE_COLUMNS = (
    executions_table.c.execution_id,
    executions_table.c.command,
    executions_table.c.persona,
    executions_table.c.status,
    executions_table.c.created_by,
    executions_table.c.created_at,
    executions_table.c.started_at,
    executions_table.c.completed_at,
    executions_table.c.duration_ms,
    executions_table.c.layers_done,
)


async def _lines(
    session: AsyncSession,
    conditions: list[ColumnElement[bool]],
    *,
    limit: int,
    order: Any,
) -> list[ExecutionLine]:
    t = executions_table
    # Only the answer's text, not the whole result document (every agent's output).
    response = t.c.result["response"].as_string()
    rows = await session.execute(
        select(*_LINE_COLUMNS, response.label("response"), t.c.error)
        .where(*conditions)
        .order_by(order, t.c.execution_id)
        .limit(limit)
    )
    return [
        ExecutionLine(
            **{column.name: row[column.name] for column in _LINE_COLUMNS},
            preview=_preview(row["response"] or row["error"]),
        )
        for row in rows.mappings()
    ]


async def running_executions(session: AsyncSession, *, limit: int) -> list[ExecutionLine]:
    """Executions running now, the most recently started first."""
    t = executions_table
    return await _lines(
        session, [t.c.status == X.RUNNING.value], limit=limit, order=t.c.started_at.desc()
    )


async def recent_executions_of(
    session: AsyncSession, user_id: int, *, limit: int
) -> list[ExecutionLine]:
    """The executions ``user_id`` started, newest first, with a preview of their answer."""
    t = executions_table
    return await _lines(
        session, [t.c.created_by_id == user_id], limit=limit, order=t.c.created_at.desc()
    )


async def awaiting_decision(
    session: AsyncSession,
    *,
    persona: str | None,
    created_by_id: int | None,
    limit: int,
) -> tuple[list[ExecutionLine], int]:
    """Executions paused for a human decision (of ``persona`` and started by
    ``created_by_id`` when given), oldest first (the longest wait leads), and how many."""
    t = executions_table
    narrower: list[ColumnElement[bool]] = []
    if persona is not None:
        narrower.append(t.c.persona == persona)
    if created_by_id is not None:
        narrower.append(t.c.created_by_id == created_by_id)
    conditions: list[ColumnElement[bool]] = [t.c.status == X.AWAITING_APPROVAL.value]
    if narrower:
        # Few executions wait for a decision, so the status index is the way in. Inside a
        # CASE the other conditions only filter: SQLite's planner (without statistics)
        # would otherwise search the creator's index and read every execution a busy
        # user ever started.
        conditions.append(case((and_(*narrower), 1), else_=0) == 1)
    total = await session.scalar(select(func.count()).select_from(t).where(*conditions))
    if not total:
        return [], 0
    lines = await _lines(session, conditions, limit=limit, order=t.c.created_at)
    return lines, int(total)


# --- agent metrics (orchestration/metrics.py) -----------------------------------------------

# How many of an agent's newest settled steps its figures cover.
STEPS_PER_AGENT = 100


@lru_cache(maxsize=64)
def recent_step_figures(count: int) -> Select[Any]:
    """Per agent: settled, completed, mean duration, completed within its time limit;
    over each of ``count`` agents' newest STEPS_PER_AGENT settled steps, read backwards along the
    (agent_id, id) index, so the work stays bounded however long the history grows.
    Agent ids and limits are bind parameters (a0.., t0..): built once per count."""
    settled = steps_table.c.status.in_(sorted(s.value for s in STEP_COUNTED))
    per_agent = [
        select(steps_table.c.agent_id, steps_table.c.status, steps_table.c.duration_ms)
        .where(steps_table.c.agent_id == bindparam(f"a{i}", type_=Integer), settled)
        .order_by(steps_table.c.id.desc())
        .limit(STEPS_PER_AGENT)
        .subquery()
        for i in range(count)
    ]
    recent = union_all(*(select(*sub.c) for sub in per_agent)).subquery()
    completed = recent.c.status == StepStatus.COMPLETED.value
    within = case(
        *[
            (
                and_(
                    completed,
                    recent.c.agent_id == bindparam(f"a{i}", type_=Integer),
                    recent.c.duration_ms <= bindparam(f"t{i}", type_=Integer),
                ),
                1,
            )
            for i in range(count)
        ],
        else_=0,
    )
    return select(
        recent.c.agent_id,
        func.count(),
        func.sum(case((completed, 1), else_=0)),
        func.avg(func.coalesce(recent.c.duration_ms, 0)),
        func.sum(within),
    ).group_by(recent.c.agent_id)


def agent_step_figures(connection: Connection, params: dict[str, int], count: int) -> list[Any]:
    """Per agent of ``count`` (``a0``.. ids, ``t0``.. time limits in ``params``): agent id,
    settled, completed, mean duration, completed within its limit."""
    return list(connection.execute(recent_step_figures(count), params).all())
