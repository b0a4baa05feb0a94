"""A lifecycle as one table: its states and, for each, the states it may move to.

Each aggregate with a status (an execution, a step; later a submission, an incident)
writes its table once, as Prefect's orchestration rules state FROM and TO states, and
everything else derives from it: which states are final, where a state can be reached from
(the ``WHERE status IN (...)`` of a guarded update), what a page may offer. A move the
table does not allow raises ``IllegalTransition`` (409), so a bug or a race never stores a
state the lifecycle cannot be in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from jarvis.errors import Conflict

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(Conflict):
    """A status change the lifecycle's table does not allow."""

    def __init__(self, detail: str, *, source: str, target: str) -> None:
        super().__init__(detail, extra={"from": source, "to": target})
        self.source = source
        self.target = target


class Lifecycle(Generic[S]):
    """The states of one kind of record and the moves between them."""

    def __init__(self, name: str, moves: Mapping[S, Iterable[S]], *, initial: Iterable[S]) -> None:
        self.name = name
        self.moves: dict[S, frozenset[S]] = {state: frozenset(to) for state, to in moves.items()}
        # The states a record may be created in.
        self.initial: frozenset[S] = frozenset(initial)
        states = set(self.moves)
        reached = {target for targets in self.moves.values() for target in targets}
        if not reached <= states or not self.initial <= states or not self.initial:
            missing = sorted((reached | self.initial) - states)
            raise ValueError(f"{name}: every state needs a row (missing: {missing})")
        self.states: tuple[S, ...] = tuple(self.moves)
        # No way out: the record is settled.
        self.final: frozenset[S] = frozenset(s for s, to in self.moves.items() if not to)
        # By value, for checks on the hot path (a status read from a row is a plain str).
        self._by_value: dict[str, frozenset[str]] = {
            str(state): frozenset(str(t) for t in to) for state, to in self.moves.items()
        }

    def can(self, source: S | str, target: S | str) -> bool:
        """True when the table allows ``source`` -> ``target``."""
        onward = self._by_value.get(str(source))
        return onward is not None and str(target) in onward

    def sources(self, target: S | str) -> frozenset[S]:
        """The states from which ``target`` may be reached in one move."""
        return frozenset(s for s, to in self.moves.items() if target in to)

    def check(self, source: S | str, target: S | str, *, subject: str | None = None) -> None:
        """Raise ``IllegalTransition`` unless ``source`` -> ``target`` is allowed."""
        if self.can(source, target):
            return
        who = subject or self.name
        if str(source) in self._by_value:
            onward = sorted(self._by_value[str(source)])
            allowed = ", ".join(onward) if onward else f"nothing: {source} is final"
        else:
            allowed = f"nothing: {source!r} is not a state of {self.name}"
        raise IllegalTransition(
            f"{who} cannot go from {source} to {target}; from {source} it may go to {allowed}",
            source=str(source),
            target=str(target),
        )
