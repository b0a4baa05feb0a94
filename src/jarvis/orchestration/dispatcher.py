"""Handing queued executions to an engine.

Two dispatchers behind one interface (docs/deployment.md):

- ``InProcessDispatcher`` (the default) runs executions as tasks of this process, at most
  ``execution.max_concurrency`` at a time. The API and the engine share the process.
- ``TaskiqDispatcher`` (``JARVIS_REDIS_URL`` set) queues each execution id on a Taskiq
  Redis stream; ``jarvis worker`` processes (worker.py) run them with an in-process
  dispatcher of their own. Delivery is at least once: a repeated or late message finds the
  execution claimed or finished and does nothing (engine.py).

Whatever runs executions also sweeps (``Sweeper``): executions running under an expired
lease (their engine died) or queued for long without being claimed (their message was
lost) are dispatched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

import structlog

from jarvis.config.service import ConfigService
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.service import queued_executions
from jarvis.orchestration.store import leases as lease_store

log = structlog.get_logger(__name__)

TASK_NAME = "jarvis.run_execution"
# A queued execution nobody claimed for this many leases is dispatched again.
STALE_QUEUED_LEASES = 10

# Its own generator: drawing from the module-level one would disturb code (and tests)
# that seed it.
_JITTER = random.Random()  # noqa: S311 - jitter, not a secret


class Dispatcher(Protocol):
    kind: str

    async def start(self) -> None:
        """Begin accepting work (and pick up what waits)."""

    async def submit(self, execution_id: str) -> None:
        """Run the execution soon; returns at once."""

    async def ping(self) -> bool:
        """True when submitted work can reach an engine now."""

    async def close(self) -> None:
        """Stop: running executions are handed back."""


class Sweeper:
    """Every half lease (with jitter, so engines do not sweep in step), dispatch the
    executions nobody runs."""

    def __init__(
        self, db: Database, lease_seconds: float, submit: Callable[[str], Awaitable[None]]
    ) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.submit = submit
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 2 * _JITTER.uniform(0.8, 1.2))
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next sweep tries again
                log.warning("sweep_failed", error=str(exc))

    async def sweep(self) -> list[str]:
        """Dispatch every orphaned execution once; their ids."""
        now = utcnow()
        stale = now - timedelta(seconds=self.lease_seconds * STALE_QUEUED_LEASES)
        async with unit_of_work(self.db, write=False) as session:
            found = await lease_store.orphans(session, now=now, queued_before=stale)
        for execution_id in found:
            log.info("execution_swept", execution_id=execution_id)
            await self.submit(execution_id)
        return found


class InProcessDispatcher:
    kind = "in-process"

    def __init__(self, engine: Engine, db: Database, config: ConfigService) -> None:
        self.engine = engine
        self.db = db
        self.config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate: asyncio.Semaphore | None = None
        self._started = False
        self.sweeper = Sweeper(db, engine.lease_seconds, self._resubmit)

    async def start(self) -> None:
        if self._started:
            return
        limit = await self.config.get("execution.max_concurrency", as_type=int)
        self._gate = asyncio.Semaphore(limit)
        self.engine.concurrency = limit
        await self.engine.start()
        self._started = True
        async with unit_of_work(self.db, write=False) as session:
            waiting = await queued_executions(session)
        for execution_id in waiting:
            await self.submit(execution_id)
        self.sweeper.start()

    async def submit(self, execution_id: str) -> None:
        if not self._started:
            await self.start()
        task = asyncio.create_task(self._run(execution_id), name=f"execution:{execution_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resubmit(self, execution_id: str) -> None:
        if not any(task.get_name() == f"execution:{execution_id}" for task in self._tasks):
            await self.submit(execution_id)

    async def _run(self, execution_id: str) -> None:
        assert self._gate is not None  # noqa: S101 - start() set it
        async with self._gate:
            try:
                await self.engine.run(execution_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution_run_failed", execution_id=execution_id)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def ping(self) -> bool:
        return self._started

    async def wait_idle(self) -> None:
        """Wait until every submitted execution has stopped running (tests, CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.engine.flush_metrics()

    async def drain(self, grace: float) -> None:
        """Stop sweeping and let running executions finish for up to ``grace`` seconds."""
        await self.sweeper.close()
        if self._tasks and grace > 0:
            await asyncio.wait(list(self._tasks), timeout=grace)

    async def close(self) -> None:
        await self.sweeper.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.engine.close()
        self._started = False


def create_broker(redis_url: str, queue: str, *, lease_seconds: float) -> Any:
    """The Taskiq Redis stream broker executions are queued on (consumer group ``jarvis``;
    a message a worker took but never acknowledged is redelivered after two leases)."""
    from taskiq_redis import RedisStreamBroker

    return RedisStreamBroker(
        redis_url,
        queue_name=queue,
        consumer_group_name="jarvis",
        consumer_id="0",  # a new group also sees messages queued before it existed
        idle_timeout=int(lease_seconds * 2 * 1000),
        unacknowledged_lock_timeout=lease_seconds,
        xread_block=1000,
        # One message per read: a worker takes work only when it has a free slot, so
        # queued executions spread over the workers instead of piling up on one.
        xread_count=1,
    )


class TaskiqDispatcher:
    """Queue executions for ``jarvis worker`` processes (see the module docstring)."""

    kind = "taskiq-redis"

    def __init__(self, redis_url: str, queue: str, *, lease_seconds: float) -> None:
        self.broker = create_broker(redis_url, queue, lease_seconds=lease_seconds)

        async def not_here(execution_id: str) -> None:
            """The task's body runs in ``jarvis worker`` (worker.py registers the real one)."""
            raise RuntimeError(f"execution {execution_id} reached a process that only queues")

        self.task = self.broker.register_task(not_here, task_name=TASK_NAME)
        self.queue = queue
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self.broker.startup()
            self._started = True

    async def submit(self, execution_id: str) -> None:
        """Queue the execution; if Redis cannot take it now, it stays ``queued`` in the
        database and a worker's sweeper queues it again later (the caller's answer does
        not change: the execution is stored)."""
        try:
            if not self._started:
                await self.start()
            await self.task.kiq(execution_id)
        except Exception as exc:
            log.warning("execution_not_queued", execution_id=execution_id, error=str(exc))

    async def ping(self) -> bool:
        from redis.asyncio import Redis

        async with Redis(connection_pool=self.broker.connection_pool) as client:
            return bool(await client.ping())

    async def close(self) -> None:
        if self._started:
            await self.broker.shutdown()
            self._started = False
