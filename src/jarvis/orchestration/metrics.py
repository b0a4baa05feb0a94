"""Agent performance after each execution: success rate, response time, SLA status.

Computed from each agent's most recent settled steps (``WINDOW`` of them), so a change in
behaviour shows within a day's work and one bad hour does not stick for ever. Thresholds
come from ConfigService per agent (``sla.success_rate_min``, ``sla.response_time_ms``):

- ``success_rate``: completed / (completed + failed) steps, in percent;
- ``avg_response_time``: mean step duration in ms (retries included: the user waited);
- ``sla_performance``: percent of steps that completed within ``sla.response_time_ms``;
- ``sla_status``: ``green`` when both thresholds are met, ``amber`` when one is missed,
  ``red`` when both are.
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.agents.service import MetricsUpdate, record_metrics
from jarvis.config.scope import Scope
from jarvis.config.service import ConfigService
from jarvis.orchestration.models import ExecutionStep

WINDOW = 100


def sla_status(success_rate: float, avg_ms: float, *, min_rate: float, max_ms: int) -> str:
    """green / amber / red from the two thresholds (``min_rate`` is a share, 0..1)."""
    missed = int(success_rate < min_rate * 100) + int(avg_ms > max_ms)
    return ("green", "amber", "red")[missed]


async def update_metrics(session: AsyncSession, config: ConfigService, execution_id: str) -> None:
    """Recompute the figures of every agent that ran a step in ``execution_id``."""
    took_part = (
        select(ExecutionStep.agent_id, ExecutionStep.execution_id)
        .where(
            ExecutionStep.execution_id == execution_id,
            ExecutionStep.agent_id.is_not(None),
            ExecutionStep.status.in_(("completed", "failed")),
        )
        .subquery()
    )
    agents = (await session.execute(select(took_part.c.agent_id))).scalars().all()
    if not agents:
        return
    thresholds = {}
    for agent_id in agents:
        scope = Scope(agent_id=agent_id)
        thresholds[agent_id] = (
            await config.get("sla.success_rate_min", scope, as_type=float),
            await config.get("sla.response_time_ms", scope, as_type=int),
        )
    # Each agent's newest WINDOW settled steps, read backwards along its (agent_id, id)
    # index: bounded work per execution however long the history grows.
    per_agent = [
        select(ExecutionStep.agent_id, ExecutionStep.status, ExecutionStep.duration_ms)
        .where(
            ExecutionStep.agent_id == agent_id,
            ExecutionStep.status.in_(("completed", "failed")),
        )
        .order_by(ExecutionStep.id.desc())
        .limit(WINDOW)
        .subquery()
        for agent_id in thresholds
    ]
    recent = union_all(*(select(*sub.c) for sub in per_agent)).subquery()
    completed = recent.c.status == "completed"
    rows = await session.execute(
        select(
            recent.c.agent_id,
            func.count(),
            func.sum(case((completed, 1), else_=0)),
            func.avg(func.coalesce(recent.c.duration_ms, 0)),
            func.sum(
                case(
                    *[
                        (
                            and_(
                                completed,
                                recent.c.agent_id == agent_id,
                                recent.c.duration_ms <= limits[1],
                            ),
                            1,
                        )
                        for agent_id, limits in thresholds.items()
                    ],
                    else_=0,
                )
            ),
        ).group_by(recent.c.agent_id)
    )
    updates = []
    for agent_id, total, ok, avg_ms, within in rows.all():
        min_rate, max_ms = thresholds[agent_id]
        rate = round(100 * (ok or 0) / total, 2)
        avg = float(avg_ms or 0)
        updates.append(
            MetricsUpdate(
                agent_id=agent_id,
                success_rate=rate,
                avg_response_time=round(avg),
                sla_performance=round(100 * (within or 0) / total, 2),
                sla_status=sla_status(rate, avg, min_rate=min_rate, max_ms=max_ms),
            )
        )
    await record_metrics(session, updates)
