"""The execution lifecycle: one table, and a store that cannot leave it.

The pure part checks the table and the derived sets. The property test walks random
sequences of what engines and people do to an execution (claim, a step's progress, pause,
approve, reject, cancel, lose the lease, resume elsewhere, hand back, end) through the real
store on both databases, against a reference model that knows only the transition table:
after every operation the stored status is the model's, and an operation the table does
not allow raises ``IllegalTransition`` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from jarvis.core.lifecycle import IllegalTransition, Lifecycle
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.orchestration import service
from jarvis.orchestration.lifecycle import (
    ACTIVE,
    CANCELLABLE,
    EXECUTION,
    FINAL,
    STEP,
    STEP_OPEN,
    TERMINAL_EVENTS,
    ExecutionStatus,
    StepStatus,
)
from jarvis.orchestration.models import executions_table
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.orchestration.store import executions as execution_store
from jarvis.orchestration.store import leases as lease_store
from tests.factories import TEST_ACTOR, create_personas

X = ExecutionStatus

# --- the table ------------------------------------------------------------------------------


def test_the_tables_derive_the_sets() -> None:
    assert FINAL == {X.COMPLETED, X.FAILED, X.CANCELLED, X.REJECTED}
    assert ACTIVE == (X.QUEUED, X.RUNNING, X.AWAITING_APPROVAL)
    assert CANCELLABLE == set(ACTIVE)
    assert set(TERMINAL_EVENTS) == {f"execution_{s}" for s in FINAL}
    assert StepStatus.SKIPPED in STEP.final and StepStatus.SKIPPED in STEP.initial
    assert STEP_OPEN == {StepStatus.PENDING, StepStatus.RUNNING, StepStatus.AWAITING_APPROVAL}
    assert EXECUTION.initial == {X.QUEUED}


@given(st.sampled_from(list(X)), st.sampled_from(list(X)))
def test_check_raises_exactly_for_moves_the_table_lacks(source: X, target: X) -> None:
    allowed = target in EXECUTION.moves[source]
    assert EXECUTION.can(source, target) is allowed
    assert (source in EXECUTION.sources(target)) is allowed
    if allowed:
        EXECUTION.check(source, target)
    else:
        with pytest.raises(IllegalTransition) as refused:
            EXECUTION.check(source, target, subject="execution e1")
        assert refused.value.status == 409
        assert f"execution e1 cannot go from {source} to {target}" in refused.value.detail


def test_a_table_must_name_every_state() -> None:
    with pytest.raises(ValueError, match="every state needs a row"):
        Lifecycle("broken", {X.QUEUED: {X.RUNNING}}, initial={X.QUEUED})
    assert "not a state" in _refusal(EXECUTION, "unheard_of", X.RUNNING)


def _refusal(lifecycle: Lifecycle[X], source: str, target: X) -> str:
    with pytest.raises(IllegalTransition) as refused:
        lifecycle.check(source, target)
    return refused.value.detail


# --- the store against the table -----------------------------------------------------------

OPERATIONS = (
    "claim",
    "step",
    "pause",
    "approve",
    "reject",
    "cancel",
    "lose_lease",
    "resume",
    "hand_back",
    "complete",
    "fail",
    "end_cancelled",
)
OWNER, OTHER = "engine-a", "engine-b"


@dataclass
class Model:
    """What the lifecycle table says the execution is, and who holds its lease."""

    status: X = X.QUEUED
    owner: str | None = None
    lease_expired: bool = False

    def expect(self, op: str) -> X | None | str:
        """The status ``op`` leads to; None when it changes nothing without an error (a
        claim someone else's live lease refuses, a hand-back by an engine that lost the
        lease); "illegal" when the table forbids it."""
        if op in ("claim", "resume"):
            if self.status is X.QUEUED or (self.status is X.RUNNING and self.lease_expired):
                return X.RUNNING
            return None
        if op in ("step", "lose_lease"):
            return None if self.status is X.RUNNING else "skip"
        targets = {
            "pause": X.AWAITING_APPROVAL,
            "approve": X.QUEUED,
            "reject": X.REJECTED,
            "complete": X.COMPLETED,
            "fail": X.FAILED,
            "end_cancelled": X.CANCELLED,
        }
        if op == "cancel":
            if self.status is X.RUNNING:
                return None  # a request to the engine; the status stays running
            target = X.CANCELLED
        elif op == "hand_back":
            if self.status is X.RUNNING and self.owner != OWNER:
                return None
            target = X.QUEUED
        else:
            target = targets[op]
        if op == "hand_back" and self.status is not X.RUNNING:
            return None  # nothing this engine holds: release() says False
        return target if EXECUTION.can(self.status, target) else "illegal"


async def _status(db: Database, execution_id: str) -> str:
    async with unit_of_work(db, write=False) as session:
        found = await execution_store.status(session, execution_id)
    assert found is not None
    return found


async def _apply(db: Database, execution_id: str, op: str, model: Model) -> None:
    now = utcnow()
    if op in ("claim", "resume"):
        owner = OWNER if op == "claim" else OTHER
        row = await db.run_write(
            lambda c: lease_store.claim(c, execution_id, owner=owner, now=now, lease_seconds=30)
        )
        if row is not None:
            model.owner, model.lease_expired = owner, False
        return
    if op == "lose_lease":
        async with unit_of_work(db) as session:
            await session.execute(
                update(executions_table)
                .where(executions_table.c.execution_id == execution_id)
                .values(lease_expires_at=now - timedelta(seconds=1))
            )
        model.lease_expired = True
        return
    if op == "step":
        await db.run_write(lambda c: execution_store.set_progress(c, execution_id, layers_done=1))
        return
    if op == "pause":
        await db.run_write(lambda c: execution_store.pause(c, execution_id, layers_done=1))
    elif op in ("complete", "fail", "end_cancelled"):
        target = {"complete": X.COMPLETED, "fail": X.FAILED, "end_cancelled": X.CANCELLED}[op]
        await db.run_write(
            lambda c: execution_store.finish(
                c,
                execution_id,
                target,
                result=None,
                error=None,
                error_code=None,
                completed_at=now,
                duration_ms=1,
                layers_done=1,
            )
        )
    elif op == "hand_back":
        await db.run_write(
            lambda c: lease_store.release(c, execution_id, owner=OWNER, layers_done=1)
        )
    else:
        async with unit_of_work(db) as session:
            execution = await execution_store.get(session, execution_id, for_update=True)
            assert execution is not None
            if op == "approve":
                execution_store.check_move(execution, X.QUEUED)
            elif op == "cancel" and execution.status == X.RUNNING:
                execution_store.request_cancel(execution, now=now)
            else:
                target = X.REJECTED if op == "reject" else X.CANCELLED
                execution_store.end_by_person(
                    execution, target, now=now, error="by a person", error_code=target.value
                )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=12))
async def test_the_store_follows_the_transition_table(db: Database, ops: list[str]) -> None:
    await create_personas(db)
    execution = await service.queue_execution(
        db,
        ExecutionCreate(command="walk", persona="admin"),
        actor=TEST_ACTOR,
        principal=None,
        bus=None,
    )
    execution_id = execution.execution_id
    model = Model()
    for op in ops:
        expected = model.expect(op)
        if expected == "skip":
            continue
        before = await _status(db, execution_id)
        if expected == "illegal":
            with pytest.raises(IllegalTransition):
                await _apply(db, execution_id, op, model)
            assert await _status(db, execution_id) == before, op
            continue
        await _apply(db, execution_id, op, model)
        if isinstance(expected, X):
            model.status = expected
            if expected is not X.RUNNING:
                model.owner, model.lease_expired = None, False
        assert await _status(db, execution_id) == model.status, (op, ops)


async def test_an_ended_execution_cannot_be_claimed_or_ended_again(db: Database) -> None:
    await create_personas(db)
    execution = await service.queue_execution(
        db,
        ExecutionCreate(command="end", persona="admin"),
        actor=TEST_ACTOR,
        principal=None,
        bus=None,
    )
    execution_id = execution.execution_id
    now = utcnow()
    claimed = await db.run_write(
        lambda c: lease_store.claim(c, execution_id, owner=OWNER, now=now, lease_seconds=30)
    )
    assert claimed is not None

    def finish(target: X) -> object:
        return lambda c: execution_store.finish(
            c,
            execution_id,
            target,
            result=None,
            error=None,
            error_code=None,
            completed_at=now,
            duration_ms=1,
            layers_done=6,
        )

    await db.run_write(finish(X.COMPLETED))  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition, match="from completed to failed"):
        await db.run_write(finish(X.FAILED))  # type: ignore[arg-type]
    again = await db.run_write(
        lambda c: lease_store.claim(c, execution_id, owner=OTHER, now=now, lease_seconds=30)
    )
    assert again is None
    async with unit_of_work(db, write=False) as session:
        status = await session.scalar(
            select(executions_table.c.status).where(executions_table.c.execution_id == execution_id)
        )
    assert status == "completed"
