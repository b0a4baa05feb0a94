"""Claiming an execution for an engine: take the lease, read what a run starts from (or
resumes from), and end an execution whose engines were lost too often.

Runs inside one ``Database.run_write`` (the claim and what it reads are one transaction);
a resumed claim stores its ``execution_resumed`` event in that transaction, which fences
off the engine that lost the lease (store/leases.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from jarvis.agents.service import agents_serving
from jarvis.analytics.service import add_activity
from jarvis.kit.clock import as_utc, utcnow
from jarvis.orchestration.events import ExecutionFailed, ExecutionResumed, ExecutionStarted
from jarvis.orchestration.lifecycle import STEP_UNFINISHED, StepStatus
from jarvis.orchestration.run import ExecutionState
from jarvis.orchestration.store import events as event_store
from jarvis.orchestration.store import executions as execution_store
from jarvis.orchestration.store import leases as lease_store
from jarvis.orchestration.store import steps as step_store


@dataclass
class Claimed:
    state: ExecutionState
    rows: list[dict[str, Any]]
    seq: int
    created_by_id: int | None
    cancel_requested: bool
    # execution_started (or _resumed): the first event the run records.
    opening: dict[str, Any]
    # A resumed claim stores its event itself (it fences off the lost engine): numbered.
    stored_opening: list[dict[str, Any]]


@dataclass
class Lost:
    """The execution's engines were lost too often: it was ended ``failed``."""

    events: list[dict[str, Any]]


def claim(
    connection: Connection,
    execution_id: str,
    *,
    owner: str,
    lease_seconds: float,
    max_losses: int,
) -> Claimed | Lost | None:
    now = utcnow()
    row = lease_store.claim(
        connection, execution_id, owner=owner, now=now, lease_seconds=lease_seconds
    )
    if row is None:
        return None
    started_at = as_utc(row.started_at)
    resumed = started_at != now
    # A first claim follows the creation's single execution_queued event.
    seq = event_store.newest_seq(connection, execution_id) if resumed else 1
    if row.worker_losses > max_losses:
        return Lost(end_lost(connection, execution_id, row, seq, started_at, now))
    agents = agents_serving(connection, row.persona)
    if resumed:
        steps = step_store.rows_of(connection, execution_id)
        # The events are the record: a layer is done once its layer_completed is stored,
        # whatever the row's progress column last said.
        layers_done = event_store.layers_completed(connection, execution_id)
        opening = ExecutionResumed(
            persona=row.persona,
            command=row.command,
            layers_done=layers_done,
            worker_losses=row.worker_losses,
        ).body()
    else:
        steps, layers_done = [], 0
        opening = ExecutionStarted(
            persona=row.persona, command=row.command, layers_done=layers_done
        ).body()
    stored: list[dict[str, Any]] = []
    if resumed:
        # Stored now: any batch the lost engine still writes collides with this number.
        stored = event_store.store(connection, execution_id, [opening], after=seq)
        seq += len(stored)
    state = ExecutionState(
        execution_id=execution_id,
        persona=row.persona,
        command=row.command,
        workflow_id=row.workflow_id,
        plan=row.plan,
        layers_done=layers_done,
        started_at=started_at,
        steps=steps,
    )
    return Claimed(
        state,
        agents,
        seq,
        row.created_by_id,
        row.cancel_requested_at is not None,
        opening,
        stored,
    )


def end_lost(
    connection: Connection,
    execution_id: str,
    row: Any,
    seq: int,
    started_at: datetime,
    now: datetime,
) -> list[dict[str, Any]]:
    """End an execution whose engines were lost too often: failed, reason worker_lost."""
    error = f"the engine running it was lost {row.worker_losses} times"
    execution_store.fail_lost(
        connection, execution_id, error=error, now=now, duration_ms=ms_between(started_at, now)
    )
    step_store.end_open(
        connection, execution_id, STEP_UNFINISHED, StepStatus.FAILED, error="worker lost", now=now
    )
    add_activity(
        connection,
        type="execution.failed",
        title=f"Failed: {short(row.command)}",
        persona=row.persona,
        user_id=row.created_by_id,
        execution_id=execution_id,
        detail={"error": error},
    )
    closing = ExecutionFailed(status="failed", error=error, error_code="worker_lost").body()
    return event_store.store(connection, execution_id, [closing], after=seq)


def ms_between(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() * 1000)


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
