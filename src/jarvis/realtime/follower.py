"""Following one execution: its stored events, then live ones, with no gap and no duplicate.

A follower registers for live events *first*, then reads the stored events after
``afterSeq``, then passes live events on, dropping those it already sent (``seq``
de-duplication). Events are stored before they are published, so whatever a live event or
the bus's ``GAP`` marker says was missed is in the database: a follower that sees a live
event skip numbers, or a ``GAP``, re-reads the missing events from there. Which event is a
duplicate, the next one or one after a hole is ``jarvis.realtime.replay``'s to say.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

import structlog

from jarvis.core.identity import Principal
from jarvis.db.session import unit_of_work
from jarvis.orchestration import service
from jarvis.orchestration.events import Event
from jarvis.realtime.channel import Deliver, encode, retry_delay
from jarvis.realtime.replay import Arrival, EventCursor, seq_of

if TYPE_CHECKING:
    from jarvis.realtime.listeners.executions import ExecutionListener

log = structlog.get_logger(__name__)

# Stored events read per query when replaying.
REPLAY_PAGE: Final = 500
# Live events a follower keeps while it reads the database; past this it drops them and
# reads them back from the database instead (they are all stored).
MAX_BUFFERED: Final = 10_000


def _event(item: tuple[Event, str | None]) -> Event:
    return item[0]


class ExecutionFollower:
    """Delivers one execution's events in ``seq`` order, replayed then live, exactly once.

    Use: ``status = await follower.open(...)`` (registers, checks, reads the first page),
    send whatever must precede the events, then ``follower.start()``; ``close()`` when done.
    ``deliver`` is called with each event and its JSON text, never concurrently, and must
    not wait.
    """

    def __init__(
        self, listener: ExecutionListener, execution_id: str, after_seq: int, deliver: Deliver
    ) -> None:
        self.listener = listener
        self.execution_id = execution_id
        self.cursor = EventCursor(last_seq=after_seq)
        self._deliver = deliver
        self._buffer: list[tuple[Event, str | None]] = []
        self._catching_up = True
        self._reread = False
        self._first_page: list[Event] | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def last_seq(self) -> int:
        """The number of the last event delivered (``after_seq`` before any)."""
        return self.cursor.last_seq

    @property
    def ended(self) -> bool:
        """True once the event that ends the execution was delivered."""
        return self.cursor.ended

    async def open(self, *, principal: Principal | None = None, authorize: bool = True) -> str:
        """Register for live events, then (in one read) check that ``principal`` may see
        the execution and read the first stored events after ``after_seq``. Returns the
        execution's status; raises ``NotFound`` / ``Forbidden`` (the follower is closed)."""
        self.listener.add_follower(self)
        try:
            async with unit_of_work(self.listener.db, write=False) as session:
                # The read starts after registering: whatever is committed later comes live.
                execution = await service.get_execution(
                    session, self.execution_id, principal=principal if authorize else None
                )
                status = execution.status
                rows = await service.events_of(
                    session, self.execution_id, after_seq=self.last_seq, limit=REPLAY_PAGE
                )
                self._first_page = [row.payload for row in rows]
        except BaseException:
            self.close()
            raise
        return status

    def start(self) -> None:
        """Deliver the first page, then what arrived live meanwhile; go live."""
        page, self._first_page = self._first_page or [], None
        for body in page:
            self._emit(body, None)
        if len(page) >= REPLAY_PAGE or not self._settle():
            self._spawn_catch_up()

    def close(self) -> None:
        """Stop delivering; forget buffered events."""
        if self.closed:
            return
        self.closed = True
        self._buffer.clear()
        self.listener.remove_follower(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- called by the listener -----------------------------------------------------------

    def offer(self, message: Event, text: str) -> None:
        """A live event of this execution."""
        if self.closed:
            return
        if self._catching_up:
            if len(self._buffer) >= MAX_BUFFERED:
                self._buffer.clear()
                self._reread = True
            else:
                self._buffer.append((message, text))
            return
        seq = seq_of(message)
        if seq is None:
            return
        arrival = self.cursor.arrival(seq)
        if arrival is Arrival.NEXT:
            self._emit(message, text)
        elif arrival is Arrival.AHEAD:
            # Numbers were skipped: the database has them (stored before published).
            self._buffer.append((message, text))
            self._catching_up = True
            self._spawn_catch_up()

    def on_gap(self) -> None:
        """The bus may have lost messages: read the database for anything newer."""
        if self.closed:
            return
        if self._catching_up:
            self._reread = True
            return
        self._catching_up = True
        self._spawn_catch_up()

    # --- inside ------------------------------------------------------------------------------

    def _emit(self, body: Event, text: str | None) -> None:
        if self.cursor.take(body):
            self._deliver(body, text if text is not None else encode(body))

    def _settle(self) -> bool:
        """Deliver buffered live events in order; True when caught up (live from now on),
        False when the database must be read again (a hole, or a GAP meanwhile)."""
        ready, self._buffer = self.cursor.settle(self._buffer, _event)
        for message, text in ready:
            self._emit(message, text)
        if self._buffer or self._reread:
            return False
        self._catching_up = False
        return True

    def _spawn_catch_up(self) -> None:
        if self.closed or (self._task is not None and not self._task.done()):
            return
        self._task = self.listener.spawn(self._catch_up(), name=f"follow-{self.execution_id}")

    async def _catch_up(self) -> None:
        failures = 0
        while not self.closed:
            self._reread = False
            try:
                async with unit_of_work(self.listener.db, write=False) as session:
                    rows = await service.events_of(
                        session, self.execution_id, after_seq=self.last_seq, limit=REPLAY_PAGE
                    )
                    page = [row.payload for row in rows]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again, never go quiet
                log.warning(
                    "realtime.replay_failed", execution_id=self.execution_id, error=repr(exc)
                )
                self._reread = True
                await asyncio.sleep(retry_delay(failures))
                failures += 1
                continue
            failures = 0
            if self.closed:
                return
            for body in page:
                self._emit(body, None)
            if len(page) >= REPLAY_PAGE:
                continue
            if self._settle():
                return
