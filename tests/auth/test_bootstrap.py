"""The first admin and the permission catalogue when several instances start together on
one empty database (issue 15 §6): every instance comes up, and there is one admin."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from jarvis.auth import bootstrap
from jarvis.auth.bootstrap import AdminBootstrap, ensure_admin
from jarvis.auth.models import User
from jarvis.core.permissions import PERMISSIONS
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import Conflict
from jarvis.personas.grants import ensure_catalogue
from jarvis.personas.models import Permission, RolePersona
from jarvis.wiring import config_service
from tests.factories import create_user

ADMIN_EMAIL = "admin@bootstrap.test"
INSTANCES = 4


async def _bootstrap(db: Database) -> AdminBootstrap | None:
    """What one instance does at start: its own unit of work, its own ConfigService."""
    config = config_service(db, poll_seconds=0)
    async with unit_of_work(db) as session:
        return await ensure_admin(
            session, email=ADMIN_EMAIL, password=None, generate=True, config=config
        )


async def _count(db: Database, statement: Any) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(await session.scalar(statement) or 0)


async def test_instances_starting_together_make_one_admin(db: Database) -> None:
    results = await asyncio.gather(*(_bootstrap(db) for _ in range(INSTANCES)))

    assert all(result is not None for result in results)
    created = [r for r in results if r is not None and r.created]
    assert len(created) == 1
    assert created[0].generated_password
    assert {r.user.id for r in results if r is not None} == {created[0].user.id}
    users = await _count(db, select(func.count()).select_from(User))
    personas = await _count(
        db, select(func.count()).select_from(RolePersona).where(RolePersona.key == "admin")
    )
    assert (users, personas) == (1, 1)


async def test_the_loser_of_the_race_returns_the_winners_admin(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The winner committed between the loser's check and its insert: no 409, no crash."""
    winner = await _bootstrap(db)
    assert winner is not None and winner.created
    real_find_admin = bootstrap.find_admin
    calls = 0

    async def find_admin_too_early(session: Any) -> User | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else await real_find_admin(session)

    monkeypatch.setattr(bootstrap, "find_admin", find_admin_too_early)
    loser = await _bootstrap(db)

    assert loser is not None
    assert (loser.created, loser.user.id, loser.generated_password) == (
        False,
        winner.user.id,
        None,
    )
    assert await _count(db, select(func.count()).select_from(User)) == 1


async def test_a_taken_email_without_an_admin_is_still_refused(db: Database) -> None:
    await create_user(db, persona="underwriter", email=ADMIN_EMAIL)
    with pytest.raises(Conflict):
        await _bootstrap(db)


async def test_catalogue_stored_by_instances_starting_together(db: Database) -> None:
    async with unit_of_work(db) as session:
        await session.execute(delete(Permission))

    async def store() -> list[str]:
        async with unit_of_work(db) as session:
            return await ensure_catalogue(session)

    added = await asyncio.gather(*(store() for _ in range(INSTANCES)))

    assert any(added)
    stored = await _count(db, select(func.count()).select_from(Permission))
    assert stored == len(PERMISSIONS)
