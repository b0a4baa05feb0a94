"""Agent figures for dashboards: per layer, how many agents, how well they do, their SLAs.

The figures are what the agents table holds (the engine keeps each agent's success rate
and SLA status current, orchestration/metrics.py); one grouped query gives all six layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.agents.models import Agent
from jarvis.core.layers import LAYER_DESCRIPTIONS, LAYER_ORDER, Layer


@dataclass(frozen=True)
class LayerFigures:
    """One layer's agents: how many, how many active, their mean success rate and SLAs."""

    layer: Layer
    agents: int
    active: int
    # Mean success rate (percent) of the active agents that have figures; None: none has.
    success_rate: float | None
    sla_green: int
    sla_amber: int
    sla_red: int

    @property
    def description(self) -> str:
        return LAYER_DESCRIPTIONS[self.layer]

    @property
    def sla_status(self) -> str | None:
        """The layer's worst SLA colour among its active agents (None: no active agent)."""
        if self.sla_red:
            return "red"
        if self.sla_amber:
            return "amber"
        return "green" if self.sla_green else None


@dataclass(frozen=True)
class AgentLine:
    """One agent as a dashboard list shows it."""

    id: int
    name: str
    layer: str
    specialization: str | None
    enabled: bool
    success_rate: float | None
    sla_status: str
    governance_status: str


# An agent has figures once the engine (or the demo data) stored its SLA performance;
# before that its success rate is a default 0, which must not drag a mean down.
_MEASURED = Agent.sla_performance.is_not(None)
_ACTIVE = Agent.enabled.is_(True)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


async def figures_per_layer(session: AsyncSession) -> list[LayerFigures]:
    """The six layers in execution order, each with its agents' figures (zeros included)."""
    rows = await session.execute(
        select(
            Agent.layer,
            func.count(),
            _count_if(_ACTIVE),
            func.avg(case((and_(_ACTIVE, _MEASURED), Agent.success_rate))),
            _count_if(and_(_ACTIVE, Agent.sla_status == "green")),
            _count_if(and_(_ACTIVE, Agent.sla_status == "amber")),
            _count_if(and_(_ACTIVE, Agent.sla_status == "red")),
        ).group_by(Agent.layer)
    )
    found = {row[0]: row for row in rows.all()}
    figures = []
    for layer in LAYER_ORDER:
        row = found.get(layer.value)
        if row is None:
            figures.append(LayerFigures(layer, 0, 0, None, 0, 0, 0))
            continue
        _, total, enabled, rate, green, amber, red = row
        figures.append(
            LayerFigures(
                layer=layer,
                agents=int(total),
                active=int(enabled or 0),
                success_rate=None if rate is None else round(float(rate), 1),
                sla_green=int(green or 0),
                sla_amber=int(amber or 0),
                sla_red=int(red or 0),
            )
        )
    return figures


_LAYER_RANK = case(
    {layer.value: position for position, layer in enumerate(LAYER_ORDER)},
    value=Agent.layer,
    else_=len(LAYER_ORDER),
)


async def agents_of_persona(
    session: AsyncSession, persona: str, *, limit: int
) -> tuple[list[AgentLine], int]:
    """``persona``'s own agents in execution order (layer, then name), at most ``limit``,
    and how many it has."""
    mine = Agent.persona == persona
    total = await session.scalar(select(func.count()).select_from(Agent).where(mine))
    if not total:
        return [], 0
    rows = await session.execute(
        select(
            Agent.id,
            Agent.name,
            Agent.layer,
            Agent.specialization,
            Agent.enabled,
            case((_MEASURED, Agent.success_rate)),
            Agent.sla_status,
            Agent.governance_status,
        )
        .where(mine)
        .order_by(_LAYER_RANK, Agent.name, Agent.id)
        .limit(limit)
    )
    return [AgentLine(*row) for row in rows.all()], int(total)
