"""Agent performance after executions: success rate, response time, SLA performance and
status, with thresholds from ConfigService at the agent's scope.

The expected figures are computed here from the steps the API shows (durations included),
so nothing depends on how long a step took.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.core.scope import Scope
from jarvis.orchestration.metrics import AGENTS_PER_QUERY, sla_status, update_metrics
from tests.orchestration.conftest import World, step


@pytest.mark.parametrize(
    ("rate", "avg_ms", "status"),
    [
        (100.0, 10, "green"),
        (95.0, 5000, "green"),  # both thresholds met exactly
        (94.99, 10, "amber"),  # success rate missed
        (100.0, 5001, "amber"),  # response time missed
        (50.0, 9000, "red"),  # both missed
        (0.0, 0, "amber"),
    ],
)
def test_sla_status_counts_the_thresholds_missed(rate: float, avg_ms: float, status: str) -> None:
    assert sla_status(rate, avg_ms, min_rate=0.95, max_ms=5000) == status


@given(
    rate=st.floats(0, 100),
    avg=st.floats(0, 10_000),
    min_rate=st.floats(0, 1),
    max_ms=st.integers(1, 10_000),
)
def test_sla_status_reference(rate: float, avg: float, min_rate: float, max_ms: int) -> None:
    missed = (rate < min_rate * 100) + (avg > max_ms)
    assert (
        sla_status(rate, avg, min_rate=min_rate, max_ms=max_ms) == ["green", "amber", "red"][missed]
    )


async def agent_json(world: World, agent_id: int) -> Any:
    response = await world.client.get(f"/api/agents/{agent_id}", headers=world.admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


def figures(steps: list[dict[str, Any]], max_ms: int) -> dict[str, Any]:
    """The reference: the figures of one agent from its settled steps."""
    settled = [s for s in steps if s["status"] in ("completed", "failed")]
    ok = [s for s in settled if s["status"] == "completed"]
    durations = [s["durationMs"] or 0 for s in settled]
    return {
        "successRate": round(100 * len(ok) / len(settled), 2),
        "avgResponseTime": round(sum(durations) / len(durations)),
        "slaPerformance": round(
            100 * len([s for s in ok if s["durationMs"] <= max_ms]) / len(settled), 2
        ),
    }


async def test_metrics_follow_the_outcomes_and_the_agents_thresholds(world: World) -> None:
    await world.set("agent.max_retries", 0)
    await world.set("execution.failure_policy", {"Process": "continue", "System": "continue"})
    steady = await world.agent("Process", "Steady", config={"delayMs": 20})
    shaky = await world.agent("Process", "Shaky", config={"failAttempts": 9})
    fine = await world.agent("Process", "Fine")
    barred = await world.agent("Process", "Barred", governance_status="blocked")
    varying = await world.agent("System", "Varying")
    # Steady must answer within 1 ms (it sleeps 20 ms); Shaky needs no successes at all.
    await world.set("sla.response_time_ms", 1, Scope(agent_id=steady.id))
    await world.set("sla.success_rate_min", 0, Scope(agent_id=shaky.id))

    runs = [await world.run(f"run {n}") for n in range(2)]
    # Varying fails from now on: two successes, then one failure.
    response = await world.client.patch(
        f"/api/agents/{varying.id}",
        json={"config": {"failAttempts": 9}},
        headers=world.admin_headers,
    )
    assert response.status_code == 200, response.text
    runs.append(await world.run("run 2"))
    assert [r["status"] for r in runs] == ["completed"] * 3

    def steps_of(name: str) -> list[dict[str, Any]]:
        return [step(r, name) for r in runs]

    got = await agent_json(world, steady.id)
    assert got | figures(steps_of("Steady"), 1) == got
    assert got["successRate"] == 100
    assert got["slaPerformance"] == 0  # none within 1 ms
    assert got["slaStatus"] == "amber"  # too slow, never failing

    got = await agent_json(world, shaky.id)
    assert got | figures(steps_of("Shaky"), 5000) == got
    assert (got["successRate"], got["slaPerformance"]) == (0, 0)
    assert got["slaStatus"] == "green"  # a 0 % floor is met; it answers fast

    got = await agent_json(world, fine.id)
    assert got | figures(steps_of("Fine"), 5000) == got
    assert (got["successRate"], got["slaStatus"]) == (100, "green")

    got = await agent_json(world, varying.id)
    assert got | figures(steps_of("Varying"), 5000) == got
    assert got["successRate"] == 66.67
    assert got["slaStatus"] == "amber"  # below the global 95 % floor

    # Agents that did not run keep their figures.
    got = await agent_json(world, barred.id)
    assert step(runs[0], "Barred")["status"] == "skipped"
    assert (got["successRate"], got["avgResponseTime"], got["slaPerformance"]) == (0, 0, None)

    # A new threshold applies from the next execution on.
    await world.set("sla.response_time_ms", 600_000, Scope(agent_id=steady.id))
    runs.append(await world.run("run 3"))
    got = await agent_json(world, steady.id)
    assert got | figures(steps_of("Steady"), 600_000) == got
    assert (got["slaPerformance"], got["slaStatus"]) == (100, "green")


async def test_a_step_awaiting_approval_counts_once_decided(world: World) -> None:
    checker = await world.agent("Role", "Checker", config={"requiresApproval": True})
    async with world.watch() as watch:
        execution_id = await world.post("check")
        await watch.until(execution_id, "awaiting_approval")
    await world.settle()
    assert (await agent_json(world, checker.id))["successRate"] == 0

    assert (await world.action(execution_id, "approve")).status_code == 200
    await world.settle()

    done = await world.show(execution_id)
    got = await agent_json(world, checker.id)
    assert got | figures([step(done, "Checker")], 5000) == got
    assert got["successRate"] == 100


async def test_metrics_of_more_agents_than_one_compound_select_allows(world: World) -> None:
    """SQLite allows 500 terms in one compound SELECT (one UNION branch per agent): an
    execution served by more agents is computed in chunks, and each agent gets its figures."""
    fine = await world.agent("Process", "Fine")
    await world.run("once")
    assert (await agent_json(world, fine.id))["slaStatus"] == "green"
    others = range(10_000, 10_000 + 2 * AGENTS_PER_QUERY + 150)
    # A floor above 100 % turns it amber.
    thresholds = {agent_id: (0.95, 5000) for agent_id in others} | {fine.id: (1.01, 5000)}
    await world.db.run_write(partial(update_metrics, thresholds=thresholds))
    got = await agent_json(world, fine.id)
    assert (got["successRate"], got["slaStatus"]) == (100, "amber")
