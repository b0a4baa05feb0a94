"""The replay bookkeeping the hub's followers and the CLI's watch share
(``jarvis.realtime.replay``): duplicates, holes, order and the end of an execution."""

from __future__ import annotations

import random
from typing import Any

import pytest

from jarvis.orchestration.events import final_status
from jarvis.orchestration.lifecycle import FINAL, PAUSE_EVENT, TERMINAL_EVENTS
from jarvis.realtime.replay import Arrival, EventCursor, seq_of


def event(seq: int, kind: str = "step_completed") -> dict[str, Any]:
    return {"type": kind, "executionId": "e", "seq": seq}


def test_arrival_says_seen_next_or_ahead() -> None:
    cursor = EventCursor(last_seq=4)
    assert [cursor.arrival(s) for s in (1, 4, 5, 6, 9)] == [
        Arrival.SEEN,
        Arrival.SEEN,
        Arrival.NEXT,
        Arrival.AHEAD,
        Arrival.AHEAD,
    ]
    assert list(cursor.missing(8)) == [5, 6, 7]
    assert list(cursor.missing(5)) == []


def test_take_moves_past_newer_events_only() -> None:
    cursor = EventCursor()
    assert cursor.take(event(1))
    assert not cursor.take(event(1))  # a duplicate
    assert cursor.take(event(3))  # a stored page may continue after any newer number
    assert cursor.last_seq == 3
    assert not cursor.take({"type": "heartbeat"})
    assert not cursor.take({"type": "x", "seq": True})  # not a number
    assert cursor.last_seq == 3 and not cursor.ended


def test_the_end_is_the_lifecycles_terminal_events_and_a_pause_is_not_one() -> None:
    assert {final_status({"type": kind}) for kind in TERMINAL_EVENTS} == set(FINAL)
    assert final_status({"type": PAUSE_EVENT}) is None
    assert final_status({"type": 3}) is None
    for kind, status in TERMINAL_EVENTS.items():
        cursor = EventCursor()
        cursor.take(event(1, PAUSE_EVENT))
        assert not cursor.ended
        cursor.take(event(2, kind))
        assert cursor.ended and cursor.final == status


def test_settle_gives_the_run_without_a_hole_and_keeps_the_rest() -> None:
    cursor = EventCursor(last_seq=2)
    pending = [event(s) for s in (5, 3, 2, 4, 3, 7, 8)]
    ready, rest = cursor.settle(pending, lambda item: item)
    assert [seq_of(e) for e in ready] == [3, 4, 5]
    assert [seq_of(e) for e in rest] == [7, 8]
    assert cursor.last_seq == 2  # settle moves nothing: take does


@pytest.mark.parametrize("seed", range(20))
def test_shuffled_duplicated_events_come_out_once_in_order(seed: int) -> None:
    shuffler = random.Random(seed)
    total = shuffler.randint(1, 40)
    arrivals = [event(s) for s in range(1, total + 1)]
    arrivals += [event(shuffler.randint(1, total)) for _ in range(total // 2)]
    shuffler.shuffle(arrivals)
    cursor = EventCursor()
    delivered: list[int] = []
    held: list[dict[str, Any]] = []
    for item in arrivals:  # live arrivals, settled as the follower settles its buffer
        ready, held = cursor.settle([*held, item], lambda e: e)
        for body in ready:
            assert cursor.take(body)
            delivered.append(body["seq"])
    assert delivered == list(range(1, total + 1))
    assert held == []
