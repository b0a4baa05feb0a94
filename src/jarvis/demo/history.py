"""A first day of work for the demo: the demo users' commands, run for real through the six
layers, so a fresh ``make run`` opens on a dashboard with executions, a work queue and
activity instead of empty charts (``jarvis seed demo --with-history``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from jarvis.auth.users.service import get_user_by_email, user_actor
from jarvis.config.service import ConfigService
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.data import HISTORY
from jarvis.kit.bus import EventBus
from jarvis.llm.providers import Providers
from jarvis.orchestration import service
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.schemas import ExecutionCreate


@dataclass
class HistoryResult:
    """How the demo's commands ended (``completed``, ``awaiting_approval``, …)."""

    statuses: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in self.statuses.items())


async def run_history(
    db: Database, config: ConfigService, bus: EventBus, providers: Providers
) -> HistoryResult:
    """Run every command of the demo's ``history`` as its demo user, one after the other."""
    result = HistoryResult()
    engine = Engine(db, config, bus, providers=providers)
    await engine.start()
    try:
        for entry in HISTORY:
            async with unit_of_work(db) as session:
                user = await get_user_by_email(session, entry.user)
                if user is None:
                    continue  # the demo users were not seeded here
                execution = await service.create_execution(
                    session,
                    ExecutionCreate(command=entry.command, persona=user.persona),
                    actor=user_actor(user),
                    bus=bus,
                    source="demo",
                )
            result.statuses[await engine.run(execution.execution_id)] += 1
    finally:
        await engine.close()
    return result
