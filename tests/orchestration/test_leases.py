"""Leases: an execution whose engine is lost is resumed by another, once, from the first
unfinished layer; a lost engine that comes back is fenced off; too many losses end it
``failed`` (``worker_lost``); Taskiq workers run, hand back and resume executions.

A lost engine is simulated by abandoning its run (it stops writing, as a killed process
would) and moving the lease's expiry into the past, so nothing waits for a clock.
tests/realtime/test_processes.py does the same with real processes and kill -9.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from jarvis.db.engine import Database
from jarvis.kit.clock import utcnow
from jarvis.main import create_app
from jarvis.orchestration.dispatcher import TaskiqDispatcher
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.models import events_table, executions_table, steps_table
from jarvis.orchestration.worker import Worker
from jarvis.settings import Settings
from tests.orchestration.conftest import WAIT, World, make_world, types_of


async def lost_world(world: World) -> None:
    """Agents in five layers; the Process agent takes long enough to be caught running."""
    await world.agent("Experience", "Greeter")
    await world.agent("Role", "Reader", config={"delayMs": 20})
    await world.agent("Process", "Slow", config={"delayMs": 1500})
    await world.agent("System", "Filer")
    await world.agent("Interface", "Replier")


async def start_slow(world: World) -> str:
    """Post a command and return once its slow Process step is running."""
    await lost_world(world)
    async with world.watch() as watch:
        execution_id = await world.post("review the submission")
        await watch.until(execution_id, "step_started", agentName="Slow")
    return execution_id


async def expire_lease(db: Database, execution_id: str) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(
            update(executions_table)
            .where(executions_table.c.execution_id == execution_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


async def row(db: Database, execution_id: str) -> Any:
    async with db.engine.connect() as connection:
        return (
            await connection.execute(
                select(executions_table).where(executions_table.c.execution_id == execution_id)
            )
        ).one()


async def steps(db: Database, execution_id: str) -> dict[str, Any]:
    async with db.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(steps_table).where(steps_table.c.execution_id == execution_id)
            )
        ).all()
    names = [r.agent_name for r in rows]
    assert len(names) == len(set(names)), names  # one step per agent, whatever happened
    return {r.agent_name: r for r in rows}


def second_engine(world: World, **kwargs: Any) -> Engine:
    return Engine(world.db, world.config, world.app.state.bus, **kwargs)


def check_log(events: list[dict[str, Any]]) -> None:
    """Numbered 1..n without gap or repeat, one start and exactly one end."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    final = ("completed", "failed", "cancelled", "rejected")
    ends = [t for t in types_of(events) if t in {f"execution_{s}" for s in final}]
    assert len(ends) == 1, ends


async def test_a_lost_engine_is_resumed_from_the_first_unfinished_layer(world: World) -> None:
    engine = world.app.state.engine
    execution_id = await start_slow(world)
    before = await steps(world.db, execution_id)
    engine.abandon(execution_id)  # the engine dies: it writes nothing more
    await world.settle()
    assert (await row(world.db, execution_id)).status == "running"
    await expire_lease(world.db, execution_id)

    other = second_engine(world)
    await other.start()
    try:
        assert await other.run(execution_id) == "completed"
    finally:
        await other.close()

    after = await steps(world.db, execution_id)
    assert set(after) == {"Greeter", "Reader", "Slow", "Filer", "Replier"}
    for name in ("Greeter", "Reader"):  # settled before the loss: not run again
        assert after[name].status == "completed"
        assert after[name].started_at == before[name].started_at
        assert after[name].completed_at == before[name].completed_at
    assert after["Slow"].status == "completed"
    stored = await row(world.db, execution_id)
    assert stored.status == "completed"
    assert stored.worker_losses == 1
    events = await world.events(execution_id)
    check_log(events)
    resumed = [e for e in events if e["type"] == "execution_resumed"]
    assert len(resumed) == 1 and resumed[0]["workerLosses"] == 1
    # The Process layer started once (by the lost engine); its step started twice.
    assert [e["layer"] for e in events if e["type"] == "layer_started"].count("Process") == 1


async def test_a_lost_engine_that_comes_back_is_fenced_off(world: World) -> None:
    execution_id = await start_slow(world)
    # The first engine stalls past its lease; another takes over while it still runs.
    await expire_lease(world.db, execution_id)
    other = second_engine(world)
    await other.start()
    try:
        assert await other.run(execution_id) == "completed"
        await world.settle()  # the first engine's run ends, unable to record anything
    finally:
        await other.close()

    stored = await row(world.db, execution_id)
    assert stored.status == "completed"
    assert stored.lease_owner == other.owner
    events = await world.events(execution_id)
    check_log(events)
    assert types_of(events)[-1] == "execution_completed"
    await steps(world.db, execution_id)


async def test_too_many_losses_end_the_execution_failed(world: World) -> None:
    engine = world.app.state.engine
    execution_id = await start_slow(world)
    engine.abandon(execution_id)
    await world.settle()
    async with world.db.engine.begin() as connection:
        await connection.execute(
            update(executions_table)
            .where(executions_table.c.execution_id == execution_id)
            .values(worker_losses=3, lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    other = second_engine(world, max_worker_losses=3)
    assert await other.run(execution_id) == "failed"
    assert await other.run(execution_id) == "failed"  # a repeated message changes nothing

    stored = await row(world.db, execution_id)
    assert (stored.status, stored.error_code, stored.worker_losses) == ("failed", "worker_lost", 4)
    assert (await steps(world.db, execution_id))["Slow"].status == "failed"
    events = await world.events(execution_id)
    check_log(events)
    assert events[-1]["type"] == "execution_failed"
    assert events[-1]["errorCode"] == "worker_lost"


async def test_a_live_lease_cannot_be_claimed_and_renewal_extends_it(world: World) -> None:
    engine = world.app.state.engine
    execution_id = await start_slow(world)
    first = (await row(world.db, execution_id)).lease_expires_at
    other = second_engine(world)
    assert await other.run(execution_id) == "running"  # held: nothing happens
    await asyncio.sleep(0.01)
    await engine.renew()
    assert (await row(world.db, execution_id)).lease_expires_at > first
    # A cancellation stored without a message (a lost one) is acted on at the renewal.
    async with world.db.engine.begin() as connection:
        await connection.execute(
            update(executions_table)
            .where(executions_table.c.execution_id == execution_id)
            .values(cancel_requested_at=utcnow())
        )
    await engine.renew()
    await world.settle()
    assert (await row(world.db, execution_id)).status == "cancelled"


async def test_the_sweeper_resumes_what_nobody_runs(world: World) -> None:
    engine = world.app.state.engine
    execution_id = await start_slow(world)
    engine.abandon(execution_id)
    await world.settle()
    assert await world.dispatcher.sweeper.sweep() == []  # the lease has not expired
    await expire_lease(world.db, execution_id)
    assert await world.dispatcher.sweeper.sweep() == [execution_id]
    await world.settle()
    assert (await row(world.db, execution_id)).status == "completed"


# --- Taskiq workers on the real Redis -------------------------------------------------------


async def wait_status(world: World, execution_id: str, *statuses: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            shown: dict[str, Any] = await world.show(execution_id)
            if shown["status"] in statuses:
                return shown
            await asyncio.sleep(0.05)


async def wait_for_step(world: World, execution_id: str, name: str) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            shown = await world.show(execution_id)
            if name in {s["agentName"] for s in shown["steps"]}:
                return
            await asyncio.sleep(0.05)


async def start_worker(
    settings: Settings, *, grace: float = 0
) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(settings, concurrency=2, grace=grace)
    ready = asyncio.Event()
    task = asyncio.create_task(worker.run(on_ready=lambda _w: ready.set()))
    async with asyncio.timeout(WAIT):
        await ready.wait()
    return worker, task


async def test_taskiq_workers_run_hand_back_and_resume(
    db: Database, settings: Settings, redis_url: str
) -> None:
    queued = settings.model_copy(
        update={
            "redis_url": redis_url,
            "taskiq_queue": f"jarvis:test:{uuid.uuid4().hex}",
            "execution_lease_seconds": 5.0,
        }
    )
    app = create_app(queued, database=db)
    assert isinstance(app.state.dispatcher, TaskiqDispatcher)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            world = await make_world(app, c, db)
            await lost_world(world)
            first, first_task = await start_worker(queued, grace=0)
            try:
                health = (await c.get("/api/health")).json()
                assert health["broker"] == {"kind": "taskiq-redis", "status": "ok"}
                assert health["workers"]["live"] == 1

                done = await wait_status(world, await world.post("first"), "completed")
                assert {s["status"] for s in done["steps"]} == {"completed"}

                # Stopped mid-execution with no grace: handed back, then resumed elsewhere.
                execution_id = await world.post("second")
                await wait_for_step(world, execution_id, "Slow")
                first.stop()
                await first_task
                assert (await row(db, execution_id)).status == "queued"
            finally:
                first.stop()
                await first_task
            second, second_task = await start_worker(queued)
            try:
                shown = await wait_status(world, execution_id, "completed")
            finally:
                second.stop()
                await second_task
    assert [s["agentName"] for s in shown["steps"] if s["status"] == "completed"]
    events = await world_events(db, execution_id)
    check_log(events)
    assert "execution_resumed" in types_of(events)
    stored = await row(db, execution_id)
    assert stored.worker_losses == 0  # handed back, not lost


async def world_events(db: Database, execution_id: str) -> list[dict[str, Any]]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(
            select(events_table.c.payload)
            .where(events_table.c.execution_id == execution_id)
            .order_by(events_table.c.seq)
        )
        return [r.payload for r in rows]


async def test_a_command_queued_while_redis_is_down_is_kept_for_the_sweeper(
    db: Database, settings: Settings
) -> None:
    unreachable = settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0", "dispatcher": "taskiq"}
    )
    app = create_app(unreachable, database=db)
    assert isinstance(app.state.dispatcher, TaskiqDispatcher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        world = await make_world(app, c, db)
        execution_id = await world.post("while redis is down")  # 202, not 500
        assert (await row(db, execution_id)).status == "queued"
        health = (await c.get("/api/health")).json()
    assert health["broker"] == {"kind": "taskiq-redis", "status": "unreachable"}
    await app.state.dispatcher.close()
