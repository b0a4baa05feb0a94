"""Agent performance after each execution: success rate, response time, SLA status.

Computed from each agent's most recent settled steps (``STEPS_PER_AGENT`` of them), so a change in
behaviour shows within a day's work and one bad hour does not stick for ever. Thresholds
come from ConfigService per agent (``sla.success_rate_min``, ``sla.response_time_ms``):

- ``success_rate``: completed / (completed + failed) steps, in percent;
- ``avg_response_time``: mean step duration in ms (retries included: the user waited);
- ``sla_performance``: percent of steps that completed within ``sla.response_time_ms``;
- ``sla_status``: ``green`` when both thresholds are met, ``amber`` when one is missed,
  ``red`` when both are.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from jarvis.agents.service import MetricsUpdate, store_metrics
from jarvis.config.service import ConfigService
from jarvis.core.scope import Scope
from jarvis.orchestration.store.figures import STEPS_PER_AGENT, agent_step_figures

__all__ = ["STEPS_PER_AGENT", "sla_status", "sla_thresholds", "update_metrics"]
# Agents whose figures one query computes (see update_metrics).
AGENTS_PER_QUERY = 200


def sla_status(success_rate: float, avg_ms: float, *, min_rate: float, max_ms: int) -> str:
    """green / amber / red from the two thresholds (``min_rate`` is a share, 0..1)."""
    missed = int(success_rate < min_rate * 100) + int(avg_ms > max_ms)
    return ("green", "amber", "red")[missed]


async def sla_thresholds(
    config: ConfigService, agent_ids: Iterable[int]
) -> dict[int, tuple[float, int]]:
    """Each agent's (sla.success_rate_min, sla.response_time_ms), resolved at its scope."""
    thresholds = {}
    for agent_id in sorted(set(agent_ids)):
        scope = Scope(agent_id=agent_id)
        thresholds[agent_id] = (
            await config.get("sla.success_rate_min", scope, as_type=float),
            await config.get("sla.response_time_ms", scope, as_type=int),
        )
    return thresholds


def update_metrics(connection: Connection, thresholds: dict[int, tuple[float, int]]) -> None:
    """Recompute and store the figures of the agents in ``thresholds`` (those that settled
    a step in an execution), inside the engine's closing write."""
    agents = sorted(thresholds)
    updates = []
    # One UNION branch per agent: SQLite allows 500 in one compound SELECT.
    for start in range(0, len(agents), AGENTS_PER_QUERY):
        updates += _figures(connection, agents[start : start + AGENTS_PER_QUERY], thresholds)
    if updates:
        store_metrics(connection, updates)


def _figures(
    connection: Connection, agents: list[int], thresholds: dict[int, tuple[float, int]]
) -> list[MetricsUpdate]:
    params: dict[str, int] = {}
    for index, agent_id in enumerate(agents):
        params[f"a{index}"] = agent_id
        params[f"t{index}"] = thresholds[agent_id][1]
    rows = agent_step_figures(connection, params, len(agents))
    updates = []
    for agent_id, total, ok, avg_ms, within in rows:
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
    return updates
