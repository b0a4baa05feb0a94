"""Statements on ``agent_execution_events``: numbering, storing and reading an execution's
sequence-numbered events.

Each event is stored with the next ``seq`` of its execution (1, 2, ... without gaps) in
the transaction of the change it describes; ``(execution_id, seq)`` is unique, which is
also what fences off an engine that lost its lease (store/leases.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.kit.clock import utcnow
from jarvis.orchestration.events import Event
from jarvis.orchestration.models import ExecutionEvent, events_table

LAYER_COMPLETED = "layer_completed"
_INSERT = insert(events_table)


def number(
    execution_id: str, events: Sequence[Event], *, after: int
) -> tuple[list[Event], list[dict[str, Any]]]:
    """``events`` numbered from ``after + 1``, and their rows for ``insert_rows``."""
    now = utcnow()
    stamped = now.isoformat()
    numbered = [
        {**body, "executionId": execution_id, "seq": after + index, "at": stamped}
        for index, body in enumerate(events, start=1)
    ]
    rows = [
        {
            "execution_id": execution_id,
            "seq": body["seq"],
            "type": body["type"],
            "payload": body,
            "created_at": now,
        }
        for body in numbered
    ]
    return numbered, rows


def insert_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Store numbered events (``number``'s rows)."""
    if rows:
        connection.execute(_INSERT, rows)


def store(
    connection: Connection, execution_id: str, events: Sequence[Event], *, after: int
) -> list[Event]:
    """Number ``events`` from ``after + 1`` and store them; return them whole."""
    numbered, rows = number(execution_id, events, after=after)
    insert_rows(connection, rows)
    return numbered


async def store_async(
    session: AsyncSession, execution_id: str, events: Sequence[Event], *, after: int
) -> list[Event]:
    """``store`` in the caller's transaction."""
    if not events:
        return []
    numbered, rows = number(execution_id, events, after=after)
    # On the session's connection: a Core statement needs none of the ORM's bookkeeping.
    connection = await session.connection()
    await connection.execute(_INSERT, rows)
    return numbered


def _newest(execution_id: str) -> Any:
    return select(func.max(events_table.c.seq)).where(events_table.c.execution_id == execution_id)


def newest_seq(connection: Connection, execution_id: str) -> int:
    """The number of the execution's newest event (0 when it has none)."""
    return int(connection.scalar(_newest(execution_id)) or 0)


async def last_seq(session: AsyncSession, execution_id: str) -> int:
    """``newest_seq`` in the caller's transaction: a live view read after it replays from
    there, so it misses nothing."""
    return int(await session.scalar(_newest(execution_id)) or 0)


def layers_completed(connection: Connection, execution_id: str) -> int:
    """How many ``layer_completed`` events the execution has: the record a resume counts."""
    count = connection.scalar(
        select(func.count())
        .select_from(events_table)
        .where(
            events_table.c.execution_id == execution_id,
            events_table.c.type == LAYER_COMPLETED,
        )
    )
    return int(count or 0)


async def events_of(
    session: AsyncSession, execution_id: str, *, after_seq: int, limit: int
) -> Sequence[ExecutionEvent]:
    """Stored events after ``after_seq``, oldest first."""
    rows = await session.scalars(
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after_seq)
        .order_by(ExecutionEvent.seq)
        .limit(limit)
    )
    return rows.all()


async def completed_layers(session: AsyncSession, execution_id: str) -> dict[str, str]:
    """Layer -> how it completed (``completed`` or ``completed_with_failures``), from the
    execution's ``layer_completed`` events (the row's ``layers_done`` is stored only now
    and then while it runs)."""
    payloads = await session.scalars(
        select(ExecutionEvent.payload).where(
            ExecutionEvent.execution_id == execution_id,
            ExecutionEvent.type == LAYER_COMPLETED,
        )
    )
    return {
        str(p.get("layer")): str(p.get("status") or "completed")
        for p in payloads.all()
        if isinstance(p, dict)
    }
