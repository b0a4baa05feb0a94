"""Statements on leases (which engine runs an execution, and until when) and on
``workers``.

An engine that claims an execution holds it for ``lease_seconds`` and renews every
third of that (one statement for everything it runs). If its process dies, the lease
expires and any other engine may claim the execution again: it resumes from the first
unfinished layer (engine.py). Each such loss is counted; past the configured maximum the
execution ends ``failed`` with ``worker_lost`` instead of being retried for ever.

A lost engine that is merely slow (a long pause, a network partition) is fenced by the
event log: the claim that resumes an execution stores an event in the claim's own
transaction, so every later batch of the old engine collides on the unique
``(execution_id, seq)`` and is rolled back; its hand-back only applies while it still owns
the lease.

Workers register in ``workers`` and beat with their renewals; ``GET /api/health`` counts
those whose heartbeat is fresh.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.core.lifecycle import IllegalTransition
from jarvis.orchestration.lifecycle import ExecutionStatus
from jarvis.orchestration.models import executions_table, workers_table
from jarvis.orchestration.store.executions import move

X = ExecutionStatus

CLAIMED_COLUMNS = (
    executions_table.c.persona,
    executions_table.c.command,
    executions_table.c.workflow_id,
    executions_table.c.plan,
    executions_table.c.started_at,
    executions_table.c.created_by_id,
    executions_table.c.cancel_requested_at,
    executions_table.c.worker_losses,
)


def claim(
    connection: Connection, execution_id: str, *, owner: str, now: datetime, lease_seconds: float
) -> Row[Any] | None:
    """Take the execution if it is queued, or running under an expired lease (its engine
    was lost: counted in ``worker_losses``). None when someone else holds it or it ended."""
    table = executions_table
    running = X.RUNNING.value
    lost = and_(table.c.status == running, table.c.lease_expires_at < now)
    # queued -> running, or running -> running (resumed): both moves of the lifecycle.
    return connection.execute(
        update(table)
        .where(table.c.execution_id == execution_id, or_(table.c.status == X.QUEUED.value, lost))
        .values(
            status=running,
            started_at=func.coalesce(table.c.started_at, now),
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            worker_losses=table.c.worker_losses + case((table.c.status == running, 1), else_=0),
        )
        .returning(*CLAIMED_COLUMNS)
    ).one_or_none()


def renew(
    connection: Connection,
    execution_ids: Iterable[str],
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
) -> dict[str, datetime | None]:
    """Extend the leases this owner still holds; each one's ``cancel_requested_at``.
    An id missing from the answer is no longer this owner's to run."""
    ids = list(execution_ids)
    if not ids:
        return {}
    table = executions_table
    rows = connection.execute(
        update(table)
        .where(
            table.c.execution_id.in_(ids),
            table.c.lease_owner == owner,
            table.c.status == X.RUNNING.value,
        )
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(table.c.execution_id, table.c.cancel_requested_at)
    )
    return {row.execution_id: row.cancel_requested_at for row in rows}


def release(connection: Connection, execution_id: str, *, owner: str, layers_done: int) -> bool:
    """Hand a running execution back as ``queued`` (shutdown) if this owner still holds
    it; False when another engine has taken it over (and perhaps ended it) meanwhile."""
    try:
        return move(
            connection,
            execution_id,
            X.QUEUED,
            {"lease_owner": None, "lease_expires_at": None, "layers_done": layers_done},
            # Only from running: a paused execution is nobody's to hand back.
            where=(
                executions_table.c.lease_owner == owner,
                executions_table.c.status == X.RUNNING.value,
            ),
        )
    except IllegalTransition:
        return False  # no longer running: not this engine's to hand back


async def orphans(
    session: AsyncSession, *, now: datetime, queued_before: datetime, limit: int = 100
) -> list[str]:
    """Executions nobody is running: running under an expired lease, or queued since before
    ``queued_before`` (their message was lost). Oldest first."""
    table = executions_table
    lost = and_(table.c.status == X.RUNNING.value, table.c.lease_expires_at < now)
    stale = and_(table.c.status == X.QUEUED.value, table.c.created_at < queued_before)
    rows = await session.scalars(
        select(table.c.execution_id)
        .where(or_(lost, stale))
        .order_by(table.c.created_at)
        .limit(limit)
    )
    return list(rows)


# --- workers -------------------------------------------------------------------------------


def register_worker(
    connection: Connection, worker_id: str, *, kind: str, concurrency: int, now: datetime
) -> None:
    hostname, _, pid = worker_id.partition(":")
    # Workers that have not beaten for a day are history.
    connection.execute(
        workers_table.delete().where(workers_table.c.heartbeat_at < now - timedelta(days=1))
    )
    connection.execute(
        workers_table.insert().values(
            id=worker_id,
            kind=kind,
            hostname=hostname,
            pid=int(pid.partition(":")[0] or os.getpid()),
            concurrency=concurrency,
            running=0,
            started_at=now,
            heartbeat_at=now,
        )
    )


def beat_worker(connection: Connection, worker_id: str, *, running: int, now: datetime) -> None:
    connection.execute(
        update(workers_table)
        .where(workers_table.c.id == worker_id)
        .values(heartbeat_at=now, running=running)
    )


def stop_worker(connection: Connection, worker_id: str, *, now: datetime) -> None:
    connection.execute(
        update(workers_table)
        .where(workers_table.c.id == worker_id)
        .values(stopped_at=now, running=0)
    )


async def live_workers(session: AsyncSession, *, now: datetime, lease_seconds: float) -> int:
    """Workers that have not stopped and beat within the last lease."""
    found = await session.scalar(
        select(func.count())
        .select_from(workers_table)
        .where(
            workers_table.c.stopped_at.is_(None),
            workers_table.c.heartbeat_at >= now - timedelta(seconds=lease_seconds),
        )
    )
    return int(found or 0)
