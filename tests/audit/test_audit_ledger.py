"""The audit ledger: the hash chain, verification, tamper detection and concurrent writers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from jarvis.audit.models import GENESIS_HASH, AuditTrail
from jarvis.audit.service import VerifyResult, entry_digest, record_audit, verify_ledger
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.service import seed_demo
from jarvis.kit.clock import utcnow
from jarvis.wiring import config_service

ACTOR = Actor.system("ledger-tests")


async def _write(db: Database, count: int, **overrides: Any) -> list[int]:
    """Append ``count`` entries, each in its own unit of work; return their ids."""
    ids = []
    for n in range(count):
        values: dict[str, Any] = {
            "actor": ACTOR,
            "action": "test.write",
            "entity_type": "thing",
            "entity_id": n,
            "before": {"n": n - 1} if n else None,
            "after": {"n": n, "label": f"entry {n}"},
        }
        values.update(overrides)
        async with unit_of_work(db) as session:
            entry = await record_audit(session, **values)
            ids.append(entry.id)
    return ids


async def _entries(db: Database) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as session:
        return list((await session.scalars(select(AuditTrail).order_by(AuditTrail.id))).all())


async def _verify(db: Database) -> VerifyResult:
    async with unit_of_work(db, write=False) as session:
        return await verify_ledger(session)


# --- the chain --------------------------------------------------------------------------


async def test_empty_ledger_is_intact(db: Database) -> None:
    result = await _verify(db)
    assert result.status == "intact"
    assert result.checked == 0
    assert result.broken_entry_id is None


async def test_entries_form_a_hash_chain_from_genesis(db: Database) -> None:
    ids = await _write(db, 5)
    entries = await _entries(db)

    assert [e.id for e in entries] == ids
    assert GENESIS_HASH == "0" * 64
    assert entries[0].prev_hash == GENESIS_HASH
    for previous, entry in zip(entries, entries[1:], strict=False):
        assert entry.prev_hash == previous.entry_hash
    for entry in entries:
        assert entry.entry_hash == entry_digest(
            prev_hash=entry.prev_hash,
            created_at=entry.created_at,
            actor_id=entry.actor_id,
            actor=entry.actor,
            action=entry.action,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            before=entry.before,
            after=entry.after,
        )
    assert len({e.entry_hash for e in entries}) == 5


async def test_entry_stores_the_actor_and_entity(db: Database) -> None:
    async with unit_of_work(db) as session:
        await record_audit(
            session,
            actor=Actor(label="ann@example.com", user_id=7),
            action="thing.touch",
            entity_type="thing",
            entity_id=42,
            after={"when": utcnow()},
        )
    [entry] = await _entries(db)
    assert entry.actor == "ann@example.com"
    assert entry.actor_id == 7
    assert entry.entity_id == "42"
    # Non-JSON values are stored as the JSON the column will give back.
    assert isinstance(entry.after["when"], str)
    assert (await _verify(db)).status == "intact"


async def test_ledger_is_intact_after_seeding_the_demo(db: Database) -> None:
    async with unit_of_work(db) as session:
        result = await seed_demo(session, config=config_service(db, poll_seconds=0))
    assert result.agents_created > 0

    async with unit_of_work(db, write=False) as session:
        count = await session.scalar(select(func.count()).select_from(AuditTrail))
    verified = await _verify(db)
    assert count is not None and count >= result.agents_created
    assert verified.status == "intact"
    assert verified.checked == count


async def test_json_numbers_survive_the_round_trip(db: Database) -> None:
    """jsonb normalises numbers (1e+16 becomes an integer); the hash must still match."""
    after = {"big": 1e16, "huge": -1.5e300, "negative_zero": -0.0, "tiny": 1.5e-7, "x": 95.0}
    await _write(db, 2, after=after)
    result = await _verify(db)
    assert result.status == "intact", result
    assert result.checked == 2


async def test_prev_hash_is_unique_so_the_chain_cannot_fork(db: Database) -> None:
    [first_id] = await _write(db, 1)
    [first] = await _entries(db)
    with pytest.raises(IntegrityError):
        async with unit_of_work(db) as session:
            await session.execute(
                insert(AuditTrail).values(
                    created_at=utcnow(),
                    actor="forker",
                    action="test.fork",
                    entity_type="thing",
                    prev_hash=first.prev_hash,
                    entry_hash="f" * 64,
                )
            )
    assert [e.id for e in await _entries(db)] == [first_id]


# --- tampering on SQLite ----------------------------------------------------------------


def _shift_sqlite_timestamp(raw: str) -> str:
    shifted = datetime.fromisoformat(raw) + timedelta(seconds=1)
    return shifted.isoformat(sep=" ", timespec="microseconds")


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("column", ["actor", "before", "after", "created_at", "action"])
async def test_sqlite_edit_of_one_entry_is_reported_at_that_entry(
    db: Database, column: str
) -> None:
    ids = await _write(db, 5)
    victim = ids[2]
    async with db.engine.begin() as conn:
        if column == "created_at":
            raw = await conn.scalar(
                text("SELECT created_at FROM audit_trails WHERE id = :id"), {"id": victim}
            )
            value: Any = _shift_sqlite_timestamp(raw)
        elif column in ("before", "after"):
            value = json.dumps({"n": 999})
        else:
            value = "mallory"
        changed = await conn.execute(
            text(f'UPDATE audit_trails SET "{column}" = :value WHERE id = :id'),
            {"value": value, "id": victim},
        )
        assert changed.rowcount == 1

    result = await _verify(db)
    assert result.status == "compromised"
    assert result.broken_entry_id == victim
    assert result.checked == 2
    assert result.reason is not None and "hash" in result.reason


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_deleted_middle_entry_is_reported_at_the_next(db: Database) -> None:
    ids = await _write(db, 5)
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_trails WHERE id = :id"), {"id": ids[2]})

    result = await _verify(db)
    assert result.status == "compromised"
    assert result.broken_entry_id == ids[3]
    assert result.checked == 2
    assert result.reason is not None and "removed" in result.reason


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_rehashed_entry_is_still_caught_by_its_successor(db: Database) -> None:
    """A forger who recomputes the edited entry's hash breaks the next entry's link."""
    ids = await _write(db, 4)
    entries = await _entries(db)
    victim = entries[1]
    forged_hash = entry_digest(
        prev_hash=victim.prev_hash,
        created_at=victim.created_at,
        actor_id=victim.actor_id,
        actor="mallory",
        action=victim.action,
        entity_type=victim.entity_type,
        entity_id=victim.entity_id,
        before=victim.before,
        after=victim.after,
    )
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_trails SET actor = 'mallory', entry_hash = :h WHERE id = :id"),
            {"h": forged_hash, "id": victim.id},
        )

    result = await _verify(db)
    assert result.status == "compromised"
    assert result.broken_entry_id == ids[2]


# --- append-only on PostgreSQL ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_trails SET actor = 'mallory'",
        "UPDATE audit_trails SET after = NULL WHERE id = (SELECT min(id) FROM audit_trails)",
        "DELETE FROM audit_trails",
        "DELETE FROM audit_trails WHERE id = (SELECT max(id) FROM audit_trails)",
        "TRUNCATE audit_trails",
    ],
)
async def test_postgres_refuses_to_change_the_ledger(db: Database, statement: str) -> None:
    ids = await _write(db, 3)
    with pytest.raises(DBAPIError) as caught:
        async with db.engine.begin() as conn:
            await conn.execute(text(statement))
    assert "append-only" in str(caught.value)

    assert [e.id for e in await _entries(db)] == ids
    result = await _verify(db)
    assert result.status == "intact"
    assert result.checked == 3


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgres_refuses_changes_through_the_orm_too(db: Database) -> None:
    await _write(db, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work(db) as session:
            entry = await session.scalar(select(AuditTrail))
            assert entry is not None
            entry.actor = "mallory"
    [entry] = await _entries(db)
    assert entry.actor == ACTOR.label


# --- concurrent writers -----------------------------------------------------------------


async def test_concurrent_writers_keep_one_unbroken_chain(db: Database) -> None:
    writers = 20

    async def write_one(n: int) -> int:
        async with unit_of_work(db) as session:
            entry = await record_audit(
                session,
                actor=Actor.system(f"writer-{n}"),
                action="test.concurrent",
                entity_type="thing",
                entity_id=n,
                after={"n": n},
            )
            return entry.id

    ids = await asyncio.gather(*(write_one(n) for n in range(writers)))

    entries = await _entries(db)
    assert len(set(ids)) == writers
    assert len(entries) == writers
    assert sorted(e.entity_id for e in entries if e.entity_id is not None) == sorted(
        str(n) for n in range(writers)
    )
    assert len({e.prev_hash for e in entries}) == writers
    assert entries[0].prev_hash == GENESIS_HASH
    result = await _verify(db)
    assert result.status == "intact"
    assert result.checked == writers


async def test_concurrent_multi_entry_transactions_do_not_interleave(db: Database) -> None:
    """Each transaction's entries stay adjacent: the lock is held until commit."""

    async def write_three(n: int) -> None:
        async with unit_of_work(db) as session:
            for step in range(3):
                await record_audit(
                    session,
                    actor=ACTOR,
                    action="test.batch",
                    entity_type="batch",
                    entity_id=n,
                    after={"step": step},
                )

    await asyncio.gather(*(write_three(n) for n in range(8)))

    entries = await _entries(db)
    assert len(entries) == 24
    batches = [e.entity_id for e in entries]
    for start in range(0, 24, 3):
        assert len(set(batches[start : start + 3])) == 1
    assert (await _verify(db)).status == "intact"


# --- property: tampering any field of any entry is found at that entry ------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=20,
)
_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_entry = st.fixed_dictionaries(
    {
        "actor": st.builds(
            Actor,
            label=_text.filter(bool),
            user_id=st.none() | st.integers(min_value=1, max_value=2**31 - 2),
        ),
        "action": _text,
        "entity_type": _text,
        "entity_id": st.none() | _text | st.integers(min_value=0, max_value=10**9),
        "before": st.none() | st.dictionaries(_text, _json, max_size=4),
        "after": st.none() | st.dictionaries(_text, _json, max_size=4),
    }
)
TAMPERABLE = (
    "created_at",
    "actor_id",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "before",
    "after",
    "prev_hash",
    "entry_hash",
)


def _tampered(column: str, value: Any) -> Any:
    """A value for ``column`` that differs from ``value``."""
    if column == "created_at":
        return value + timedelta(microseconds=1)
    if column == "actor_id":
        return 1 if value is None else value + 1
    if column in ("before", "after"):
        return {"tampered": [value]}
    if column in ("prev_hash", "entry_hash"):
        return hashlib.sha256(value.encode()).hexdigest()
    return "tampered" if value is None else value + "~"


async def _empty_ledger(db: Database) -> None:
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            # As a superuser could: switch the append-only trigger off for this transaction.
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("DELETE FROM audit_trails"))


async def _ledger_scenario(
    url: str, entries: list[dict[str, Any]], tamper: tuple[int, str] | None
) -> None:
    db = Database.from_url(url)
    try:
        await _empty_ledger(db)
        for values in entries:
            async with unit_of_work(db) as session:
                await record_audit(session, **values)
        stored = await _entries(db)
        assert len(stored) == len(entries)

        if tamper is None:
            result = await _verify(db)
            assert result.status == "intact", result
            assert result.checked == len(entries)
            return

        index, column = tamper
        victim = stored[index % len(stored)]
        async with db.engine.begin() as conn:
            if not db.is_sqlite:
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                update(AuditTrail.__table__)
                .where(AuditTrail.__table__.c.id == victim.id)
                .values({column: _tampered(column, getattr(victim, column))})
            )
        result = await _verify(db)
        assert result.status == "compromised"
        assert result.broken_entry_id == victim.id, (column, result)
        assert result.checked == stored.index(victim)
    finally:
        await _empty_ledger(db)
        await db.dispose()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entries=st.lists(_entry, min_size=1, max_size=6),
    tamper=st.none() | st.tuples(st.integers(min_value=0), st.sampled_from(TAMPERABLE)),
)
def test_property_verify_names_exactly_the_tampered_entry(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    entries: list[dict[str, Any]],
    tamper: tuple[int, str] | None,
) -> None:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / f"{uuid4().hex}.db"
        shutil.copyfile(template, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
    asyncio.run(_ledger_scenario(url, entries, tamper))
