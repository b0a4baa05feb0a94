"""The engine: claims a queued execution, runs it through the layers, records the end.

``Engine.run`` is what the dispatcher (in-process today; workers later) calls with an
execution id. It claims the execution atomically (only a ``queued`` one can be claimed,
so two engines never run the same execution), resumes from the stored state, and always
ends the execution in a final state or hands it back as ``queued`` when the process is
shutting down: nothing is left ``running`` by a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection

from jarvis.agents.kinds.base import KindServices
from jarvis.agents.listing import mark_registry_changed
from jarvis.analytics.service import add_activity
from jarvis.config.service import ConfigService
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import GAP, EventBus
from jarvis.kit.clock import utcnow
from jarvis.llm.base import LLMProvider
from jarvis.llm.providers import Providers
from jarvis.orchestration.adapters import ExecutionsSeen
from jarvis.orchestration.claims import Claimed, Lost, claim, ms_between, short
from jarvis.orchestration.events import (
    CONTROL_CHANNEL,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
)
from jarvis.orchestration.lifecycle import STEP_OPEN, ExecutionStatus, StepStatus
from jarvis.orchestration.metrics import sla_thresholds, update_metrics
from jarvis.orchestration.recorder import Recorder, publish_events
from jarvis.orchestration.run import CANCEL_CHECK_SECONDS, ExecutionRun
from jarvis.orchestration.selection import candidates_by_layer
from jarvis.orchestration.store import executions as execution_store
from jarvis.orchestration.store import leases as lease_store
from jarvis.orchestration.store import steps as step_store

log = structlog.get_logger(__name__)

X = ExecutionStatus
# How the engine ends a run, and the activity and event that say so.
ENDINGS = {
    X.COMPLETED: ("execution.completed", ExecutionCompleted),
    X.FAILED: ("execution.failed", ExecutionFailed),
    X.CANCELLED: ("execution.cancelled", ExecutionCancelled),
}


def new_owner_id() -> str:
    """A name for an engine, unique across hosts and restarts (its leases' owner)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    """Runs executions in this process; see the module docstring."""

    def __init__(
        self,
        db: Database,
        config: ConfigService,
        bus: EventBus,
        *,
        providers: Providers | None = None,
        lease_seconds: float = 30.0,
        max_worker_losses: int = 3,
        kind: str = "in-process",
        concurrency: int = 1,
    ) -> None:
        self.db = db
        self.config = config
        self.bus = bus
        self.providers = providers or Providers(api_key=None)
        # This engine's name in the leases it holds and in the workers table.
        self.owner = new_owner_id()
        self.lease_seconds = lease_seconds
        self.max_worker_losses = max_worker_losses
        self.kind = kind
        self.concurrency = concurrency
        self._heartbeat: asyncio.Task[None] | None = None
        self._abandoned: set[str] = set()
        self._stale_agents: set[int] = set()
        self._metrics: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._runs: dict[str, ExecutionRun] = {}
        self._cancel_requested: set[str] = set()
        self._listener: asyncio.Task[None] | None = None
        self.cancel_check_seconds = CANCEL_CHECK_SECONDS

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Register in ``workers``, listen for cancellations from anywhere and start renewing
        the leases of what this engine runs."""
        if self._listener is not None:
            return
        await self.db.run_write(
            lambda connection: lease_store.register_worker(
                connection,
                self.owner,
                kind=self.kind,
                concurrency=self.concurrency,
                now=utcnow(),
            )
        )
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready))
        self._heartbeat = asyncio.create_task(self._beat())
        await ready.wait()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush_metrics(), timeout=10)
        for task in (self._listener, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._listener is not None:
            self._listener = None
            self._heartbeat = None
            try:
                await self.db.run_write(
                    lambda connection: lease_store.stop_worker(connection, self.owner, now=utcnow())
                )
            except Exception as exc:  # the heartbeat goes stale anyway
                log.warning("worker_stop_not_recorded", error=str(exc))
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.providers.close()

    @property
    def http(self) -> httpx.AsyncClient:
        # Redirects are not followed: an allowed host must not forward an agent elsewhere.
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._http

    async def _listen(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with self.bus.subscribe(CONTROL_CHANNEL) as subscription:
                    ready.set()
                    async for message in subscription:
                        if message is GAP or not isinstance(message, dict):
                            continue
                        if message.get("type") == "cancel":
                            self.cancel(str(message.get("executionId")))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database check at each layer is the backstop
                log.warning("execution_control_listener_failed", error=str(exc))
                ready.set()
                await asyncio.sleep(1)

    # --- control ---------------------------------------------------------------------------

    def cancel(self, execution_id: str) -> bool:
        """Cancel the execution if this engine runs it; True when it did."""
        task = self._running.get(execution_id)
        if task is None or task.done():
            return False
        run = self._runs.get(execution_id)
        if run is not None and run.settled:
            return False  # it is recording its end; cancelling now would lose that
        self._cancel_requested.add(execution_id)
        if run is not None:
            run.cancel_requested = True
        task.cancel()
        return True

    # --- running ---------------------------------------------------------------------------

    async def run(self, execution_id: str) -> str:
        """Run (or resume) a queued execution; return the status it is left in."""
        current = self._running.get(execution_id)
        earlier = self._runs.get(execution_id)
        if current is not None and not current.done() and earlier and not earlier.settled:
            # A repeated message (or a sweep after a stall): this engine already runs it.
            # A run that is only recording its pause does not count: it was approved.
            return X.RUNNING
        claimed = await self._claim(execution_id)
        if claimed is None:
            return await self._status(execution_id)
        if isinstance(claimed, Lost):
            return X.FAILED
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - run() is always awaited inside a task
        self._running[execution_id] = task
        recorder = Recorder(self.db, self.bus, execution_id, claimed.seq)
        run = ExecutionRun(
            claimed.state,
            recorder=recorder,
            config=self.config,
            services=self._services(),
            layers=candidates_by_layer(claimed.rows),
            on_cancel_requested=lambda: self.cancel(execution_id),
        )
        run.cancel_check_seconds = self.cancel_check_seconds
        self._runs[execution_id] = run
        if not claimed.stored_opening:
            # With the first layer's steps: a first claim's own commit carries no event.
            recorder.record(None, claimed.opening)
        try:
            try:
                if claimed.cancel_requested:  # asked to stop before it began
                    run.cancel_requested = True
                    raise asyncio.CancelledError
                outcome, error = await run.execute()
            except asyncio.CancelledError:
                if execution_id in self._abandoned:
                    # Another engine holds it now (or will once the lease expires).
                    log.warning("execution_lease_lost", execution_id=execution_id)
                    return "abandoned"
                if execution_id in self._cancel_requested or run.cancel_requested:
                    await self._finish(run, claimed, X.CANCELLED, "cancelled by request")
                    return X.CANCELLED
                await self._hand_back(run, execution_id)
                raise
            except Exception as exc:
                log.exception("execution_crashed", execution_id=execution_id)
                await self._finish(run, claimed, X.FAILED, f"internal error: {exc}")
                return X.FAILED
            if outcome == "paused":
                await recorder.write(self._paused_activity(run, claimed))
                return X.AWAITING_APPROVAL
            if outcome == "failed":
                await self._finish(run, claimed, X.FAILED, error)
                return X.FAILED
            await self._finish(run, claimed, X.COMPLETED, None)
            return X.COMPLETED
        finally:
            # Only our own registration: an approval may already have started the next run
            # of this execution while this one was recording its pause.
            if self._running.get(execution_id) is task:
                self._running.pop(execution_id, None)
                self._runs.pop(execution_id, None)
                self._cancel_requested.discard(execution_id)
                self._abandoned.discard(execution_id)

    def _services(self) -> KindServices:
        return KindServices(
            db=self.db,
            config=self.config,
            llm=self._provider,
            http=self.http,
            executions=ExecutionsSeen(self.db),
        )

    async def _provider(self, scope: Scope) -> tuple[LLMProvider, str]:
        return await self.providers.for_scope(self.config, scope)

    async def _status(self, execution_id: str) -> str:
        async with unit_of_work(self.db, write=False) as session:
            status = await execution_store.status(session, execution_id)
        return status or "missing"

    async def _claim(self, execution_id: str) -> Claimed | Lost | None:
        """Take a queued execution (or one whose engine was lost), atomically, and load what
        the run starts from."""
        claimed = await self.db.run_write(
            lambda connection: claim(
                connection,
                execution_id,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
                max_losses=self.max_worker_losses,
            )
        )
        if isinstance(claimed, Claimed) and claimed.stored_opening:
            await publish_events(self.bus, claimed.stored_opening)
        if isinstance(claimed, Lost):
            await publish_events(self.bus, claimed.events)
        return claimed

    # --- leases ----------------------------------------------------------------------------

    async def _beat(self) -> None:
        """Renew the leases of what this engine runs, and its worker heartbeat; act on
        cancellations stored meanwhile (a backstop for a lost message) and on leases
        another engine has taken over."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next beat tries again; the lease has slack
                log.warning("lease_renewal_failed", error=str(exc))

    async def renew(self) -> None:
        # Runs still deciding their outcome; one recording its end or pause has let go.
        running = [
            i
            for i, task in self._running.items()
            if not task.done() and not (i in self._runs and self._runs[i].settled)
        ]
        now = utcnow()

        def apply(connection: Connection) -> dict[str, Any]:
            held = lease_store.renew(
                connection,
                running,
                owner=self.owner,
                now=now,
                lease_seconds=self.lease_seconds,
            )
            lease_store.beat_worker(connection, self.owner, running=len(running), now=now)
            return held

        held = await self.db.run_write(apply)
        for execution_id in running:
            if execution_id not in held:
                self.abandon(execution_id)
            elif held[execution_id] is not None:
                self.cancel(execution_id)

    def running_tasks(self) -> list[asyncio.Task[Any]]:
        """The tasks running executions here now."""
        return [task for task in self._running.values() if not task.done()]

    def abandon(self, execution_id: str) -> None:
        """Stop running an execution this engine no longer holds, writing nothing more."""
        task = self._running.get(execution_id)
        if task is not None and not task.done():
            self._abandoned.add(execution_id)
            task.cancel()

    async def _hand_back(self, run: ExecutionRun, execution_id: str) -> None:
        """Shutting down: leave the execution ``queued`` so the next start resumes it."""

        def requeue(connection: Connection) -> None:
            lease_store.release(
                connection, execution_id, owner=self.owner, layers_done=run.layers_done
            )

        try:
            await run.recorder.write(requeue)
        except Exception as exc:
            log.error("execution_not_handed_back", execution_id=execution_id, error=str(exc))

    def _paused_activity(self, run: ExecutionRun, claimed: Claimed) -> Callable[[Connection], None]:
        def apply(connection: Connection) -> None:
            add_activity(
                connection,
                type="execution.awaiting_approval",
                title=f"Awaiting approval: {short(claimed.state.command)}",
                persona=claimed.state.persona,
                user_id=claimed.created_by_id,
                execution_id=claimed.state.execution_id,
            )

        return apply

    async def _finish(
        self, run: ExecutionRun, claimed: Claimed, status: ExecutionStatus, error: str | None
    ) -> None:
        state = claimed.state
        result = _result(run) if status is X.COMPLETED else None
        activity, ending = ENDINGS[status]

        def apply(connection: Connection) -> None:
            now = utcnow()
            if status is X.CANCELLED:
                # Steps that had not started their own bookkeeping are cancelled with it.
                step_store.end_open(
                    connection,
                    state.execution_id,
                    STEP_OPEN,
                    StepStatus.CANCELLED,
                    error="cancelled by request",
                    now=now,
                )
            execution_store.finish(
                connection,
                state.execution_id,
                status,
                result=result,
                error=error,
                error_code=None if status is X.COMPLETED else _error_code(status, error),
                completed_at=now,
                duration_ms=ms_between(state.started_at, now),
                layers_done=run.layers_done,
            )
            add_activity(
                connection,
                type=activity,
                title=f"{status.capitalize()}: {short(state.command)}",
                persona=state.persona,
                user_id=claimed.created_by_id,
                execution_id=state.execution_id,
                detail={"error": error} if error else None,
            )

        closing = ending(
            status=status.value,
            error=error,
            duration_ms=ms_between(state.started_at, utcnow()),
            response=(result or {}).get("response"),
        )
        try:
            await run.recorder.write(apply, closing.body())
        except Exception:
            log.exception("execution_end_not_recorded", execution_id=state.execution_id)
            raise
        self.refresh_metrics(run.settled_agents)

    # --- agent metrics ---------------------------------------------------------------------

    def refresh_metrics(self, agents: set[int]) -> None:
        """Recompute these agents' figures soon, off the execution's path: one write for
        every execution that ended meanwhile (``flush_metrics`` waits for it)."""
        if not agents:
            return
        self._stale_agents |= agents
        if self._metrics is None or self._metrics.done():
            self._metrics = asyncio.create_task(self._write_metrics())

    async def _write_metrics(self) -> None:
        while self._stale_agents:
            agents, self._stale_agents = self._stale_agents, set()
            try:
                thresholds = await sla_thresholds(self.config, agents)
                await self.db.run_write(partial(update_metrics, thresholds=thresholds))
            except Exception as exc:  # the next execution of these agents recomputes them
                log.warning("agent_metrics_not_updated", agents=sorted(agents), error=str(exc))
                continue
            mark_registry_changed()  # the agents' figures changed: cached lists are stale

    async def flush_metrics(self) -> None:
        """Wait until the figures of every execution ended so far are stored."""
        while self._metrics is not None and not self._metrics.done():
            await asyncio.shield(self._metrics)


def _result(run: ExecutionRun) -> dict[str, Any]:
    """The execution's answer: the Interface layer's text, and every agent's output."""
    texts = [text for text in map(_text_of, run.context["layers"]["Interface"].values()) if text]
    if not texts:  # no Interface text: the last text any layer produced
        texts = [text for text in map(_text_of, run.context["outputs"].values()) if text][-1:]
    plan = run.plan or {}
    return {
        "response": "\n\n".join(texts) if texts else None,
        "intent": plan.get("intent"),
        "outputs": run.context["outputs"],
    }


def _text_of(output: Any) -> str | None:
    """An output's ``text`` when it says something (a template may render nothing)."""
    text = output.get("text") if isinstance(output, dict) else None
    return text.strip() if isinstance(text, str) and text.strip() else None


def _error_code(status: ExecutionStatus, error: str | None) -> str:
    if status is X.CANCELLED:
        return "cancelled"
    if error and error.startswith("internal error"):
        return "internal_error"
    return "step_failed"
