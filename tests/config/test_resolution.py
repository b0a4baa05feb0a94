"""ConfigService reads: precedence, matching, effective windows, versions, defaults,
deactivation, explanations, typed access and the resolution cache."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pydantic
import pytest
from sqlalchemy import func, select

from jarvis.config.models import ConfigChangeLog, ConfigValue
from jarvis.config.service import ConfigService
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import CapturingBus
from jarvis.kit.clock import utcnow
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_agent, create_personas

KEY = "agent.timeout_seconds"  # every scope allowed; default 30
DEFAULT = 30
WORKFLOW = 7
OTHER_WORKFLOW = 8


@dataclass
class World:
    db: Database
    config: ConfigService
    bus: CapturingBus
    agent: int
    other_agent: int


@pytest.fixture
async def world(db: Database) -> World:
    bus = CapturingBus()
    config = config_service(db, bus=bus, poll_seconds=0)
    await create_personas(db)
    agent = (await create_agent(db)).id
    other_agent = (await create_agent(db)).id
    bus.published.clear()
    return World(db, config, bus, agent, other_agent)


async def put(
    w: World,
    value: Any,
    scope: Scope = GLOBAL,
    *,
    key: str = KEY,
    effective_from: datetime | None = None,
    effective_to: datetime | None = None,
) -> ConfigValue:
    """Store ``value`` through the service in its own committed unit of work."""
    async with unit_of_work(w.db) as session:
        outcome = await w.config.set_value(
            session,
            key,
            value,
            scope,
            actor=TEST_ACTOR,
            effective_from=effective_from,
            effective_to=effective_to,
        )
    assert outcome.value is not None
    return outcome.value


async def deactivate(w: World, scope: Scope, version: int, *, key: str = KEY) -> ConfigValue:
    async with unit_of_work(w.db) as session:
        outcome = await w.config.deactivate(session, key, scope, version, actor=TEST_ACTOR)
    assert outcome.value is not None
    return outcome.value


async def wait_until(instant: datetime) -> None:
    """Sleep (for real) until just after ``instant``."""
    remaining = (instant - utcnow()).total_seconds()
    await asyncio.sleep(max(remaining, 0) + 0.15)


# --- precedence -------------------------------------------------------------------------


async def test_workflow_beats_agent_beats_persona_beats_global(world: World) -> None:
    await put(world, 10)
    await put(world, 20, Scope(persona="admin"))
    await put(world, 30, Scope(agent_id=world.agent))
    await put(world, 40, Scope(workflow_id=WORKFLOW))

    cases = [
        (Scope("admin", world.agent, WORKFLOW), 40, "workflow"),
        (Scope(None, None, WORKFLOW), 40, "workflow"),
        (Scope("admin", world.agent, OTHER_WORKFLOW), 30, "agent"),
        (Scope("underwriter", world.agent), 30, "agent"),
        (Scope("admin", world.other_agent), 20, "persona"),
        (Scope("admin"), 20, "persona"),
        (Scope("underwriter", world.other_agent, OTHER_WORKFLOW), 10, "global"),
        (GLOBAL, 10, "global"),
    ]
    for scope, value, source in cases:
        resolution = await world.config.resolve(KEY, scope)
        assert (resolution.value, resolution.source) == (value, source), scope
        assert await world.config.get(KEY, scope) == value


async def test_a_newer_version_at_a_broader_scope_does_not_beat_a_narrower_scope(
    world: World,
) -> None:
    await put(world, 20, Scope(persona="admin"))
    for value in (11, 12, 13):
        await put(world, value)
    resolution = await world.config.resolve(KEY, Scope(persona="admin"))
    assert (resolution.value, resolution.version, resolution.source) == (20, 1, "persona")
    assert (await world.config.resolve(KEY, GLOBAL)).version == 3


async def test_a_persona_breaks_the_tie_inside_a_level(world: World) -> None:
    # agent level: persona + agent (rank 3) beats agent only (rank 2)
    await put(world, 30, Scope(agent_id=world.agent))
    await put(world, 31, Scope("admin", world.agent))
    # workflow level: persona + workflow (rank 5) beats workflow only (rank 4)
    await put(world, 40, Scope(workflow_id=WORKFLOW))
    await put(world, 41, Scope("admin", None, WORKFLOW))

    config = world.config
    assert await config.get(KEY, Scope("admin", world.agent)) == 31
    assert await config.get(KEY, Scope("underwriter", world.agent)) == 30
    assert await config.get(KEY, Scope(agent_id=world.agent)) == 30
    assert await config.get(KEY, Scope("admin", None, WORKFLOW)) == 41
    assert await config.get(KEY, Scope("underwriter", None, WORKFLOW)) == 40
    # The persona tie-break never lifts a value above the next level.
    assert await config.get(KEY, Scope("admin", world.agent, WORKFLOW)) == 41
    assert await config.get(KEY, Scope("underwriter", world.agent, WORKFLOW)) == 40
    resolution = await config.resolve(KEY, Scope("admin", world.agent))
    assert resolution.value_scope == Scope("admin", world.agent)
    assert resolution.source == "agent"


async def test_agent_and_workflow_value_beats_workflow_and_persona_value(world: World) -> None:
    await put(world, 50, Scope(None, world.agent, WORKFLOW))  # rank 6
    await put(world, 41, Scope("admin", None, WORKFLOW))  # rank 5
    await put(world, 31, Scope("admin", world.agent))  # rank 3
    assert await world.config.get(KEY, Scope("admin", world.agent, WORKFLOW)) == 50
    await put(world, 70, Scope("admin", world.agent, WORKFLOW))  # rank 7
    assert await world.config.get(KEY, Scope("admin", world.agent, WORKFLOW)) == 70
    assert await world.config.get(KEY, Scope("underwriter", world.agent, WORKFLOW)) == 50


# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "applies"),
    [
        ("admin+agent", True),
        ("admin+agent+workflow", True),
        ("admin", False),  # the value names an agent the read does not have
        ("agent", False),  # the value names a persona the read does not have
        ("underwriter+agent", False),
        ("admin+other_agent", False),
        ("global", False),
    ],
)
async def test_a_value_applies_only_when_every_member_it_sets_matches(
    world: World, read: str, applies: bool
) -> None:
    await put(world, 99, Scope("admin", world.agent))
    scopes = {
        "admin+agent": Scope("admin", world.agent),
        "admin+agent+workflow": Scope("admin", world.agent, WORKFLOW),
        "admin": Scope("admin"),
        "agent": Scope(agent_id=world.agent),
        "underwriter+agent": Scope("underwriter", world.agent),
        "admin+other_agent": Scope("admin", world.other_agent),
        "global": GLOBAL,
    }
    resolution = await world.config.resolve(KEY, scopes[read])
    assert resolution.value == (99 if applies else DEFAULT)
    assert resolution.source == ("agent" if applies else "default")
    candidates = await world.config.explain(KEY, scopes[read])
    assert len(candidates) == (1 if applies else 0)


# --- effective windows ------------------------------------------------------------------


async def test_a_scheduled_value_applies_from_its_effective_from(world: World) -> None:
    await put(world, 10)
    start = utcnow() + timedelta(hours=1)
    await put(world, 20, effective_from=start)

    assert await world.config.get(KEY) == 10
    assert await world.config.get(KEY, at=start - timedelta(microseconds=1)) == 10
    assert await world.config.get(KEY, at=start) == 20
    assert await world.config.get(KEY, at=start + timedelta(days=30)) == 20
    resolution = await world.config.resolve(KEY)
    assert resolution.valid_until == start


async def test_a_value_stops_applying_at_its_effective_to(world: World) -> None:
    await put(world, 10)
    end = utcnow() + timedelta(hours=1)
    await put(world, 20, Scope(persona="admin"), effective_to=end)

    scope = Scope(persona="admin")
    assert await world.config.get(KEY, scope) == 20
    assert await world.config.get(KEY, scope, at=end - timedelta(microseconds=1)) == 20
    assert await world.config.get(KEY, scope, at=end) == 10
    resolution = await world.config.resolve(KEY, scope)
    assert (resolution.effective_to, resolution.valid_until) == (end, end)


async def test_a_window_in_the_future_applies_only_inside_it(world: World) -> None:
    start = utcnow() + timedelta(hours=1)
    end = start + timedelta(hours=2)
    await put(world, 20, effective_from=start, effective_to=end)

    assert (await world.config.resolve(KEY)).source == "default"
    assert await world.config.get(KEY, at=start + timedelta(hours=1)) == 20
    assert await world.config.get(KEY, at=end) == DEFAULT


async def test_reads_in_the_past_see_what_applied_then(world: World) -> None:
    before_anything = utcnow() - timedelta(minutes=1)
    await put(world, 10)
    between = utcnow()
    await asyncio.sleep(0.01)  # so the next value starts strictly after ``between``
    await put(world, 20)

    assert await world.config.get(KEY) == 20
    assert await world.config.get(KEY, at=between) == 10
    past = await world.config.resolve(KEY, at=before_anything)
    assert (past.value, past.source, past.version) == (DEFAULT, "default", None)
    # A naive instant is taken as UTC.
    assert await world.config.get(KEY, at=between.replace(tzinfo=None)) == 10


async def test_the_highest_live_version_wins_inside_the_winning_scope(world: World) -> None:
    scope = Scope(persona="admin")
    await put(world, 1, scope)
    end = utcnow() + timedelta(hours=1)
    await put(world, 2, scope, effective_to=end)
    start = utcnow() + timedelta(hours=2)
    await put(world, 3, scope, effective_from=start)

    now = await world.config.resolve(KEY, scope)
    assert (now.value, now.version) == (2, 2)
    # version 2 has ended and version 3 has not begun: version 1 is back
    gap = await world.config.resolve(KEY, scope, at=end + timedelta(minutes=1))
    assert (gap.value, gap.version) == (1, 1)
    later = await world.config.resolve(KEY, scope, at=start)
    assert (later.value, later.version) == (3, 3)


async def test_the_registry_default_applies_when_nothing_is_live(world: World) -> None:
    resolution = await world.config.resolve(KEY, Scope("admin", world.agent, WORKFLOW))
    assert resolution.value == DEFAULT
    assert resolution.source == "default"
    assert (resolution.version, resolution.value_id, resolution.value_scope) == (None, None, None)
    assert resolution.valid_until is None
    assert await world.config.get("llm.model") == "gpt-4o-mini"


# --- deactivation -----------------------------------------------------------------------


async def test_deactivation_hides_a_value_now_but_not_in_reads_of_the_past(world: World) -> None:
    await put(world, 10)
    await put(world, 20)
    before = utcnow()
    await asyncio.sleep(0.01)  # deactivated_at strictly after ``before``
    row = await deactivate(world, GLOBAL, 2)
    assert row.is_active is False
    assert row.deactivated_at is not None
    assert row.deactivated_at > before

    now = await world.config.resolve(KEY)
    assert (now.value, now.version) == (10, 1)
    then = await world.config.resolve(KEY, at=before)
    assert (then.value, then.version) == (20, 2)
    assert await world.config.get(KEY, at=row.deactivated_at) == 10

    # With every version deactivated, the default applies again.
    await deactivate(world, GLOBAL, 1)
    assert (await world.config.resolve(KEY)).source == "default"
    assert await world.config.get(KEY, at=before) == 20


async def test_a_deactivated_schedule_never_applies(world: World) -> None:
    await put(world, 10)
    start = utcnow() + timedelta(hours=1)
    await put(world, 20, effective_from=start)
    assert (await world.config.resolve(KEY)).valid_until == start
    await deactivate(world, GLOBAL, 2)
    assert await world.config.get(KEY, at=start + timedelta(minutes=1)) == 10
    # Nothing else is scheduled, so the answer is good until the next write.
    assert (await world.config.resolve(KEY)).valid_until is None


# --- explain ----------------------------------------------------------------------------


async def test_explain_gives_every_applicable_value_a_status_and_a_reason(world: World) -> None:
    admin, agent = Scope(persona="admin"), Scope(agent_id=world.agent)
    workflow = Scope(workflow_id=WORKFLOW)
    await put(world, 1)
    await put(world, 2)
    await put(world, 3, admin)
    await put(world, 4, admin)
    ends = utcnow() + timedelta(hours=1)
    await put(world, 5, agent, effective_to=ends)
    starts = utcnow() + timedelta(hours=3)
    await put(world, 6, agent, effective_from=starts)
    await put(world, 7, workflow)
    await deactivate(world, workflow, 1)
    await put(world, 8, Scope(persona="underwriter"))  # does not apply to the read

    at = utcnow() + timedelta(hours=2)
    read = Scope("admin", world.agent, WORKFLOW)
    candidates = await world.config.explain(KEY, read, at=at)

    got = [(c.value, c.version, c.status) for c in candidates]
    assert got == [
        (7, 1, "inactive"),
        (6, 2, "scheduled"),
        (5, 1, "expired"),
        (4, 2, "winner"),
        (3, 1, "superseded"),
        (2, 2, "outranked"),
        (1, 1, "outranked"),
    ]
    reasons = {c.value: c.reason for c in candidates}
    assert reasons[7].startswith("deactivated at ")
    assert reasons[6] == f"takes effect at {starts.isoformat()}"
    assert reasons[5] == f"ended at {ends.isoformat()}"
    assert "persona scope: persona=admin" in reasons[4]
    assert reasons[3] == "version 2 is newer at this scope"
    assert reasons[2] == "a more specific scope wins: persona (persona=admin)"

    resolution = await world.config.resolve(KEY, read, at=at)
    winner = next(c for c in candidates if c.status == "winner")
    assert (resolution.value_id, resolution.value) == (winner.value_id, 4)


async def test_explain_without_at_explains_now(world: World) -> None:
    await put(world, 1)
    await put(world, 2, effective_from=utcnow() + timedelta(hours=1))
    statuses = [(c.value, c.status) for c in await world.config.explain(KEY)]
    assert statuses == [(2, "scheduled"), (1, "winner")]


# --- typed access -----------------------------------------------------------------------


class RetryPolicy(pydantic.BaseModel):
    attempts: int
    backoff: float


async def test_get_converts_with_as_type(world: World) -> None:
    value = await world.config.get(KEY, as_type=float)
    assert value == 30.0
    assert isinstance(value, float)
    await put(world, 2.5, Scope(persona="admin"))
    assert await world.config.get(KEY, Scope(persona="admin"), as_type=float) == 2.5
    with pytest.raises(pydantic.ValidationError):
        await world.config.get("llm.model", as_type=int)


async def test_get_builds_a_pydantic_model(world: World) -> None:
    async with unit_of_work(world.db) as session:
        await world.config.register_key(
            session,
            key="test.retry_policy",
            description="How a test retries.",
            schema={
                "type": "object",
                "properties": {"attempts": {"type": "integer"}, "backoff": {"type": "number"}},
                "required": ["attempts", "backoff"],
            },
            default={"attempts": 1, "backoff": 0},
            scopes=["global", "agent"],
            secret=False,
            requires_approval=False,
            actor=TEST_ACTOR,
        )
    policy = await world.config.get("test.retry_policy", as_type=RetryPolicy)
    assert policy == RetryPolicy(attempts=1, backoff=0.0)
    await put(world, {"attempts": 3, "backoff": 1.5}, key="test.retry_policy")
    policy = await world.config.get(
        "test.retry_policy", Scope(agent_id=world.agent), as_type=RetryPolicy
    )
    assert isinstance(policy, RetryPolicy)
    assert (policy.attempts, policy.backoff) == (3, 1.5)


# --- cache ------------------------------------------------------------------------------


async def change_log_count(db: Database) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(ConfigChangeLog)) or 0)


async def test_reads_are_served_from_the_cache_until_invalidated(world: World) -> None:
    await put(world, 10)
    assert await world.config.get(KEY) == 10
    # A row stored behind the service's back (no announcement) is not seen yet...
    async with unit_of_work(world.db) as session:
        session.add(
            ConfigValue(
                config_key=KEY,
                value=99,
                scope_identifiers={},
                scope_key=GLOBAL.key,
                scope_rank=GLOBAL.rank,
                version=2,
                created_by="tests",
            )
        )
    assert await world.config.get(KEY) == 10
    assert world.config.cache.lookup(KEY, GLOBAL) is not None
    # ...except by reads of an instant, which go to the database.
    assert await world.config.get(KEY, at=utcnow()) == 99
    world.config.invalidate([KEY])
    assert await world.config.get(KEY) == 99


async def test_a_cached_entry_expires_when_a_scheduled_value_starts(world: World) -> None:
    await put(world, 10)
    start = utcnow() + timedelta(seconds=2)
    await put(world, 20, effective_from=start)
    published, logged = len(world.bus.published), await change_log_count(world.db)

    assert await world.config.get(KEY) == 10
    entry = world.config.cache.lookup(KEY, GLOBAL)
    assert entry is not None
    assert entry.value == 10
    assert entry.expires == start.timestamp()

    await wait_until(start)
    assert await world.config.get(KEY) == 20
    resolution = await world.config.resolve(KEY)
    assert (resolution.value, resolution.version) == (20, 2)
    # No write happened in between: the cache expired on its own.
    assert len(world.bus.published) == published
    assert await change_log_count(world.db) == logged


async def test_a_cached_entry_expires_when_its_value_ends(world: World) -> None:
    await put(world, 10)
    scope = Scope(persona="admin")
    end = utcnow() + timedelta(seconds=2)
    await put(world, 20, scope, effective_to=end)
    published = len(world.bus.published)

    assert await world.config.get(KEY, scope) == 20
    entry = world.config.cache.lookup(KEY, scope)
    assert entry is not None
    assert entry.expires == end.timestamp()

    await wait_until(end)
    assert await world.config.get(KEY, scope) == 10
    assert (await world.config.resolve(KEY, scope)).source == "global"
    assert len(world.bus.published) == published


async def test_a_committed_write_invalidates_and_publishes(world: World) -> None:
    await put(world, 10)
    scope = Scope(persona="admin")
    assert await world.config.get(KEY) == 10
    assert await world.config.get(KEY, scope) == 10
    world.bus.published.clear()

    async with unit_of_work(world.db) as session:
        await world.config.set_value(session, KEY, 20, scope, actor=TEST_ACTOR)
        await world.config.set_value(session, KEY, 11, actor=TEST_ACTOR)
        # Nothing is announced before the commit.
        assert world.bus.published == []
        assert world.config.cache.lookup(KEY, GLOBAL) is not None

    assert world.config.cache.lookup(KEY, GLOBAL) is None
    assert await world.config.get(KEY) == 11
    assert await world.config.get(KEY, scope) == 20
    assert world.bus.published == [
        (
            "jarvis.config",
            {
                "type": "config_changed",
                "origin": world.config.instance_id,
                "changes": [
                    {"key": KEY, "scope": {"persona": "admin"}, "version": 1, "action": "set"},
                    {"key": KEY, "scope": {}, "version": 2, "action": "set"},
                ],
            },
        )
    ]


async def test_a_deactivation_invalidates_the_cache(world: World) -> None:
    await put(world, 10)
    await put(world, 20)
    assert await world.config.get(KEY) == 20
    await deactivate(world, GLOBAL, 2)
    assert await world.config.get(KEY) == 10
    (_, message) = world.bus.published[-1]
    assert message["changes"] == [{"key": KEY, "scope": {}, "version": 2, "action": "deactivate"}]


class Boom(Exception):
    pass


async def test_a_rolled_back_write_neither_invalidates_nor_publishes(world: World) -> None:
    await put(world, 10)
    assert await world.config.get(KEY) == 10
    cached = world.config.cache.lookup(KEY, GLOBAL)
    assert cached is not None
    world.bus.published.clear()

    with pytest.raises(Boom):
        async with unit_of_work(world.db) as session:
            await world.config.set_value(session, KEY, 20, actor=TEST_ACTOR)
            raise Boom

    assert world.bus.published == []
    assert world.config.cache.lookup(KEY, GLOBAL) is cached
    assert await world.config.get(KEY) == 10
    stored = await world.config.resolve(KEY, at=utcnow())
    assert (stored.value, stored.version) == (10, 1)
    # The next committed write is announced alone, with the version the rollback freed.
    await put(world, 30)
    assert [m["changes"] for _, m in world.bus.published] == [
        [{"key": KEY, "scope": {}, "version": 2, "action": "set"}]
    ]
    assert await world.config.get(KEY) == 30
