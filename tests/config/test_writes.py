"""ConfigService writes: versions, change log, audit ledger, secrets, revert, deactivate,
validation of scopes, windows and values, registry updates, and concurrent writers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from jarvis.audit.models import AuditTrail
from jarvis.config.models import ConfigChangeLog, ConfigRegistry, ConfigValue
from jarvis.config.registry import RegistryChanges
from jarvis.config.service import ConfigService, SetOutcome
from jarvis.core.identity import Actor
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from jarvis.kit.clock import utcnow
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_agent, create_personas

KEY = "agent.timeout_seconds"  # every scope; number in (0, 3600]; default 30
MASK = "********"
SECRET = "s3cr3t-value-do-not-leak"
SECRET_KEY = "test.api_token"
ALICE = Actor("alice@example.com", user_id=4201)
ADMIN = Scope(persona="admin")


@dataclass
class World:
    db: Database
    config: ConfigService
    agent: int


@pytest.fixture
async def world(db: Database) -> World:
    config = config_service(db, poll_seconds=0)
    await create_personas(db)
    agent = (await create_agent(db)).id
    return World(db, config, agent)


async def put(
    w: World,
    value: Any,
    scope: Scope = GLOBAL,
    *,
    key: str = KEY,
    actor: Actor = TEST_ACTOR,
    reason: str | None = None,
    effective_from: datetime | None = None,
    effective_to: datetime | None = None,
) -> ConfigValue:
    async with unit_of_work(w.db) as session:
        outcome = await w.config.set_value(
            session,
            key,
            value,
            scope,
            actor=actor,
            reason=reason,
            effective_from=effective_from,
            effective_to=effective_to,
        )
    assert outcome.value is not None
    return outcome.value


async def logs(db: Database, key: str = KEY, *, action: str | None = None) -> list[ConfigChangeLog]:
    async with unit_of_work(db, write=False) as session:
        query = select(ConfigChangeLog).where(ConfigChangeLog.config_key == key)
        if action is not None:
            query = query.where(ConfigChangeLog.action == action)
        return list((await session.scalars(query.order_by(ConfigChangeLog.id))).all())


async def audits(db: Database, action: str) -> list[AuditTrail]:
    async with unit_of_work(db, write=False) as session:
        query = select(AuditTrail).where(AuditTrail.action == action).order_by(AuditTrail.id)
        return list((await session.scalars(query)).all())


async def stored(db: Database, key: str = KEY) -> list[ConfigValue]:
    async with unit_of_work(db, write=False) as session:
        query = select(ConfigValue).where(ConfigValue.config_key == key).order_by(ConfigValue.id)
        return list((await session.scalars(query)).all())


async def register_secret(w: World) -> None:
    async with unit_of_work(w.db) as session:
        await w.config.register_key(
            session,
            key=SECRET_KEY,
            description="A token for a test integration.",
            schema={"type": "string"},
            default="",
            scopes=["global", "persona"],
            secret=True,
            requires_approval=False,
            actor=TEST_ACTOR,
        )


# --- versions, change log, audit ----------------------------------------------------------


async def test_versions_are_consecutive_per_key_and_exact_scope(world: World) -> None:
    both = Scope("admin", world.agent)
    writes = [
        (GLOBAL, 1),
        (ADMIN, 2),
        (GLOBAL, 3),
        (both, 4),
        (Scope(agent_id=world.agent), 5),
        (ADMIN, 6),
        (GLOBAL, 7),
        (both, 8),
    ]
    versions = [(scope, (await put(world, value, scope)).version) for scope, value in writes]
    assert versions == [
        (GLOBAL, 1),
        (ADMIN, 1),
        (GLOBAL, 2),
        (both, 1),
        (Scope(agent_id=world.agent), 1),
        (ADMIN, 2),
        (GLOBAL, 3),
        (both, 2),
    ]
    # Another key counts on its own.
    assert (await put(world, 5, key="agent.max_retries")).version == 1

    async with unit_of_work(world.db, write=False) as session:
        rows, total = await world.config.versions(session, KEY, scope=GLOBAL, limit=10, offset=0)
    assert total == 3
    assert [(r.version, r.value) for r in rows] == [(3, 7), (2, 3), (1, 1)]
    assert all(r.scope_key == GLOBAL.key and r.scope_rank == 0 for r in rows)
    assert {(r.scope_key, r.scope_rank) for r in await stored(world.db) if r.persona} == {
        (ADMIN.key, 1),
        (both.key, 3),
    }


async def test_every_set_writes_the_change_log(world: World) -> None:
    first = await put(world, 10, actor=ALICE, reason="first try")
    second = await put(world, 20, actor=ALICE, reason="too short")
    await put(world, 7, ADMIN, reason="admins are impatient")

    rows = await logs(world.db, action="set")
    got = [
        (r.old_value, r.new_value, r.version, r.value_id, r.performed_by, r.performed_by_id)
        for r in rows
    ]
    assert got == [
        (None, 10, 1, first.id, ALICE.label, ALICE.user_id),
        (10, 20, 2, second.id, ALICE.label, ALICE.user_id),
        (None, 7, 1, rows[2].value_id, TEST_ACTOR.label, None),
    ]
    assert [r.reason for r in rows] == ["first try", "too short", "admins are impatient"]
    assert [r.scope_identifiers for r in rows] == [{}, {}, {"persona": "admin"}]
    assert rows[2].persona == "admin"
    assert rows[1].effective_from == second.effective_from
    assert rows[1].effective_to is None


async def test_the_old_value_is_the_one_live_at_that_scope(world: World) -> None:
    await put(world, 10)
    await put(world, 99, effective_from=utcnow() + timedelta(hours=1))  # not live yet
    await put(world, 20)
    assert [(r.old_value, r.new_value) for r in await logs(world.db)] == [
        (None, 10),
        (10, 99),
        (10, 20),
    ]


async def test_every_set_writes_an_audit_entry(world: World) -> None:
    first = await put(world, 10, actor=ALICE, reason="first try")
    second = await put(world, 20, actor=ALICE, reason="too short")

    entries = await audits(world.db, "config.set")
    mine = [e for e in entries if e.entity_id in {str(first.id), str(second.id)}]
    assert [e.entity_id for e in mine] == [str(first.id), str(second.id)]
    assert all(e.entity_type == "config_value" for e in mine)
    assert all((e.actor, e.actor_id) == (ALICE.label, ALICE.user_id) for e in mine)
    assert mine[0].before is None
    assert mine[0].after is not None
    assert mine[0].after["value"] == 10
    assert mine[0].after["reason"] == "first try"
    assert (mine[0].after["key"], mine[0].after["version"], mine[0].after["scope"]) == (KEY, 1, {})
    assert mine[1].before is not None
    assert mine[1].after is not None
    assert (mine[1].before["value"], mine[1].before["version"]) == (10, 1)
    assert (mine[1].after["value"], mine[1].after["version"]) == (20, 2)


async def test_secret_values_are_masked_in_change_logs_and_audit(world: World) -> None:
    await register_secret(world)
    await put(world, SECRET, key=SECRET_KEY)
    await put(world, SECRET + "-2", key=SECRET_KEY)
    await put(world, SECRET + "-admin", ADMIN, key=SECRET_KEY)
    async with unit_of_work(world.db) as session:
        await world.config.revert(session, SECRET_KEY, GLOBAL, 1, actor=TEST_ACTOR)
    async with unit_of_work(world.db) as session:
        await world.config.deactivate(session, SECRET_KEY, ADMIN, 1, actor=TEST_ACTOR)

    rows = await logs(world.db, SECRET_KEY)
    assert [r.action for r in rows] == [
        "registry.create",
        "set",
        "set",
        "set",
        "revert",
        "deactivate",
    ]
    assert rows[0].new_value["default"] == MASK
    assert [(r.old_value, r.new_value) for r in rows[1:]] == [
        (None, MASK),
        (MASK, MASK),
        (None, MASK),
        (MASK, MASK),
        (MASK, None),
    ]

    async with unit_of_work(world.db, write=False) as session:
        entries = (await session.scalars(select(AuditTrail))).all()
        change_logs = (await session.scalars(select(ConfigChangeLog))).all()
    dumped = json.dumps([[e.before, e.after] for e in entries])
    dumped += json.dumps([[r.old_value, r.new_value] for r in change_logs], default=str)
    assert SECRET not in dumped
    secret_entries = [
        e
        for e in entries
        if e.action in {"config.set", "config.revert", "config.deactivate"}
        and ((e.after or {}).get("key") == SECRET_KEY or (e.before or {}).get("key") == SECRET_KEY)
    ]
    assert len(secret_entries) == 5
    assert all((e.after or {}).get("value", MASK) == MASK for e in secret_entries)
    assert all((e.before or {}).get("value", MASK) == MASK for e in secret_entries)
    # The service itself still reads the real value.
    assert await world.config.get(SECRET_KEY) == SECRET
    assert await world.config.get(SECRET_KEY, ADMIN) == SECRET


# --- revert and deactivate ----------------------------------------------------------------


async def test_revert_stores_the_old_value_as_a_new_version(world: World) -> None:
    for value in (10, 20, 30):
        await put(world, value)
    async with unit_of_work(world.db) as session:
        outcome = await world.config.revert(session, KEY, GLOBAL, 1, actor=ALICE)
    assert outcome.request is None
    assert outcome.value is not None
    assert (outcome.value.version, outcome.value.value) == (4, 10)
    assert await world.config.get(KEY) == 10
    assert [(r.version, r.value, r.is_active) for r in await stored(world.db)] == [
        (1, 10, True),
        (2, 20, True),
        (3, 30, True),
        (4, 10, True),
    ]
    log = (await logs(world.db))[-1]
    assert (log.action, log.old_value, log.new_value, log.version) == ("revert", 30, 10, 4)
    assert log.reason == "revert to version 1"
    assert log.performed_by == ALICE.label
    entry = (await audits(world.db, "config.revert"))[-1]
    assert entry.entity_id == str(outcome.value.id)


async def test_revert_of_a_version_that_does_not_exist_is_404(world: World) -> None:
    await put(world, 10)
    for scope, version in ((GLOBAL, 2), (ADMIN, 1)):
        with pytest.raises(NotFound):
            async with unit_of_work(world.db) as session:
                await world.config.revert(session, KEY, scope, version, actor=TEST_ACTOR)
    assert len(await stored(world.db)) == 1


async def test_deactivate_flips_is_active_and_stamps_deactivated_at(world: World) -> None:
    await put(world, 10)
    await put(world, 20)
    before = utcnow()
    async with unit_of_work(world.db) as session:
        outcome = await world.config.deactivate(
            session, KEY, GLOBAL, 2, actor=ALICE, reason="too long"
        )
    assert outcome.value is not None
    rows = await stored(world.db)
    assert [(r.version, r.is_active) for r in rows] == [(1, True), (2, False)]
    assert rows[1].deactivated_at is not None
    assert rows[1].deactivated_at >= before
    assert rows[0].deactivated_at is None
    assert await world.config.get(KEY) == 10

    log = (await logs(world.db))[-1]
    assert (log.action, log.old_value, log.new_value) == ("deactivate", 20, None)
    assert (log.version, log.value_id, log.reason) == (2, rows[1].id, "too long")
    entry = (await audits(world.db, "config.deactivate"))[-1]
    assert entry.entity_id == str(rows[1].id)
    assert entry.after == {"isActive": False, "reason": "too long"}
    assert entry.before is not None
    assert entry.before["value"] == 20

    with pytest.raises(Conflict) as raised:
        async with unit_of_work(world.db) as session:
            await world.config.deactivate(session, KEY, GLOBAL, 2, actor=ALICE)
    assert raised.value.status == 409
    assert len(await logs(world.db, action="deactivate")) == 1

    with pytest.raises(NotFound):
        async with unit_of_work(world.db) as session:
            await world.config.deactivate(session, KEY, GLOBAL, 3, actor=ALICE)


# --- validation ---------------------------------------------------------------------------


async def rejected(w: World, *args: Any, **kwargs: Any) -> ValidationFailed:
    """Attempt ``set_value``; answer its 422, after checking nothing was stored."""
    before = len(await stored(w.db, kwargs.get("key", KEY)))
    key = kwargs.pop("key", KEY)
    with pytest.raises(ValidationFailed) as raised:
        async with unit_of_work(w.db) as session:
            await w.config.set_value(session, key, *args, actor=TEST_ACTOR, **kwargs)
    assert len(await stored(w.db, key)) == before
    assert raised.value.status == 422
    return raised.value


async def test_a_scope_the_key_does_not_allow_is_rejected(world: World) -> None:
    error = await rejected(world, 10, ADMIN, key="ratelimit.login_attempts_per_minute")
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["scope"]
    assert "cannot be set at persona scope; allowed: global" in error.errors[0]["msg"]

    colours = {
        "primary": "#000000",
        "secondary": "#000000",
        "accent": "#000000",
        "background": "#000000",
        "glassmorphism": "#000000",
    }
    error = await rejected(world, colours, Scope(agent_id=world.agent), key="persona.colors")
    assert "allowed: global, persona" in error.detail


async def test_an_unknown_persona_or_agent_in_the_scope_is_rejected(world: World) -> None:
    error = await rejected(world, 10, Scope(persona="nobody"))
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["scope", "persona"]
    assert "unknown persona 'nobody'" in error.detail

    error = await rejected(world, 10, Scope("admin", world.agent + 1000))
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["scope", "agentId"]
    assert f"no agent with id {world.agent + 1000}" in error.detail


async def test_a_window_that_ends_before_it_starts_is_rejected(world: World) -> None:
    start = utcnow() + timedelta(hours=1)
    for end in (start, start - timedelta(minutes=1)):
        error = await rejected(world, 10, effective_from=start, effective_to=end)
        assert error.errors is not None
        assert error.errors[0]["loc"] == ["effectiveTo"]
    # Without a start, the window starts now: an end in the past is rejected too.
    error = await rejected(world, 10, effective_to=utcnow() - timedelta(minutes=1))
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["effectiveTo"]


async def test_a_start_in_the_past_is_rejected(world: World) -> None:
    error = await rejected(world, 10, effective_from=utcnow() - timedelta(minutes=1))
    assert error.errors is not None
    assert error.errors[0]["loc"] == ["effectiveFrom"]
    assert "in the past" in error.detail


async def test_a_start_a_moment_ago_counts_as_now(world: World) -> None:
    asked = utcnow() - timedelta(seconds=1)
    row = await put(world, 10, effective_from=asked)
    assert row.effective_from > asked
    assert await world.config.get(KEY) == 10


async def test_a_value_failing_the_schema_is_rejected_with_json_path_and_rule(
    world: World,
) -> None:
    error = await rejected(world, -1)
    assert error.errors is not None
    assert [(e["jsonPath"], e["rule"]) for e in error.errors] == [("$", "exclusiveMinimum")]
    assert error.errors[0]["loc"] == ["value"]
    assert "agent.timeout_seconds" in error.detail

    error = await rejected(world, "thirty")
    assert error.errors is not None
    assert [e["rule"] for e in error.errors] == ["type"]

    error = await rejected(
        world,
        {"primary": "not a colour", "secondary": "#000", "accent": "#000", "extra": 1},
        key="persona.colors",
    )
    assert error.errors is not None
    found = {(e["jsonPath"], e["rule"]) for e in error.errors}
    assert ("$.primary", "pattern") in found
    assert ("$", "required") in found
    assert ("$", "additionalProperties") in found
    primary = next(e for e in error.errors if e["jsonPath"] == "$.primary")
    assert primary["loc"] == ["value", "primary"]
    assert "rule 'pattern' at $.primary" in primary["msg"]


async def test_an_unknown_key_is_404_naming_the_closest_keys(world: World) -> None:
    with pytest.raises(NotFound) as raised:
        async with unit_of_work(world.db) as session:
            await world.config.set_value(session, "agent.timeout_secs", 10, actor=TEST_ACTOR)
    assert "no configuration key 'agent.timeout_secs'" in raised.value.detail
    assert "'agent.timeout_seconds'" in raised.value.detail
    with pytest.raises(NotFound) as raised:
        await world.config.get("agent.timeout_secs")
    assert "did you mean" in raised.value.detail
    assert "'agent.timeout_seconds'" in raised.value.detail
    with pytest.raises(NotFound) as raised:
        await world.config.get("zzzz")
    assert "did you mean" not in raised.value.detail


async def test_revert_refuses_a_scope_the_key_no_longer_allows(world: World) -> None:
    # BUG (service.py, ConfigService.revert): revert does not call check_scope, so a
    # version stored while a scope was allowed comes back live after the scope is removed.
    key = "agent.max_retries"
    await put(world, 3, ADMIN, key=key)
    async with unit_of_work(world.db) as session:
        await world.config.deactivate(session, key, ADMIN, 1, actor=TEST_ACTOR)
    info = await update(world, RegistryChanges(scopes=["global"]), key=key)
    assert info.scopes == ("global",)

    with pytest.raises(ValidationFailed) as raised:
        async with unit_of_work(world.db) as session:
            await world.config.revert(session, key, ADMIN, 1, actor=TEST_ACTOR)
    assert "cannot be set at persona scope" in raised.value.detail
    assert [r.version for r in await stored(world.db, key)] == [1]
    assert await world.config.get(key, ADMIN) == 2


# --- the registry -------------------------------------------------------------------------


async def update(
    w: World, changes: RegistryChanges, *, key: str = KEY, if_match: int | None = None
) -> Any:
    async with unit_of_work(w.db) as session:
        return await w.config.update_key(session, key, changes, actor=TEST_ACTOR, if_match=if_match)


async def revision(db: Database, key: str = KEY) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(
            await session.scalar(select(ConfigRegistry.revision).where(ConfigRegistry.key == key))
            or 0
        )


async def test_a_schema_that_would_break_stored_values_is_refused(world: World) -> None:
    await put(world, 100)
    await put(world, 50, ADMIN)
    await put(world, 900, ADMIN, effective_from=utcnow() + timedelta(days=1))  # scheduled
    stricter = {"type": "number", "exclusiveMinimum": 0, "maximum": 60}

    with pytest.raises(ValidationFailed) as raised:
        await update(world, RegistryChanges(schema=stricter))
    errors = raised.value.errors
    assert errors is not None
    assert len(errors) == 2
    assert all(e["rule"] == "maximum" and e["loc"] == ["schema"] for e in errors)
    messages = " ".join(e["msg"] for e in errors)
    assert "version 1 at global" in messages
    assert "version 2 at persona=admin" in messages
    assert "2 stored value(s)" in raised.value.detail
    assert await revision(world.db) == 1

    # Once the offending values are gone, the same schema is accepted.
    for scope, version in ((GLOBAL, 1), (ADMIN, 2)):
        async with unit_of_work(world.db) as session:
            await world.config.deactivate(session, KEY, scope, version, actor=TEST_ACTOR)
    info = await update(world, RegistryChanges(schema=stricter))
    assert info.schema == stricter
    assert info.revision == 2
    assert await world.config.get(KEY, ADMIN) == 50


async def test_a_schema_or_default_that_rejects_the_default_is_refused(world: World) -> None:
    with pytest.raises(ValidationFailed) as raised:
        await update(world, RegistryChanges(schema={"type": "number", "maximum": 10}))
    assert raised.value.errors is not None
    assert raised.value.errors[0]["loc"][:1] == ["default"]
    with pytest.raises(ValidationFailed):
        await update(world, RegistryChanges(default=-5, default_set=True))
    assert await revision(world.db) == 1
    info = await update(world, RegistryChanges(default=45, default_set=True))
    assert (info.default, info.revision) == (45, 2)
    assert await world.config.get(KEY) == 45


async def test_update_key_with_a_stale_if_match_is_refused(world: World) -> None:
    info = await update(world, RegistryChanges(description="first edit"), if_match=1)
    assert info.revision == 2
    with pytest.raises(PreconditionFailed) as raised:
        await update(world, RegistryChanges(description="lost update"), if_match=1)
    assert raised.value.status == 412
    assert "revision 2, not 1" in raised.value.detail
    async with unit_of_work(world.db, write=False) as session:
        row = await session.get(ConfigRegistry, KEY)
    assert row is not None
    assert (row.description, row.revision) == ("first edit", 2)
    assert len(await logs(world.db, action="registry.update")) == 1
    assert len(await audits(world.db, "config.registry.update")) == 1


async def test_a_schema_refusal_does_not_echo_a_secret_value(world: World) -> None:
    # BUG (service.py, ConfigService._check_values_against): the 422 lists jsonschema's
    # messages, which quote the stored value ("'<secret>' is too long"), unmasked.
    await register_secret(world)
    await put(world, SECRET, key=SECRET_KEY)
    with pytest.raises(ValidationFailed) as raised:
        await update(
            world, RegistryChanges(schema={"type": "string", "maxLength": 3}), key=SECRET_KEY
        )
    assert raised.value.errors is not None
    assert raised.value.errors[0]["rule"] == "maxLength"
    assert SECRET not in raised.value.detail
    assert SECRET not in json.dumps(raised.value.errors)


async def test_a_revert_refusal_does_not_echo_a_secret_value(world: World) -> None:
    # BUG (service.py, ConfigService.revert -> validation.validate_value): reverting to a
    # secret version that breaks today's schema answers 422 quoting the secret.
    await register_secret(world)
    await put(world, SECRET, key=SECRET_KEY)
    async with unit_of_work(world.db) as session:
        await world.config.deactivate(session, SECRET_KEY, GLOBAL, 1, actor=TEST_ACTOR)
    await update(world, RegistryChanges(schema={"type": "string", "maxLength": 3}), key=SECRET_KEY)
    with pytest.raises(ValidationFailed) as raised:
        async with unit_of_work(world.db) as session:
            await world.config.revert(session, SECRET_KEY, GLOBAL, 1, actor=TEST_ACTOR)
    assert SECRET not in raised.value.detail
    assert SECRET not in json.dumps(raised.value.errors)


async def test_register_key_twice_is_a_conflict(world: World) -> None:
    await register_secret(world)
    with pytest.raises(Conflict):
        await register_secret(world)
    assert len(await audits(world.db, "config.registry.create")) == 1


# --- concurrency (PostgreSQL) -------------------------------------------------------------

WRITERS = 8


def postgres_only(backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE; the race is PostgreSQL's")


async def concurrent_set(db: Database, value: Any, scope: Scope) -> SetOutcome:
    # One service per writer, as if every writer were its own app instance.
    config = config_service(db, poll_seconds=0)
    async with unit_of_work(db) as session:
        return await config.set_value(session, KEY, value, scope, actor=TEST_ACTOR)


async def test_concurrent_sets_at_one_scope_get_consecutive_versions(
    world: World, backend: str
) -> None:
    postgres_only(backend)
    outcomes = await asyncio.gather(
        *(concurrent_set(world.db, 100 + i, GLOBAL) for i in range(WRITERS))
    )
    assert sorted(o.value.version for o in outcomes if o.value) == list(range(1, WRITERS + 1))

    rows = await stored(world.db)
    assert sorted(r.version for r in rows) == list(range(1, WRITERS + 1))
    assert sorted(r.value for r in rows) == [100 + i for i in range(WRITERS)]
    change_logs = await logs(world.db, action="set")
    assert len(change_logs) == WRITERS
    assert sorted(r.version or 0 for r in change_logs) == list(range(1, WRITERS + 1))
    # Each log row names the value its writer stored, and logs follow commit order.
    by_id = {r.id: r for r in rows}
    assert all(by_id[r.value_id or 0].value == r.new_value for r in change_logs)
    assert [r.version for r in change_logs] == list(range(1, WRITERS + 1))
    # Every writer saw its predecessor's value as the old value: none was lost.
    assert [r.old_value for r in change_logs[1:]] == [r.new_value for r in change_logs[:-1]]
    assert await world.config.get(KEY) == change_logs[-1].new_value


async def test_concurrent_sets_at_different_scopes_count_versions_per_scope(
    world: World, backend: str
) -> None:
    postgres_only(backend)
    scopes = [
        GLOBAL,
        ADMIN,
        Scope(persona="underwriter"),
        Scope(agent_id=world.agent),
        Scope("admin", world.agent),
        Scope(workflow_id=3),
    ]
    rounds = 3
    await asyncio.gather(
        *(
            concurrent_set(world.db, 10 * n + i, scope)
            for i in range(rounds)
            for n, scope in enumerate(scopes, start=1)
        )
    )
    rows = await stored(world.db)
    assert len(rows) == rounds * len(scopes)
    for scope in scopes:
        versions = sorted(r.version for r in rows if r.scope_key == scope.key)
        assert versions == list(range(1, rounds + 1)), scope
    async with unit_of_work(world.db, write=False) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ConfigChangeLog)
            .where(ConfigChangeLog.config_key == KEY, ConfigChangeLog.action == "set")
        )
    assert count == rounds * len(scopes)


async def test_deactivating_one_version_twice_at_once_succeeds_once(world: World) -> None:
    await put(world, 10)
    await put(world, 20)

    async def attempt() -> SetOutcome:
        config = config_service(world.db, poll_seconds=0)
        async with unit_of_work(world.db) as session:
            return await config.deactivate(session, KEY, GLOBAL, 2, actor=TEST_ACTOR)

    results = await asyncio.gather(attempt(), attempt(), return_exceptions=True)
    assert sum(isinstance(r, SetOutcome) for r in results) == 1, results
    assert sum(isinstance(r, Conflict) for r in results) == 1, results
    assert len(await logs(world.db, action="deactivate")) == 1
    assert await world.config.get(KEY) == 10
