"""One execution's events as a follower passes them on: in ``seq`` order, each once,
knowing where numbers are missing and when the execution is over.

Events are numbered 1, 2, ... per execution with no gaps, and stored before they are
published; so whatever a follower misses (a live event that skips numbers, a bus ``GAP``,
a dropped connection) can be read back after the last ``seq`` it passed on. This module is
that bookkeeping and nothing else (no I/O): the hub's ``ExecutionFollower`` (replay from the
database, then live) and the CLI's ``jarvis executions watch`` (replay over the WebSocket
after a reconnect) both use it, so the two never disagree on what counts as a duplicate, a
hole or the end. The end is orchestration's: ``final_status`` of
``jarvis.orchestration.events`` (the lifecycle's ``TERMINAL_EVENTS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from jarvis.orchestration.events import final_status
from jarvis.orchestration.lifecycle import ExecutionStatus

T = TypeVar("T")


class Arrival(StrEnum):
    """Where an event's ``seq`` stands against what was passed on so far."""

    SEEN = "seen"  # passed on already (a replay meeting the live stream): drop it
    NEXT = "next"  # the one that comes next: pass it on
    AHEAD = "ahead"  # numbers were skipped: read the missing ones first


def seq_of(event: Mapping[str, Any]) -> int | None:
    """The event's number, or None when it has none (then it is no execution event)."""
    seq = event.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


@dataclass
class EventCursor:
    """How far one execution's events have been passed on (``last_seq``, 0 for none) and
    whether the last of them has been (``final``)."""

    last_seq: int = 0
    final: ExecutionStatus | None = None

    @property
    def ended(self) -> bool:
        """True once the event that ends the execution was passed on."""
        return self.final is not None

    def arrival(self, seq: int) -> Arrival:
        """Whether an event numbered ``seq`` was seen, comes next, or comes after a hole."""
        if seq <= self.last_seq:
            return Arrival.SEEN
        return Arrival.NEXT if seq == self.last_seq + 1 else Arrival.AHEAD

    def missing(self, seq: int) -> range:
        """The numbers that must come before an event numbered ``seq``."""
        return range(self.last_seq + 1, max(seq, self.last_seq + 1))

    def take(self, event: Mapping[str, Any]) -> bool:
        """Move past ``event`` if it is newer than the last one passed on (True: pass it
        on); False for one seen already or one without a number."""
        seq = seq_of(event)
        if seq is None or seq <= self.last_seq:
            return False
        self.last_seq = seq
        status = final_status(event)
        if status is not None:
            self.final = status
        return True

    def settle(
        self, pending: Iterable[T], event_of: Callable[[T], Mapping[str, Any]]
    ) -> tuple[list[T], list[T]]:
        """Sort ``pending`` (events, or items holding one) by ``seq`` and split it: those
        that continue from ``last_seq`` without a hole, each once and in order (to pass on,
        through ``take``), and those from the first hole on (to keep until the missing
        numbers are read). Items seen already, or duplicated in ``pending``, are dropped."""
        numbered = [(seq, item) for item in pending if (seq := seq_of(event_of(item))) is not None]
        numbered.sort(key=lambda pair: pair[0])
        ready: list[T] = []
        expected = self.last_seq + 1
        for index, (seq, item) in enumerate(numbered):
            if seq < expected:
                continue
            if seq > expected:
                return ready, [later for _, later in numbered[index:]]
            ready.append(item)
            expected += 1
        return ready, []
