"""Statements on ``agent_execution_steps``: one row per agent of an execution.

The engine is the only writer of a running step; it inserts a layer's steps in one
statement (``INSERT``, ids returned in the rows' order) and updates each through
``UPDATE`` with every column set, so updates that meet in one batch of the Recorder go
out as one executemany. People's decisions (approve, reject, cancel) change steps that
wait, inside the request's transaction, with the execution's row locked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.core.layers import LAYER_ORDER
from jarvis.orchestration.lifecycle import STEP, StepStatus
from jarvis.orchestration.models import ExecutionStep, steps_table

T = steps_table
# A layer's new steps, all layers' of a batch in one statement; ids in the rows' order.
INSERT: Final = insert(T).returning(T.c.id, T.c.agent_id, sort_by_parameter_order=True)
# One step's every column, by ``b_step_id`` (keys named like columns form the SET clause).
UPDATE: Final = update(T).where(T.c.id == bindparam("b_step_id"))
STEP_KEY: Final = "b_step_id"
# What an update of a running step sets unless it says otherwise.
RUNNING_COLUMNS: Final[dict[str, Any]] = {
    "status": StepStatus.RUNNING.value,
    "started_at": None,
    "attempt": 1,
    "output": None,
    "error": None,
    "completed_at": None,
    "duration_ms": None,
    "token_usage": None,
}
_RESUMED_COLUMNS = (
    T.c.id,
    T.c.agent_id,
    T.c.agent_name,
    T.c.layer,
    T.c.status,
    T.c.attempt,
    T.c.output,
    T.c.error,
)
_LAYER_RANK = {layer.value: index for index, layer in enumerate(LAYER_ORDER)}


def _from(states: Iterable[StepStatus], target: StepStatus) -> list[str]:
    """Of ``states``, those the lifecycle lets move to ``target``."""
    allowed = STEP.sources(target)
    return sorted(s.value for s in states if s in allowed)


# --- the engine (synchronous, inside run_write / the Recorder) ----------------------------


def rows_of(connection: Connection, execution_id: str) -> list[dict[str, Any]]:
    """The execution's steps as a resumed run starts from them, oldest first."""
    result = connection.execute(
        select(*_RESUMED_COLUMNS).where(T.c.execution_id == execution_id).order_by(T.c.id)
    )
    return [dict(row) for row in result.mappings()]


def end_open(
    connection: Connection,
    execution_id: str,
    among: Iterable[StepStatus],
    target: StepStatus,
    *,
    error: str,
    now: datetime,
) -> None:
    """Move the execution's steps that are in ``among`` to ``target`` (the ones the
    lifecycle allows), e.g. every unfinished step ``cancelled`` with its execution."""
    connection.execute(
        update(T)
        .where(T.c.execution_id == execution_id, T.c.status.in_(_from(among, target)))
        .values(status=target.value, error=error, completed_at=now)
    )


# --- requests (async, in the caller's transaction) ----------------------------------------


async def steps_of(session: AsyncSession, execution_id: str) -> Sequence[ExecutionStep]:
    """The execution's steps in layer order, then in their order within the layer."""
    rows = (
        await session.scalars(
            select(ExecutionStep)
            .where(ExecutionStep.execution_id == execution_id)
            .order_by(ExecutionStep.id)
        )
    ).all()
    return sorted(
        rows, key=lambda s: (_LAYER_RANK.get(s.layer, len(_LAYER_RANK)), s.position, s.id)
    )


async def awaiting(session: AsyncSession, execution_id: str) -> list[ExecutionStep]:
    """The execution's steps whose output waits for a person's decision."""
    rows = await session.scalars(
        select(ExecutionStep).where(
            ExecutionStep.execution_id == execution_id,
            ExecutionStep.status == StepStatus.AWAITING_APPROVAL.value,
        )
    )
    return list(rows.all())


def decide(
    steps: Sequence[ExecutionStep],
    target: StepStatus,
    *,
    decided_by: str,
    comment: str | None,
    now: datetime,
) -> None:
    """Record a person's decision on each waiting step (flushed with the session)."""
    for step in steps:
        STEP.check(step.status, target, subject=f"step {step.id}")
        step.status = target.value
        step.decided_by = decided_by
        step.decision_comment = comment
        step.decided_at = now


async def count_awaiting(session: AsyncSession, execution_id: str) -> int:
    found = await session.scalar(
        select(func.count())
        .select_from(ExecutionStep)
        .where(
            ExecutionStep.execution_id == execution_id,
            ExecutionStep.status == StepStatus.AWAITING_APPROVAL.value,
        )
    )
    return int(found or 0)


async def end_open_async(
    session: AsyncSession,
    execution_id: str,
    among: Iterable[StepStatus],
    target: StepStatus,
    *,
    error: str,
    now: datetime,
    except_ids: Sequence[int] = (),
) -> None:
    """``end_open`` in the caller's transaction (but the steps ``except_ids``)."""
    conditions = [
        ExecutionStep.execution_id == execution_id,
        ExecutionStep.status.in_(_from(among, target)),
    ]
    if except_ids:
        conditions.append(ExecutionStep.id.not_in(list(except_ids)))
    await session.execute(
        update(ExecutionStep)
        .where(*conditions)
        .values(status=target.value, error=error, completed_at=now)
    )


async def progress(
    session: AsyncSession, execution_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Per execution: (steps completed, steps in all), for a page of a list."""
    if not execution_ids:
        return {}
    done = func.sum(case((ExecutionStep.status == StepStatus.COMPLETED.value, 1), else_=0))
    rows = await session.execute(
        select(ExecutionStep.execution_id, done, func.count())
        .where(ExecutionStep.execution_id.in_(execution_ids))
        .group_by(ExecutionStep.execution_id)
    )
    return {execution_id: (int(d or 0), int(n)) for execution_id, d, n in rows.all()}
