"""Orchestration's implementations of the ports lower domains declare.

``ExecutionsSeen`` is what agent kinds may know of executions
(``agents.kinds.base.ExecutionsView``); the engine passes it in ``KindServices``.
"""

from __future__ import annotations

from jarvis.agents.kinds.base import WaitingExecution
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.orchestration.store.figures import awaiting_decision


class ExecutionsSeen:
    """What agent kinds may know of executions (``agents.kinds.base.ExecutionsView``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def awaiting_decision(
        self, *, persona: str | None, limit: int
    ) -> tuple[list[WaitingExecution], int]:
        async with unit_of_work(self.db, write=False) as session:
            lines, total = await awaiting_decision(
                session, persona=persona, created_by_id=None, limit=limit
            )
        waiting = [
            WaitingExecution(line.execution_id, line.command, line.persona, line.created_at)
            for line in lines
        ]
        return waiting, total
