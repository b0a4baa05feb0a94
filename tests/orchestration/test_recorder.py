"""The recorder's batching against a reference model.

A batch may merge the step inserts of several writes into one statement and write only the
newest of several updates of one step; neither may change what is stored or the events'
order. The reference applies the same writes one by one, in the order they were queued.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, insert, select, update

from jarvis.db.engine import Database
from jarvis.kit.bus import CapturingBus
from jarvis.kit.clock import utcnow
from jarvis.orchestration.models import events_table, executions_table, steps_table
from jarvis.orchestration.recorder import Emit, InsertRows, Recorder, RowChange
from tests.factories import create_personas

STEP_INSERT = insert(steps_table).returning(
    steps_table.c.id, steps_table.c.agent_id, sort_by_parameter_order=True
)
STEP_UPDATE = update(steps_table).where(steps_table.c.id == bindparam("b_step_id"))
STATUSES = ("running", "completed", "failed")

# A script: ("insert", [agent numbers]) adds steps; ("update", agent, status) changes the
# step of an agent inserted earlier; ("pause",) waits until everything queued is written,
# so the writes after it form another batch.
Op = tuple[Any, ...]


@st.composite
def scripts(draw: st.DrawFn) -> list[Op]:
    ops: list[Op] = []
    inserted: list[int] = []
    next_agent = 1
    for _ in range(draw(st.integers(1, 14))):
        choice = draw(st.sampled_from(["insert", "update", "update", "pause"]))
        if choice == "insert" or not inserted:
            count = draw(st.integers(0, 3))
            agents = list(range(next_agent, next_agent + count))
            next_agent += count
            inserted.extend(agents)
            ops.append(("insert", agents))
        elif choice == "update":
            ops.append(("update", draw(st.sampled_from(inserted)), draw(st.sampled_from(STATUSES))))
        else:
            ops.append(("pause",))
    return ops


def reference(script: list[Op]) -> tuple[dict[int, tuple[str, int]], list[tuple[str, int]]]:
    """Each agent's final (status, attempt) and the events, as one-by-one writes give them."""
    steps: dict[int, tuple[str, int]] = {}
    events: list[tuple[str, int]] = []
    for number, op in enumerate(script):
        if op[0] == "insert":
            for agent in op[1]:
                steps[agent] = ("pending", 1)
                events.append(("inserted", agent))
        elif op[0] == "update":
            steps[op[1]] = (op[2], number)
            events.append((op[2], op[1]))
    return steps, events


@pytest.fixture
async def with_personas(db: Database) -> Database:
    await create_personas(db)
    return db


async def new_execution(db: Database) -> str:
    execution_id = str(uuid.uuid4())
    async with db.engine.begin() as connection:
        await connection.execute(
            insert(executions_table),
            {
                "execution_id": execution_id,
                "persona": "admin",
                "command": "recorder test",
                "status": "running",
                "created_by": "test",
                "created_at": utcnow(),
                "layers_done": 0,
            },
        )
    return execution_id


async def play(db: Database, bus: CapturingBus, script: list[Op]) -> str:
    execution_id = await new_execution(db)
    recorder = Recorder(db, bus, execution_id, 0)
    step_ids: dict[int, int] = {}
    pending: list[asyncio.Future[Any]] = []
    for number, op in enumerate(script):
        if op[0] == "insert":
            rows = [
                {
                    "execution_id": execution_id,
                    "agent_id": None,
                    "agent_name": f"agent {agent}",
                    "agent_kind": "echo",
                    "layer": "Process",
                    "position": agent,
                    "status": "pending",
                    "attempt": 1,
                }
                for agent in op[1]
            ]

            def describe(returned: Any, agents: list[int] = op[1]) -> Emit:
                assert len(returned) == len(agents)
                for agent, (step_id, _agent_id) in zip(agents, returned, strict=True):
                    step_ids[agent] = step_id
                return Emit(None, [{"type": "inserted", "agent": a} for a in agents])

            pending.append(recorder.submit(InsertRows(STEP_INSERT, rows, describe)))
        elif op[0] == "update":
            agent, status = op[1], op[2]

            def change(agent: int = agent, status: str = status, attempt: int = number) -> Any:
                params = {"b_step_id": step_ids[agent], "status": status, "attempt": attempt}
                return params, [{"type": status, "agent": agent}]

            pending.append(recorder.submit(RowChange(STEP_UPDATE, change, key="b_step_id")))
        else:
            await asyncio.gather(*pending)
    await asyncio.gather(*pending)
    assert recorder.failure is None
    # The steps are named by agent: map the database's rows back to them.
    for agent, step_id in step_ids.items():
        assert step_id is not None, agent
    return execution_id


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=scripts())
async def test_batched_writes_store_what_one_by_one_writes_would(
    with_personas: Database, script: list[Op]
) -> None:
    bus = CapturingBus()
    execution_id = await play(with_personas, bus, script)
    expected_steps, expected_events = reference(script)

    async with with_personas.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(steps_table.c.position, steps_table.c.status, steps_table.c.attempt).where(
                    steps_table.c.execution_id == execution_id
                )
            )
        ).all()
        stored = (
            await connection.execute(
                select(events_table.c.seq, events_table.c.payload)
                .where(events_table.c.execution_id == execution_id)
                .order_by(events_table.c.seq)
            )
        ).all()

    assert {row.position: (row.status, row.attempt) for row in rows} == expected_steps
    assert [(p["type"], p["agent"]) for _, p in stored] == expected_events
    assert [seq for seq, _ in stored] == list(range(1, len(expected_events) + 1))
    # Published after commit, in the same order, nothing more.
    published = [(m["type"], m["agent"]) for _, m in bus.published]
    assert published == expected_events
