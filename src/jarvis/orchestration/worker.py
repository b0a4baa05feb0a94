"""``jarvis worker``: run executions queued on the Taskiq Redis stream.

A worker is an engine (engine.py) fed by a Taskiq ``Receiver``: at most ``concurrency``
executions at a time, each message acknowledged once its execution has stopped running
here. It registers in ``workers`` and renews its leases; its sweeper re-queues executions
whose engine died. On SIGTERM or SIGINT it stops taking messages, lets what it runs finish
for up to ``grace`` seconds, then hands the rest back (``queued``, and queued again on the
stream) so another worker resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

import structlog
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from jarvis.config.service import ConfigService
from jarvis.kit.bus import create_bus
from jarvis.llm.providers import Providers
from jarvis.orchestration.dispatcher import TASK_NAME, Sweeper, create_broker
from jarvis.orchestration.engine import Engine
from jarvis.settings import Settings

log = structlog.get_logger(__name__)


class Worker:
    def __init__(self, settings: Settings, *, concurrency: int, grace: float) -> None:
        if not settings.redis_url:
            raise ValueError("jarvis worker needs JARVIS_REDIS_URL (the queue lives in Redis)")
        self.settings = settings
        self.concurrency = concurrency
        self.grace = grace
        self.db = settings.database()
        self.bus = create_bus(settings.redis_url)
        self.config = ConfigService(
            self.db,
            bus=self.bus,
            cache_size=settings.config_cache_size,
            poll_seconds=settings.config_poll_seconds,
        )
        self.engine = Engine(
            self.db,
            self.config,
            self.bus,
            providers=Providers.from_settings(settings),
            lease_seconds=settings.execution_lease_seconds,
            max_worker_losses=settings.execution_max_worker_losses,
            kind="taskiq",
            concurrency=concurrency,
        )
        self.broker = create_broker(
            settings.redis_url,
            settings.taskiq_queue,
            lease_seconds=settings.execution_lease_seconds,
        )

        async def run_execution(execution_id: str) -> None:
            await self._run_execution(execution_id)

        # A plain function: Taskiq renames what it registers, which a bound method refuses.
        self.task = self.broker.register_task(run_execution, task_name=TASK_NAME)
        self.sweeper = Sweeper(self.db, settings.execution_lease_seconds, self.requeue)
        self.stopping = asyncio.Event()

    async def _run_execution(self, execution_id: str) -> None:
        try:
            status = await self.engine.run(execution_id)
            log.info("execution_ran", execution_id=execution_id, status=status)
        except asyncio.CancelledError:
            # Handed back by the engine (shutdown): put it on the stream for another worker.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.requeue(execution_id))
            raise

    async def requeue(self, execution_id: str) -> None:
        await self.task.kiq(execution_id)

    async def run(self, on_ready: Callable[[Worker], None] | None = None) -> None:
        """Work until ``stop()``; then drain (see the module docstring)."""
        await self.config.start()
        await self.engine.start()
        self.broker.is_worker_process = True
        await self.broker.startup()
        finish = asyncio.Event()
        listening = asyncio.create_task(self._listen(finish))
        self.sweeper.start()
        log.info(
            "worker_ready",
            worker=self.engine.owner,
            queue=self.settings.taskiq_queue,
            concurrency=self.concurrency,
        )
        if on_ready is not None:
            on_ready(self)
        try:
            stop = asyncio.create_task(self.stopping.wait())
            await asyncio.wait([stop, listening], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
        finally:
            finish.set()
            await self.sweeper.close()
            await self._drain()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listening, timeout=max(self.grace, 1) + 10)
            await self.broker.shutdown()
            await self.engine.close()
            await self.config.close()
            await self.bus.close()
            await self.db.dispose()
            log.info("worker_stopped", worker=self.engine.owner)

    async def _listen(self, finish: asyncio.Event) -> None:
        """Take messages until ``finish``; when Redis goes away, listen again once it is
        back (with backoff) instead of exiting. Executions already running carry on."""
        delay = 0.5
        while not finish.is_set():
            receiver = Receiver(
                self.broker,
                max_async_tasks=self.concurrency,
                max_prefetch=0,
                ack_type=AcknowledgeType.WHEN_EXECUTED,
                propagate_exceptions=False,
                run_startup=False,
            )
            began = time.monotonic()
            try:
                await receiver.listen(finish)
                problem = "the queue listener stopped"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                problem = str(exc) or type(exc).__name__
            if finish.is_set():
                return
            if time.monotonic() - began > 60:
                delay = 0.5  # it had been listening fine: a new outage starts quick retries
            log.warning("worker_queue_unreachable", error=problem, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finish.wait(), delay)
            delay = min(delay * 2, 30.0)

    async def _drain(self) -> None:
        running = self.engine.running_tasks()
        if running and self.grace > 0:
            log.info("worker_draining", running=len(running), grace=self.grace)
            await asyncio.wait(running, timeout=self.grace)
        for task in self.engine.running_tasks():
            task.cancel()  # the engine hands each back as queued
        left = self.engine.running_tasks()
        if left:
            await asyncio.wait(left, timeout=10)

    def stop(self) -> None:
        self.stopping.set()


async def serve_worker(settings: Settings, *, concurrency: int, grace: float) -> None:
    """Run a worker until SIGTERM or SIGINT."""
    worker = Worker(settings, concurrency=concurrency, grace=grace)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run(
        on_ready=lambda w: print(  # noqa: T201 - the operator's (and tests') ready line
            f"worker {w.engine.owner} ready: queue {settings.taskiq_queue}, "
            f"concurrency {concurrency}",
            flush=True,
        )
    )
