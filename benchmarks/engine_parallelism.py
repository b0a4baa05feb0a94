"""Parallelism: a layer of three 200 ms agents takes about as long as one such agent.

Two SQLite databases in one temporary directory, each with its own engine: in one, the
Experience layer holds one ``echo`` agent with ``{"delayMs": 200}``; in the other, three
such agents. Every other layer is empty. The two executions run alternately for several
rounds; each is timed from ``create_execution`` to the end of ``Engine.run``, so the
engine's own work counts too. The span of the layer's steps (first step started to last
step completed, from the step rows) is printed as well. Target: the three-agent execution
under 1.3 x the one-agent execution (run in series they would take 3 x).

    python benchmarks/engine_parallelism.py [--rounds 10] [--delay-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import func, select

from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.core.identity import Actor
from jarvis.core.layers import Layer
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import MemoryBus
from jarvis.orchestration import service as executions
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.models import ExecutionStep
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona
from jarvis.wiring import config_service

TARGET_RATIO = 1.3
ACTOR = Actor.system("benchmark")


@dataclass
class Setup:
    db: Database
    engine: Engine
    agents: int

    async def execute(self) -> tuple[float, float]:
        """One execution: (wall-clock ms from create to the end of run, layer span ms)."""
        started = time.perf_counter()
        async with unit_of_work(self.db) as session:
            execution = await executions.create_execution(
                session, ExecutionCreate(command="benchmark", persona="admin"), actor=ACTOR
            )
        status = await self.engine.run(execution.execution_id)
        elapsed = (time.perf_counter() - started) * 1000
        if status != "completed":
            raise RuntimeError(f"execution {execution.execution_id} ended {status}")
        async with unit_of_work(self.db, write=False) as session:
            row = (
                await session.execute(
                    select(
                        func.count(),
                        func.min(ExecutionStep.started_at),
                        func.max(ExecutionStep.completed_at),
                    ).where(
                        ExecutionStep.execution_id == execution.execution_id,
                        ExecutionStep.status == "completed",
                    )
                )
            ).one()
        completed, first_started, last_completed = row
        if completed != self.agents or first_started is None or last_completed is None:
            raise RuntimeError(f"{completed} completed steps, expected {self.agents}")
        return elapsed, (last_completed - first_started).total_seconds() * 1000


@asynccontextmanager
async def setup(url: str, agents: int, delay_ms: int) -> AsyncIterator[Setup]:
    """A migrated database whose Experience layer holds ``agents`` sleeping echo agents."""
    await upgrade(url)
    db = Database.from_url(url)
    bus = MemoryBus()
    config = config_service(db, bus=bus, poll_seconds=0)
    try:
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
            await ensure_persona(session, ADMIN_PERSONA, actor=ACTOR, config=config)
            for n in range(1, agents + 1):
                data = AgentCreate(
                    name=f"Sleeper {n}",
                    layer=Layer.EXPERIENCE,
                    persona="admin",
                    kind="echo",
                    config={"delayMs": delay_ms},
                    governance_status="approved",
                )
                await create_agent(session, data, actor=ACTOR)
        await config.start()
        engine = Engine(db=db, config=config, bus=bus)
        await engine.start()
        try:
            yield Setup(db, engine, agents)
        finally:
            await engine.close()
            await config.close()
    finally:
        await db.dispose()


async def run(tmp: str, rounds: int, delay_ms: int) -> None:
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(
            setup(f"sqlite+aiosqlite:///{tmp}/one.db", 1, delay_ms)
        )
        three = await stack.enter_async_context(
            setup(f"sqlite+aiosqlite:///{tmp}/three.db", 3, delay_ms)
        )
        await one.execute()  # warm-up
        await three.execute()
        runs: dict[str, list[tuple[float, float]]] = {"one agent": [], "three agents": []}
        for n in range(rounds):
            order = [("one agent", one), ("three agents", three)]
            for name, target in order if n % 2 == 0 else order[::-1]:
                runs[name].append(await target.execute())
        medians = {}
        for name, values in runs.items():
            wall = statistics.median(v[0] for v in values)
            span = statistics.median(v[1] for v in values)
            medians[name] = (wall, span)
            print(
                f"  {name:<12} execution median {wall:7.1f} ms (min {min(v[0] for v in values):.1f}"
                f", max {max(v[0] for v in values):.1f}); layer span median {span:7.1f} ms"
            )
        (one_wall, one_span), (three_wall, three_span) = medians.values()
        print(
            f"engine_parallelism[sqlite]: three {delay_ms} ms agents in one layer: median "
            f"{three_wall:.1f} ms per execution ({three_wall / one_wall:.2f} x one agent's "
            f"{one_wall:.1f} ms; layer span {three_span / one_span:.2f} x; {rounds} rounds; "
            f"target < {TARGET_RATIO:g})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--delay-ms", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(tmp, args.rounds, args.delay_ms))


if __name__ == "__main__":
    main()
