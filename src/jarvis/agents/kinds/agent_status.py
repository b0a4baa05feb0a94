"""``agent_status``: which agents await governance approval, which executions a decision.

Answers questions such as "Which agents are waiting for approval?" from the registry and
the executions the engine lets kinds see (``KindServices.executions``): agents whose
governance status is one of the configured ones, and executions paused for a human
decision (those of the asking persona; an admin sees all), with a one-sentence summary
for the response.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, field_validator
from sqlalchemy import func, select

from jarvis.agents.kinds.base import AgentKind, KindConfig, StepContext, StepResult
from jarvis.agents.models import Agent
from jarvis.agents.schemas import GovernanceStatus
from jarvis.core.permissions import ADMIN_PERSONA_KEY
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import as_utc

# Statuses that mean "waiting for a governance decision" (the summary's wording).
APPROVAL_PENDING = frozenset({"pending", "under_review"})
# How many names the summary sentence spells out before "and N more".
NAMES_IN_SUMMARY = 5
DEFAULT_STATUSES: tuple[GovernanceStatus, ...] = ("pending", "under_review")


class AgentStatusConfig(KindConfig):
    governance_statuses: list[GovernanceStatus] = Field(
        default_factory=lambda: list(DEFAULT_STATUSES),
        min_length=1,
        max_length=5,
        description="The governance statuses to report.",
    )
    include_executions: bool = Field(
        default=True, description="Also list executions awaiting a human decision."
    )
    limit: int = Field(default=20, ge=1, le=100, description="At most this many of each.")

    @field_validator("governance_statuses")
    @classmethod
    def _unique(cls, statuses: list[GovernanceStatus]) -> list[GovernanceStatus]:
        return list(dict.fromkeys(statuses))


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def _names(names: list[str], total: int) -> str:
    shown = names[:NAMES_IN_SUMMARY]
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def summarise(
    agent_names: list[str],
    agent_total: int,
    statuses: Sequence[str],
    execution_total: int | None,
) -> str:
    """One sentence: how many agents are in the statuses (named) and executions wait."""
    singular = agent_total <= 1  # "No agent awaits", "1 agent awaits", "2 agents await"
    if set(statuses) <= APPROVAL_PENDING:
        verb = ("awaits" if singular else "await") + " governance approval"
    else:
        verb = ("has" if singular else "have") + " governance status " + " or ".join(statuses)
    if agent_total == 0:
        agents_part = f"No agent {verb}"
    else:
        noun = _count(agent_total, "agent", "agents")
        agents_part = f"{noun} {verb} ({_names(agent_names, agent_total)})"
    if execution_total is None:
        return agents_part + "."
    if execution_total == 0:
        executions_part = "no execution awaits a human decision"
    else:
        noun = _count(execution_total, "execution", "executions")
        executions_part = f"{noun} {'awaits' if execution_total == 1 else 'await'} a human decision"
    return f"{agents_part}; {executions_part}."


class AgentStatusKind(AgentKind):
    name: ClassVar[str] = "agent_status"
    description: ClassVar[str] = (
        "Reports the agents whose governance status is pending (or other configured "
        "statuses) and the executions awaiting a human decision, with a summary sentence."
    )
    config_model: ClassVar[type[KindConfig]] = AgentStatusConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(AgentStatusConfig)
        statuses = list(settings.governance_statuses)
        persona = step.context.get("persona")
        executions: list[dict[str, Any]] = []
        execution_total: int | None = None
        async with unit_of_work(step.services.db, write=False) as session:
            in_status = Agent.governance_status.in_(statuses)
            agent_total = (
                await session.scalar(select(func.count()).select_from(Agent).where(in_status))
            ) or 0
            agent_rows = (
                await session.execute(
                    select(
                        Agent.id, Agent.name, Agent.layer, Agent.persona, Agent.governance_status
                    )
                    .where(in_status)
                    .order_by(Agent.id)  # registration order: the same on every backend
                    .limit(settings.limit)
                )
            ).all()
        if settings.include_executions:
            waiting, execution_total = await step.services.executions.awaiting_decision(
                persona=None if persona == ADMIN_PERSONA_KEY else str(persona),
                limit=settings.limit,
            )
            executions = [
                {
                    "executionId": row.execution_id,
                    "command": row.command,
                    "persona": row.persona,
                    "createdAt": as_utc(row.created_at).isoformat(),
                }
                for row in waiting
            ]
        agents = [
            {
                "id": row.id,
                "name": row.name,
                "layer": row.layer,
                "persona": row.persona,
                "governanceStatus": row.governance_status,
            }
            for row in agent_rows
        ]
        summary = summarise([a["name"] for a in agents], agent_total, statuses, execution_total)
        return StepResult({"agents": agents, "executions": executions, "summary": summary})
