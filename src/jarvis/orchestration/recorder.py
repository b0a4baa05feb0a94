"""Recording an execution: transitions are stored, numbered, committed, then published.

The engine's steps finish concurrently. Each transition (a database change plus the
events that describe it) is handed to the execution's ``Recorder``; a single writer task
takes everything that is waiting, applies it in one transaction (group commit), numbers
the events in order, commits and only then publishes them. So a subscriber never sees an
event the database does not have, events arrive in ``seq`` order, and three agents that
finish together cost one commit, not three.

A batch is plain synchronous Core work (``Apply`` takes a ``Connection``) run by
``Database.run_write``: on a SQLite file the whole transaction is one hand-off to a
worker thread, however many statements it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
from sqlalchemy import Connection, Executable
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.db.engine import Database
from jarvis.db.session import after_commit
from jarvis.kit.bus import EventBus
from jarvis.orchestration.events import EVENTS_CHANNEL, Event
from jarvis.orchestration.store import events as event_rows

log = structlog.get_logger(__name__)

Apply = Callable[[Connection], Any]


class Emit(NamedTuple):
    """What an ``Apply`` returns when the events it describes depend on what it stored
    (e.g. new step ids): its result and those events, numbered after the static ones."""

    result: Any
    events: list[Event]


async def publish_events(bus: EventBus, events: Sequence[Event]) -> None:
    """Publish stored events in order; a bus failure is logged (the database has them)."""
    for body in events:
        try:
            await bus.publish(EVENTS_CHANNEL, body)
        except Exception as exc:  # subscribers replay from the database
            log.warning("execution_event_not_published", error=str(exc), seq=body.get("seq"))


async def append_events(
    session: AsyncSession,
    bus: EventBus | None,
    execution_id: str,
    events: Sequence[Event],
    *,
    first: bool = False,
) -> list[Event]:
    """Store ``events`` after the execution's newest one and publish them after commit
    (when there is a ``bus``: subscribers can always replay them from the database).

    For writers outside the engine (API decisions on a paused or queued execution); the
    caller holds the execution row's lock, so numbers cannot collide. ``first``: the
    execution is new and has no events yet.
    """
    after = 0 if first else await event_rows.last_seq(session, execution_id)
    numbered = await event_rows.store_async(session, execution_id, events, after=after)
    if bus is None:
        return numbered

    async def publish() -> None:
        await publish_events(bus, numbered)

    after_commit(session, publish)
    return numbered


class RecordingFailed(RuntimeError):
    """An execution's transition could not be stored; the run stops."""


def _retrieve(done: asyncio.Future[Any]) -> None:
    # The failure is kept on the recorder; mark the exception seen so asyncio does not
    # report it as never retrieved.
    if not done.cancelled():
        done.exception()


@dataclass(frozen=True)
class RowChange:
    """A change of one row through a shared Core ``statement`` (an executemany when several
    follow each other in a batch). ``describe`` runs when the batch is written and returns
    the statement's parameters and the events, so both can use ids stored earlier in the
    same batch. ``key`` names the parameter that identifies the row: each change must set
    every column the statement sets, so of two changes of one row in a batch only the
    newer is written."""

    statement: Executable
    describe: Callable[[], tuple[dict[str, Any], list[Event]]]
    key: str


@dataclass(frozen=True)
class InsertRows:
    """New rows through a shared Core ``statement`` with ``RETURNING``. Every ``InsertRows``
    of a batch with the same statement is one statement, run where the first of them
    stands (new rows conflict with nothing queued). ``describe`` receives this write's
    returned rows, in the order of ``rows``, and returns its result and events."""

    statement: Executable
    rows: list[dict[str, Any]]
    describe: Callable[[Sequence[Any]], Emit]


@dataclass
class _Write:
    apply: Apply | RowChange | InsertRows | None
    events: tuple[Event, ...]
    done: asyncio.Future[Any]
    # Reads and changes no row that a queued RowChange changes: it may run before them.
    independent: bool = False


class Recorder:
    """The writer of one execution's transitions (see the module docstring)."""

    def __init__(self, db: Database, bus: EventBus, execution_id: str, seq: int) -> None:
        self.db = db
        self.bus = bus
        self.execution_id = execution_id
        self.seq = seq
        self._waiting: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None
        # The first failed batch: later writes would describe a state that is not stored.
        self.failure: BaseException | None = None

    def submit(
        self,
        apply: Apply | RowChange | InsertRows | None,
        *events: Event,
        independent: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue a transition; the future resolves to ``apply``'s result once committed.

        ``independent``: ``apply`` neither reads nor changes rows that queued row changes
        touch (it inserts new rows, or changes another table), so it may run before them.
        """
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Write(apply, events, done, independent))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return done

    def record(
        self,
        apply: Apply | RowChange | InsertRows | None,
        *events: Event,
        independent: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue a transition without waiting for it (it is stored before anything queued
        later that depends on it); its future, for callbacks. Raises at once if an earlier
        write failed."""
        if self.failure is not None:
            raise RecordingFailed(str(self.failure)) from self.failure
        done = self.submit(apply, *events, independent=independent)
        done.add_done_callback(_retrieve)
        return done

    async def write(self, apply: Apply | None, *events: Event) -> Any:
        """Record a transition and wait until it is committed and published.

        Shielded: a caller cancelled while waiting does not undo or lose the write.
        """
        return await asyncio.shield(self.submit(apply, *events))

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results, published = await self._commit(batch)
                self.seq += len(published)
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError) and self.failure is None:
                    self.failure = exc
                for write in batch:
                    if not write.done.done():
                        write.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            await publish_events(self.bus, published)
            for write, result in zip(batch, results, strict=True):
                if not write.done.done():
                    write.done.set_result(result)

    async def _commit(self, batch: list[_Write]) -> tuple[list[Any], list[Event]]:
        return await self.db.run_write(lambda connection: self._apply_batch(connection, batch))

    def _apply_batch(
        self, connection: Connection, batch: list[_Write]
    ) -> tuple[list[Any], list[Event]]:
        """The batch's statements, in order (runs in a worker thread on SQLite)."""
        results: list[Any] = []
        events: list[Event] = []
        # Row changes waiting to go out as one executemany: their statement and, per row
        # key, the newest parameters (every update of a row sets all its columns, so when
        # a step starts and ends within one batch only its end is written).
        statement: Executable | None = None
        rows: dict[Any, dict[str, Any]] = {}
        inserted: dict[int, Sequence[Any]] = {}
        for index, write in enumerate(batch):
            apply = write.apply
            if isinstance(apply, RowChange):
                if statement is not None and apply.statement is not statement:
                    connection.execute(statement, list(rows.values()))
                    rows = {}
                statement = apply.statement
                params, described = apply.describe()
                rows.pop(params[apply.key], None)  # the newest goes last, as it came
                rows[params[apply.key]] = params
                events.extend(write.events)
                events.extend(described)
                results.append(None)
                continue
            if statement is not None and not write.independent:
                # Keep the order: pending row changes go first, unless this write touches
                # none of those rows (then they wait, and more of them share a statement).
                connection.execute(statement, list(rows.values()))
                statement, rows = None, {}
            if isinstance(apply, InsertRows):
                if index not in inserted:
                    inserted.update(_insert_together(connection, batch, index))
                result: Any = apply.describe(inserted.pop(index))
            else:
                result = apply(connection) if apply else None
            events.extend(write.events)
            if isinstance(result, Emit):
                events.extend(result.events)
                result = result.result
            results.append(result)
        if statement is not None:
            connection.execute(statement, list(rows.values()))
        numbered: list[Event] = []
        if events:
            numbered = event_rows.store(connection, self.execution_id, events, after=self.seq)
        # Only a committed batch uses up its numbers: the caller's transaction commits
        # right after this returns, and a failure there raises before seq moves on.
        return results, numbered


def _insert_together(
    connection: Connection, batch: list[_Write], first: int
) -> dict[int, Sequence[Any]]:
    """Insert the rows of every ``InsertRows`` in ``batch`` from ``first`` on that shares its
    statement, in one statement; each write's returned rows, by its index in the batch."""
    statement = batch[first].apply.statement  # type: ignore[union-attr]
    members = [
        (index, write.apply)
        for index, write in enumerate(batch)
        if index >= first
        and isinstance(write.apply, InsertRows)
        and write.apply.statement is statement
    ]
    rows = [row for _, apply in members for row in apply.rows]
    returned = list(connection.execute(statement, rows)) if rows else []
    found: dict[int, Sequence[Any]] = {}
    offset = 0
    for index, apply in members:
        found[index] = returned[offset : offset + len(apply.rows)]
        offset += len(apply.rows)
    return found
