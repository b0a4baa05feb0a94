"""One execution's run through the layers: the seed's ``executeWorkflow``.

The layers run in order; a layer's agents run concurrently (bounded by
``execution.max_parallel_agents``), each step under its own timeout and retry policy
from ConfigService. Every transition goes through the execution's ``Recorder`` (stored,
committed, then published). A run resumes where the stored state says: layers already
completed are not run again, nor are steps already settled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import Connection

from jarvis.agents.kinds.base import (
    AgentSpec,
    KindServices,
    StepContext,
    StepResult,
)
from jarvis.config.service import ConfigService
from jarvis.core.layers import LAYER_ORDER, Layer
from jarvis.core.scope import Scope
from jarvis.kit.clock import utcnow
from jarvis.orchestration.attempts import (
    StepError,
    attempt_once,
    prepare,
    preview,
    step_policy,
)
from jarvis.orchestration.events import (
    AwaitingApproval,
    AwaitingStep,
    LayerCompleted,
    LayerStarted,
    StepCancelled,
    StepCompleted,
    StepEvent,
    StepFailed,
    StepSkipped,
    StepStarted,
)
from jarvis.orchestration.lifecycle import STEP, STEP_COUNTED, STEP_UNFINISHED, StepStatus
from jarvis.orchestration.recorder import Emit, InsertRows, Recorder, RowChange
from jarvis.orchestration.selection import (
    Candidate,
    apply_plan,
    find_intent,
    make_plan,
)
from jarvis.orchestration.store import executions as execution_store
from jarvis.orchestration.store import steps as step_store

log = structlog.get_logger(__name__)


LayerOutcome = Literal["completed", "failed", "paused"]


# How often, at most, a layer's start reads whether a cancellation was requested through the
# database (a backstop for a lost cancel message; the message itself acts at once).
CANCEL_CHECK_SECONDS = 1.0


class LayerFailed(Exception):
    """A step failed in a ``fail_fast`` layer: its siblings are cancelled."""

    def __init__(self, outcome: StepOutcome) -> None:
        super().__init__(outcome.spec.name)
        self.outcome = outcome


@dataclass
class StepOutcome:
    spec: AgentSpec
    status: StepStatus  # completed | failed | awaiting_approval | cancelled
    output: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class ExecutionState:
    """What a run starts from: the execution row and the steps already recorded."""

    execution_id: str
    persona: str
    command: str
    workflow_id: int | None
    plan: dict[str, Any] | None
    layers_done: int
    started_at: datetime
    steps: list[dict[str, Any]] = field(default_factory=list)


class ExecutionRun:
    """Runs one execution from its stored state to completion, failure or a pause."""

    def __init__(
        self,
        state: ExecutionState,
        *,
        recorder: Recorder,
        config: ConfigService,
        services: KindServices,
        layers: dict[str, list[Candidate]],
        on_cancel_requested: Callable[[], object] = lambda: None,
    ) -> None:
        self.state = state
        self.on_cancel_requested = on_cancel_requested
        self.recorder = recorder
        self.config = config
        self.services = services
        self.layers = layers
        self.plan = state.plan
        self.scope = Scope(persona=state.persona, workflow_id=state.workflow_id)
        self.context: dict[str, Any] = {
            "executionId": state.execution_id,
            "command": state.command,
            "persona": state.persona,
            "workflowId": state.workflow_id,
            "plan": state.plan,
            "outputs": {},
            "layers": {layer.value: {} for layer in LAYER_ORDER},
        }
        self.cancel_requested = False
        self.settled = False
        # The claim read the cancellation flag; layer starts read it again now and then.
        self.cancel_checked = time.monotonic()
        self.cancel_check_seconds = CANCEL_CHECK_SECONDS
        self._failing_fast = False
        # Layers completed so far; stored at the plan, a pause, the end or a hand-back (the
        # layer_completed events are the record a resume counts).
        self.layers_done = state.layers_done
        # Agents whose step completed or failed: their metrics change at the end.
        self.settled_agents: set[int] = {
            s["agent_id"]
            for s in state.steps
            if s["agent_id"] is not None and s["status"] in STEP_COUNTED
        }
        self._existing = {s["agent_id"]: s for s in state.steps if s["agent_id"] is not None}
        # Each step's status as this run last recorded it: every change is checked
        # against the step lifecycle (the engine is the only writer of a running step).
        self._status: dict[int, StepStatus] = {
            a: StepStatus(s["status"]) for a, s in self._existing.items()
        }
        # When each step's agent began (every step update sets all columns).
        self._started_at: dict[int, datetime | None] = {}
        # Agent id -> step id; filled when the writer inserts a layer's steps.
        self.step_ids: dict[int, int] = {a: s["id"] for a, s in self._existing.items()}
        self._handles = {c.spec.id: c.spec.handle for cs in layers.values() for c in cs}
        for step in state.steps:
            if step["status"] == StepStatus.COMPLETED and step["output"] is not None:
                self._remember(step["layer"], step["agent_id"], step["agent_name"], step["output"])

    # --- context ---------------------------------------------------------------------------

    def _remember(self, layer: str, agent_id: int | None, name: str, output: Any) -> None:
        handle = self._handles.get(agent_id or -1) or name
        self.context["outputs"][handle] = output
        self.context["layers"][layer][handle] = output

    # --- the layers ------------------------------------------------------------------------

    async def execute(self) -> tuple[LayerOutcome, str | None]:
        """Run the remaining layers; the outcome and, when failed, why."""
        try:
            for index, layer in enumerate(LAYER_ORDER):
                if index < self.layers_done:
                    continue
                outcome, error = await self._run_layer(index, layer)
                if outcome != "completed":
                    return outcome, error
            return "completed", None
        finally:
            # The outcome is decided: a cancellation noticed from now on comes too late.
            self.settled = True

    async def _run_layer(self, index: int, layer: Layer) -> tuple[LayerOutcome, str | None]:
        candidates = apply_plan(self.plan, layer.value, self.layers[layer.value])
        existing = {
            c.spec.id: self._existing[c.spec.id] for c in candidates if c.spec.id in self._existing
        }
        fresh = [c for c in candidates if c.spec.id not in existing]
        # Steps a lost worker left running are run again; settled ones are kept.
        rerun = [
            c for c in candidates if existing.get(c.spec.id, {}).get("status") in STEP_UNFINISHED
        ]
        # What each agent starts from, taken now: the writer may store the steps only
        # after later agents have already added their outputs to the context.
        inputs = {c.spec.id: self._step_input(c.spec) for c in fresh if c.skip_reason is None}
        # Not awaited: the agents start at once; the writer stores the steps first, and
        # everything about them after, in order (step ids are resolved when written).
        self.recorder.record(
            self._start_layer(layer, fresh, inputs, started=bool(existing)), independent=True
        )
        if time.monotonic() - self.cancel_checked >= self.cancel_check_seconds:
            # A backstop for a lost cancel message: the agents just started stop at once.
            self.cancel_checked = time.monotonic()
            self.recorder.record(self._read_cancel, independent=True).add_done_callback(
                self._notice_cancel
            )
        runnable = [c for c in fresh if c.skip_reason is None] + rerun
        policy = await self._failure_policy(layer)
        outcomes = await self._run_agents(runnable, policy, existing)
        failed = [o for o in outcomes if o.status == StepStatus.FAILED]
        if failed and policy == "fail_fast":
            names = ", ".join(o.spec.name for o in failed)
            return "failed", f"{layer.value} layer failed: {names}: {failed[0].error}"
        for candidate in candidates:  # registry order, so the context is deterministic
            for outcome in outcomes:
                if outcome.spec.id == candidate.spec.id and outcome.status == StepStatus.COMPLETED:
                    self._remember(layer.value, outcome.spec.id, outcome.spec.name, outcome.output)
        waiting = [o for o in outcomes if o.status == StepStatus.AWAITING_APPROVAL] + [
            self._outcome_of(c.spec, existing[c.spec.id])
            for c in candidates
            if existing.get(c.spec.id, {}).get("status") == StepStatus.AWAITING_APPROVAL
        ]
        if waiting:

            def pause(connection: Connection) -> Emit:
                execution_store.pause(
                    connection, self.state.execution_id, layers_done=self.layers_done
                )
                steps = [
                    AwaitingStep(**self._fields(o.spec), output_preview=preview(o.output))
                    for o in waiting
                ]
                return Emit(None, [AwaitingApproval(layer=layer, steps=steps).body()])

            # Decided: from here an approval may start the next run while this one still
            # records the pause; neither a cancel nor a lease renewal concerns this run.
            self.settled = True
            await self.recorder.write(pause)
            return "paused", None
        plan = None
        if layer is Layer.META_BRAIN:
            meta = [
                (c.spec, self.context["outputs"][c.spec.handle])
                for c in candidates
                if c.spec.handle in self.context["layers"][layer.value]
            ]
            plan = make_plan(find_intent(meta), self.layers)
            self.plan = plan
            self.context["plan"] = plan
        ended: Literal["completed", "completed_with_failures"] = (
            "completed_with_failures" if failed else "completed"
        )
        completed = LayerCompleted(layer=layer, status=ended, failed=len(failed))
        if plan is not None:
            completed = LayerCompleted(layer=layer, status=ended, failed=len(failed), plan=plan)
        completed_event = completed.body()
        self.layers_done = index + 1
        if plan is None:
            self.recorder.record(None, completed_event, independent=True)
        else:
            self.recorder.record(
                lambda connection: execution_store.store_plan(
                    connection, self.state.execution_id, plan, layers_done=self.layers_done
                ),
                completed_event,
                independent=True,
            ).add_done_callback(self._notice_cancel)
        return "completed", None

    def _outcome_of(self, spec: AgentSpec, row: dict[str, Any]) -> StepOutcome:
        return StepOutcome(spec, row["status"], row.get("output"), row.get("error"))

    def _start_layer(
        self,
        layer: Layer,
        fresh: Sequence[Candidate],
        inputs: dict[int, dict[str, Any]],
        *,
        started: bool,
    ) -> InsertRows:
        """Insert the layer's new steps (pending, or skipped with the reason) and say so."""
        rows = [
            {
                "execution_id": self.state.execution_id,
                "agent_id": c.spec.id,
                "agent_name": c.spec.name,
                "agent_kind": c.spec.kind,
                "layer": layer.value,
                "position": position,
                "status": StepStatus.PENDING if c.skip_reason is None else StepStatus.SKIPPED,
                "attempt": 1,
                "input": inputs.get(c.spec.id),
                "error": c.skip_reason,
            }
            for position, c in enumerate(fresh)
        ]

        def describe(returned: Sequence[Any]) -> Emit:
            for step_id, agent_id in returned:
                self.step_ids[agent_id] = step_id
            events: list[dict[str, Any]] = []
            if not started:
                events.append(LayerStarted(layer=layer, agents=len(fresh)).body())
            for c in fresh:
                if c.skip_reason is not None:
                    events.append(StepSkipped(**self._fields(c.spec), reason=c.skip_reason).body())
            # step_started follows when each agent actually begins (it may wait for a slot).
            return Emit(None, events)

        for c in fresh:
            self._status[c.spec.id] = (
                StepStatus.PENDING if c.skip_reason is None else StepStatus.SKIPPED
            )
        return InsertRows(step_store.INSERT, rows, describe)

    def _read_cancel(self, connection: Connection) -> Any:
        return execution_store.cancel_requested_at(connection, self.state.execution_id)

    def _record_cancelled(self, spec: AgentSpec, *, attempt: int, started: float | None) -> None:
        why = (
            "cancelled by request"
            if self.cancel_requested
            else "cancelled: another agent of the layer failed"
        )
        self._record_step(
            spec,
            {
                "status": StepStatus.CANCELLED,
                "attempt": attempt,
                "error": why,
                "completed_at": utcnow(),
                "duration_ms": None if started is None else _ms_since(started),
            },
            StepCancelled,
            attempt=attempt,
        )

    def _fields(self, spec: AgentSpec) -> dict[str, Any]:
        """The members every event about the agent's step carries."""
        return {
            "step_id": self.step_ids[spec.id],
            "agent_id": spec.id,
            "agent_name": spec.name,
            "layer": spec.layer,
        }

    def _record_step(
        self, spec: AgentSpec, values: dict[str, Any], model: type[StepEvent], **fields: Any
    ) -> None:
        """Queue an update of the agent's step and the event (``model``) that describes it.

        Every update sets the same columns (the engine knows them all: it is the only
        writer of a running step), so updates that meet in a batch are one executemany.
        The move is checked against the step lifecycle before it is queued.
        """
        target = StepStatus(values.get("status", StepStatus.RUNNING))
        current = self._status.get(spec.id, StepStatus.PENDING)
        STEP.check(current, target, subject=f"the step of {spec.name}")
        self._status[spec.id] = target
        row = {**step_store.RUNNING_COLUMNS, "started_at": self._started_at.get(spec.id)}
        row.update(values)
        row["status"] = target.value

        def describe() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            event = model(**self._fields(spec), **fields)
            return {step_store.STEP_KEY: self.step_ids[spec.id], **row}, [event.body()]

        self.recorder.record(RowChange(step_store.UPDATE, describe, key=step_store.STEP_KEY))

    def _step_input(self, spec: AgentSpec) -> dict[str, Any]:
        plan = self.plan or {}
        return {
            "command": self.state.command,
            "persona": self.state.persona,
            "intent": plan.get("intent"),
            "availableOutputs": list(self.context["outputs"]),
            "config": spec.config,
        }

    async def _failure_policy(self, layer: Layer) -> str:
        policies = await self.config.get("execution.failure_policy", self.scope)
        policy = policies.get(layer.value, "fail_fast") if isinstance(policies, dict) else None
        return policy if policy in {"fail_fast", "continue"} else "fail_fast"

    async def _run_agents(
        self,
        runnable: Sequence[Candidate],
        policy: str,
        existing: dict[int, dict[str, Any]],
    ) -> list[StepOutcome]:
        if not runnable:
            return []
        limit = await self.config.get("execution.max_parallel_agents", self.scope, as_type=int)
        gate = asyncio.Semaphore(limit)
        outcomes: list[StepOutcome] = []

        async def one(candidate: Candidate) -> None:
            spec = candidate.spec
            entered = False
            try:
                async with gate:
                    entered = True
                    attempt = existing.get(spec.id, {}).get("attempt", 1)
                    outcomes.append(await self._run_step(spec, attempt, policy))
            except LayerFailed as failed:
                outcomes.append(failed.outcome)
                raise
            except asyncio.CancelledError:
                # Still waiting for a slot: settle the step here (a started one settles in
                # _run_step). On a shutdown it stays pending and runs on resume.
                if not entered and (self.cancel_requested or self._failing_fast):
                    self._record_cancelled(spec, attempt=1, started=None)
                raise

        if len(runnable) == 1:
            try:
                await one(runnable[0])
            except LayerFailed:
                pass
            return outcomes
        try:
            async with asyncio.TaskGroup() as group:
                for candidate in runnable:
                    group.create_task(one(candidate))
        except* LayerFailed:
            pass
        return outcomes

    # --- one step --------------------------------------------------------------------------

    async def _run_step(self, spec: AgentSpec, attempt: int, layer_policy: str) -> StepOutcome:
        started = time.perf_counter()
        self._started_at[spec.id] = utcnow()
        self._record_step(spec, {"attempt": attempt}, StepStarted, kind=spec.kind, attempt=attempt)
        try:
            kind, settings = prepare(spec)
            scope = Scope(
                persona=self.state.persona, agent_id=spec.id, workflow_id=self.state.workflow_id
            )
            policy = await step_policy(self.config, scope)
            while True:
                attempted = await attempt_once(
                    kind,
                    StepContext(
                        execution_id=self.state.execution_id,
                        agent=spec,
                        settings=settings,
                        context=self.context,
                        scope=scope,
                        services=self.services,
                        attempt=attempt,
                    ),
                    policy,
                )
                if isinstance(attempted, StepResult):
                    result = attempted
                    break
                if attempt > policy.max_retries:
                    raise StepError(attempted, attempt)
                delay = policy.backoff * 2 ** (attempt - 1)
                self._record_step(
                    spec,
                    {"attempt": attempt + 1, "error": attempted},
                    StepFailed,
                    attempt=attempt,
                    error=attempted,
                    will_retry=True,
                    retry_in_seconds=delay,
                )
                await asyncio.sleep(delay)
                attempt += 1
                self._record_step(
                    spec,
                    {"attempt": attempt, "error": attempted},
                    StepStarted,
                    kind=spec.kind,
                    attempt=attempt,
                )
        except asyncio.CancelledError:
            if self.cancel_requested or self._failing_fast:
                self._record_cancelled(spec, attempt=attempt, started=started)
            # Otherwise the engine is shutting down: the step stays 'running' and is run
            # again when the execution resumes.
            raise
        except StepError as failure:
            duration = _ms_since(started)
            self._record_step(
                spec,
                {
                    "status": StepStatus.FAILED,
                    "attempt": failure.attempt,
                    "error": failure.message,
                    "completed_at": utcnow(),
                    "duration_ms": duration,
                },
                StepFailed,
                attempt=failure.attempt,
                error=failure.message,
                will_retry=False,
                duration_ms=duration,
            )
            self.settled_agents.add(spec.id)
            outcome = StepOutcome(spec, StepStatus.FAILED, error=failure.message)
            if layer_policy == "fail_fast":
                self._failing_fast = True
                raise LayerFailed(outcome) from None
            return outcome
        output = result.output
        status = StepStatus.COMPLETED
        if settings.requires_approval:
            status = StepStatus.AWAITING_APPROVAL
        if status == StepStatus.COMPLETED:
            self.settled_agents.add(spec.id)
        duration = _ms_since(started)
        usage = result.usage.as_json() if result.usage else None
        self._record_step(
            spec,
            {
                "status": status,
                "attempt": attempt,
                "output": output,
                "error": None,
                "completed_at": utcnow(),
                "duration_ms": duration,
                "token_usage": usage,
            },
            StepCompleted,
            status=status.value,
            attempt=attempt,
            duration_ms=duration,
            output_preview=preview(output),
            token_usage=usage,
        )
        return StepOutcome(spec, status, output=output)

    # --- database changes ------------------------------------------------------------------

    def _notice_cancel(self, done: asyncio.Future[Any]) -> None:
        """A cancellation read from the database stops the run. A done-callback, so it runs
        in the event loop: the writes themselves run in a worker thread on SQLite, where
        cancelling a task is not safe."""
        if done.cancelled() or done.exception() is not None:
            return
        if done.result() is not None and not self.cancel_requested:
            self.on_cancel_requested()


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
