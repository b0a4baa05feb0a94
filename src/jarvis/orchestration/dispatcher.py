"""Handing queued executions to an engine.

``InProcessDispatcher`` (the default) runs them as tasks of this process, at most
``execution.max_concurrency`` at a time. At start it picks up executions left ``queued``
(handed back by a previous shutdown, or approved while no engine ran). At close it
cancels what runs: the engine hands each execution back as ``queued``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog

from jarvis.config.service import ConfigService
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.service import queued_executions

log = structlog.get_logger(__name__)


class Dispatcher(Protocol):
    async def start(self) -> None:
        """Begin accepting work (and pick up what waits)."""

    async def submit(self, execution_id: str) -> None:
        """Run the execution soon; returns at once."""

    async def close(self) -> None:
        """Stop: running executions are handed back."""


class InProcessDispatcher:
    def __init__(self, engine: Engine, db: Database, config: ConfigService) -> None:
        self.engine = engine
        self.db = db
        self.config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate: asyncio.Semaphore | None = None
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        limit = await self.config.get("execution.max_concurrency", as_type=int)
        self._gate = asyncio.Semaphore(limit)
        await self.engine.start()
        self._started = True
        async with unit_of_work(self.db, write=False) as session:
            waiting = await queued_executions(session)
        for execution_id in waiting:
            await self.submit(execution_id)

    async def submit(self, execution_id: str) -> None:
        if not self._started:
            await self.start()
        task = asyncio.create_task(self._run(execution_id), name=f"execution:{execution_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, execution_id: str) -> None:
        assert self._gate is not None  # noqa: S101 - start() set it
        async with self._gate:
            try:
                await self.engine.run(execution_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution_run_failed", execution_id=execution_id)

    async def wait_idle(self) -> None:
        """Wait until every submitted execution has stopped running (tests, CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.engine.close()
        self._started = False
