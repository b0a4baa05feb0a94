"""Four eyes at the service level: keys that require approval open change requests, which
another admin approves or rejects, or the requester withdraws."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from jarvis.audit.models import AuditTrail
from jarvis.config.models import ConfigChangeLog, ConfigChangeRequest, ConfigValue
from jarvis.config.service import ConfigService, SetOutcome
from jarvis.core.identity import Actor
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import Conflict, Forbidden, NotFound, ValidationFailed
from jarvis.kit.bus import CapturingBus
from jarvis.kit.clock import utcnow
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_user

KEY = "llm.provider"  # "rules" | "openai"; default "rules"; requires approval
MASK = "********"


@dataclass
class World:
    db: Database
    config: ConfigService
    bus: CapturingBus
    alice: Actor
    bob: Actor
    carol: Actor
    # Audit entries up to this id were written while arranging the world.
    audit_mark: int


def actor_of(user: Any) -> Actor:
    return Actor(user.email, user_id=user.id)


@pytest.fixture
async def world(db: Database) -> World:
    bus = CapturingBus()
    config = config_service(db, bus=bus, poll_seconds=0)
    alice, bob, carol = [actor_of(await create_user(db, persona="admin")) for _ in range(3)]
    bus.published.clear()
    async with unit_of_work(db, write=False) as session:
        mark = int(await session.scalar(select(func.max(AuditTrail.id))) or 0)
    return World(db, config, bus, alice, bob, carol, mark)


async def request_set(
    w: World, value: Any, scope: Scope = GLOBAL, *, actor: Actor | None = None, **kw: Any
) -> ConfigChangeRequest:
    async with unit_of_work(w.db) as session:
        outcome = await w.config.set_value(session, KEY, value, scope, actor=actor or w.alice, **kw)
    assert outcome.value is None
    assert outcome.request is not None
    return outcome.request


async def decide(
    w: World, verb: str, request_id: int, actor: Actor, reason: str | None = None
) -> ConfigChangeRequest:
    async with unit_of_work(w.db) as session:
        method = getattr(w.config, verb)
        request: ConfigChangeRequest = await method(session, request_id, actor=actor, reason=reason)
    return request


async def fetch(db: Database, request_id: int) -> ConfigChangeRequest:
    async with unit_of_work(db, write=False) as session:
        request = await session.get(ConfigChangeRequest, request_id)
    assert request is not None
    return request


async def values(db: Database) -> list[ConfigValue]:
    async with unit_of_work(db, write=False) as session:
        query = select(ConfigValue).where(ConfigValue.config_key == KEY).order_by(ConfigValue.id)
        return list((await session.scalars(query)).all())


async def change_logs(db: Database) -> list[ConfigChangeLog]:
    async with unit_of_work(db, write=False) as session:
        query = (
            select(ConfigChangeLog)
            .where(ConfigChangeLog.config_key == KEY)
            .order_by(ConfigChangeLog.id)
        )
        return list((await session.scalars(query)).all())


async def audits(w: World, prefix: str = "config.") -> list[AuditTrail]:
    """The ledger's entries written by the test itself."""
    async with unit_of_work(w.db, write=False) as session:
        query = (
            select(AuditTrail)
            .where(AuditTrail.id > w.audit_mark, AuditTrail.action.startswith(prefix))
            .order_by(AuditTrail.id)
        )
        return list((await session.scalars(query)).all())


async def approved_value(w: World, value: Any, scope: Scope = GLOBAL) -> ConfigChangeRequest:
    request = await request_set(w, value, scope)
    return await decide(w, "approve", request.id, w.bob)


# --- opening a request --------------------------------------------------------------------


async def test_a_set_opens_a_pending_request_and_stores_nothing(world: World) -> None:
    request = await request_set(world, "openai", reason="we need a real model")

    assert request.status == "pending"
    assert (request.config_key, request.action) == (KEY, "set")
    assert request.payload == {
        "value": "openai",
        "scope": {},
        "effectiveFrom": None,
        "effectiveTo": None,
    }
    assert (request.requested_by, request.requested_by_id) == (
        world.alice.label,
        world.alice.user_id,
    )
    assert request.reason == "we need a real model"
    assert (request.decided_by, request.decided_at, request.applied_value_id) == (None,) * 3

    assert await values(world.db) == []
    assert await change_logs(world.db) == []
    assert await world.config.get(KEY) == "rules"
    assert world.bus.published == []
    entries = await audits(world)
    assert [(e.action, e.entity_type, e.entity_id) for e in entries] == [
        ("config.request.create", "config_change_request", str(request.id))
    ]
    assert entries[0].actor_id == world.alice.user_id
    assert entries[0].after is not None
    assert entries[0].after["status"] == "pending"
    assert entries[0].after["payload"]["value"] == "openai"


async def test_a_request_is_validated_before_it_is_opened(world: World) -> None:
    with pytest.raises(ValidationFailed):
        async with unit_of_work(world.db) as session:
            await world.config.set_value(session, KEY, "anthropic", actor=world.alice)
    with pytest.raises(ValidationFailed):  # llm.provider has no workflow scope
        async with unit_of_work(world.db) as session:
            await world.config.set_value(
                session, KEY, "openai", Scope(workflow_id=1), actor=world.alice
            )
    async with unit_of_work(world.db, write=False) as session:
        _, total = await world.config.list_requests(session, status=None, limit=10, offset=0)
    assert total == 0


# --- approve ------------------------------------------------------------------------------


async def test_another_admin_approves_and_the_value_is_stored(world: World) -> None:
    request = await request_set(world, "openai", Scope(persona="admin"), reason="try it")
    assert await world.config.get(KEY, Scope(persona="admin")) == "rules"

    approved = await decide(world, "approve", request.id, world.bob, reason="looks fine")

    assert approved.status == "approved"
    assert (approved.decided_by, approved.decided_by_id) == (world.bob.label, world.bob.user_id)
    assert approved.decided_at is not None
    assert approved.decision_reason == "looks fine"
    rows = await values(world.db)
    assert len(rows) == 1
    assert approved.applied_value_id == rows[0].id
    assert (rows[0].value, rows[0].version, rows[0].persona) == ("openai", 1, "admin")
    assert rows[0].created_by_id == world.bob.user_id

    assert await world.config.get(KEY, Scope(persona="admin")) == "openai"
    assert await world.config.get(KEY) == "rules"
    stored = await fetch(world.db, request.id)
    assert (stored.status, stored.applied_value_id) == ("approved", rows[0].id)

    (log,) = await change_logs(world.db)
    assert (log.action, log.new_value, log.change_request_id) == ("set", "openai", request.id)
    assert (log.performed_by_id, log.reason) == (world.bob.user_id, "try it")
    actions = [(e.action, e.actor_id) for e in await audits(world)]
    assert actions == [
        ("config.request.create", world.alice.user_id),
        ("config.set", world.bob.user_id),
        ("config.request.approve", world.bob.user_id),
    ]
    assert [m["changes"] for _, m in world.bus.published] == [
        [{"key": KEY, "scope": {"persona": "admin"}, "version": 1, "action": "set"}]
    ]


async def test_a_scheduled_request_keeps_its_window_when_approved(world: World) -> None:
    start = utcnow() + timedelta(hours=1)
    end = start + timedelta(hours=1)
    request = await request_set(world, "openai", effective_from=start, effective_to=end)
    assert request.payload["effectiveFrom"] == start.isoformat()
    assert request.payload["effectiveTo"] == end.isoformat()
    await decide(world, "approve", request.id, world.bob)
    (row,) = await values(world.db)
    assert (row.effective_from, row.effective_to) == (start, end)
    assert await world.config.get(KEY) == "rules"
    assert await world.config.get(KEY, at=start) == "openai"
    assert await world.config.get(KEY, at=end) == "rules"


async def test_a_request_whose_window_has_passed_cannot_be_approved(world: World) -> None:
    request = await request_set(world, "openai", effective_to=utcnow() + timedelta(seconds=1))
    await asyncio.sleep(1.2)
    with pytest.raises(Conflict):
        await decide(world, "approve", request.id, world.bob)
    assert (await fetch(world.db, request.id)).status == "pending"
    assert await values(world.db) == []


async def test_the_requester_cannot_approve_their_own_request(world: World) -> None:
    request = await request_set(world, "openai")
    with pytest.raises(Forbidden) as raised:
        await decide(world, "approve", request.id, world.alice)
    assert raised.value.status == 403
    # The same person under another label is still the same person.
    with pytest.raises(Forbidden):
        await decide(world, "approve", request.id, Actor("alias", user_id=world.alice.user_id))
    assert (await fetch(world.db, request.id)).status == "pending"
    assert await values(world.db) == []
    assert [e.action for e in await audits(world)] == ["config.request.create"]


async def test_a_system_actor_cannot_approve_or_reject(world: World) -> None:
    request = await request_set(world, "openai")
    for verb in ("approve", "reject"):
        with pytest.raises(Forbidden):
            await decide(world, verb, request.id, TEST_ACTOR)
    assert (await fetch(world.db, request.id)).status == "pending"


async def test_an_unknown_request_is_404(world: World) -> None:
    for verb in ("approve", "reject", "withdraw"):
        with pytest.raises(NotFound):
            await decide(world, verb, 999_999, world.bob)


# --- reject and withdraw -----------------------------------------------------------------


async def test_another_admin_rejects(world: World) -> None:
    request = await request_set(world, "openai")
    with pytest.raises(Forbidden):
        await decide(world, "reject", request.id, world.alice)

    rejected = await decide(world, "reject", request.id, world.bob, reason="not yet")
    assert rejected.status == "rejected"
    assert (rejected.decided_by_id, rejected.decision_reason) == (world.bob.user_id, "not yet")
    assert rejected.applied_value_id is None
    assert await values(world.db) == []
    assert await world.config.get(KEY) == "rules"
    entries = await audits(world)
    assert [(e.action, e.actor_id) for e in entries] == [
        ("config.request.create", world.alice.user_id),
        ("config.request.reject", world.bob.user_id),
    ]
    assert entries[1].after is not None
    assert entries[1].after["status"] == "rejected"


async def test_only_the_requester_withdraws(world: World) -> None:
    request = await request_set(world, "openai")
    with pytest.raises(Forbidden):
        await decide(world, "withdraw", request.id, world.bob)
    assert (await fetch(world.db, request.id)).status == "pending"

    withdrawn = await decide(world, "withdraw", request.id, world.alice, reason="changed mind")
    assert withdrawn.status == "withdrawn"
    assert withdrawn.decided_by_id == world.alice.user_id
    assert await values(world.db) == []
    assert [e.action for e in await audits(world)] == [
        "config.request.create",
        "config.request.withdraw",
    ]


@pytest.mark.parametrize("first", ["approve", "reject", "withdraw"])
async def test_a_decided_request_cannot_be_decided_again(world: World, first: str) -> None:
    request = await request_set(world, "openai")
    await decide(world, first, request.id, world.alice if first == "withdraw" else world.bob)
    status = (await fetch(world.db, request.id)).status
    assert status == {"approve": "approved", "reject": "rejected", "withdraw": "withdrawn"}[first]
    before = (len(await values(world.db)), len(await audits(world)))

    for verb, actor in (("approve", world.carol), ("reject", world.carol)):
        with pytest.raises(Conflict) as raised:
            await decide(world, verb, request.id, actor)
        assert f"already {status}" in raised.value.detail
    with pytest.raises(Conflict):
        await decide(world, "withdraw", request.id, world.alice)
    assert (await fetch(world.db, request.id)).status == status
    assert (len(await values(world.db)), len(await audits(world))) == before


# --- revert and deactivate ----------------------------------------------------------------


async def test_revert_of_an_approval_key_opens_a_request(world: World) -> None:
    await approved_value(world, "openai")
    await approved_value(world, "rules")
    assert await world.config.get(KEY) == "rules"

    async with unit_of_work(world.db) as session:
        outcome = await world.config.revert(session, KEY, GLOBAL, 1, actor=world.alice)
    assert outcome.value is None
    assert outcome.request is not None
    request = outcome.request
    assert request.action == "revert"
    assert request.payload == {"scope": {}, "version": 1, "value": "openai"}
    assert request.reason == "revert to version 1"
    assert len(await values(world.db)) == 2

    await decide(world, "approve", request.id, world.carol)
    rows = await values(world.db)
    assert [(r.version, r.value) for r in rows] == [(1, "openai"), (2, "rules"), (3, "openai")]
    assert (await fetch(world.db, request.id)).applied_value_id == rows[2].id
    assert await world.config.get(KEY) == "openai"
    log = (await change_logs(world.db))[-1]
    assert (log.action, log.old_value, log.new_value) == ("revert", "rules", "openai")
    assert log.change_request_id == request.id


async def test_deactivate_of_an_approval_key_opens_a_request(world: World) -> None:
    await approved_value(world, "openai")
    await approved_value(world, "rules")

    async with unit_of_work(world.db) as session:
        outcome: SetOutcome = await world.config.deactivate(
            session, KEY, GLOBAL, 2, actor=world.alice, reason="back to openai"
        )
    assert outcome.value is None
    assert outcome.request is not None
    request = outcome.request
    assert (request.action, request.payload) == ("deactivate", {"scope": {}, "version": 2})
    assert all(r.is_active for r in await values(world.db))
    assert await world.config.get(KEY) == "rules"

    with pytest.raises(Forbidden):
        await decide(world, "approve", request.id, world.alice)
    await decide(world, "approve", request.id, world.bob)
    rows = await values(world.db)
    assert [(r.version, r.is_active) for r in rows] == [(1, True), (2, False)]
    assert rows[1].deactivated_at is not None
    assert (await fetch(world.db, request.id)).applied_value_id == rows[1].id
    assert await world.config.get(KEY) == "openai"
    log = (await change_logs(world.db))[-1]
    assert (log.action, log.version, log.change_request_id) == ("deactivate", 2, request.id)
    assert (log.reason, log.performed_by_id) == ("back to openai", world.bob.user_id)


async def test_a_deactivation_request_for_a_version_deactivated_meanwhile_conflicts(
    world: World,
) -> None:
    await approved_value(world, "openai")
    requests = []
    for _ in range(2):
        async with unit_of_work(world.db) as session:
            outcome = await world.config.deactivate(session, KEY, GLOBAL, 1, actor=world.alice)
        assert outcome.request is not None
        requests.append(outcome.request)
    await decide(world, "approve", requests[0].id, world.bob)
    with pytest.raises(Conflict):
        await decide(world, "approve", requests[1].id, world.bob)
    assert (await fetch(world.db, requests[1].id)).status == "pending"
    assert len([r for r in await change_logs(world.db) if r.action == "deactivate"]) == 1


# --- listing and secrets --------------------------------------------------------------------


async def test_list_requests_filters_by_status_newest_first(world: World) -> None:
    first = await request_set(world, "openai")
    second = await request_set(world, "openai", Scope(persona="admin"))
    third = await request_set(world, "rules")
    await decide(world, "reject", second.id, world.bob)
    async with unit_of_work(world.db, write=False) as session:
        pending, total = await world.config.list_requests(
            session, status="pending", limit=10, offset=0
        )
        everything, all_total = await world.config.list_requests(
            session, status=None, limit=2, offset=0
        )
    assert ([r.id for r in pending], total) == ([third.id, first.id], 2)
    assert ([r.id for r in everything], all_total) == ([third.id, second.id], 3)


async def test_requests_for_a_secret_key_are_masked_in_the_audit(world: World) -> None:
    secret = "sk-test-do-not-leak"
    async with unit_of_work(world.db) as session:
        await world.config.register_key(
            session,
            key="test.provider_token",
            description="An API token that needs a second pair of eyes.",
            schema={"type": "string"},
            default="",
            scopes=["global"],
            secret=True,
            requires_approval=True,
            actor=world.alice,
        )
    async with unit_of_work(world.db) as session:
        outcome = await world.config.set_value(
            session, "test.provider_token", secret, actor=world.alice
        )
    assert outcome.request is not None
    await decide(world, "approve", outcome.request.id, world.bob)

    assert await world.config.get("test.provider_token") == secret
    entries = await audits(world, "config.request.")
    assert [e.action for e in entries] == ["config.request.create", "config.request.approve"]
    for entry in entries:
        assert entry.after is not None
        assert entry.after["payload"]["value"] == MASK
    assert secret not in repr([(e.before, e.after) for e in await audits(world)])


# --- racing deciders ------------------------------------------------------------------------


async def test_two_admins_approving_at_once_apply_the_change_once(world: World) -> None:
    request = await request_set(world, "openai")
    results = await asyncio.gather(
        decide(world, "approve", request.id, world.bob),
        decide(world, "approve", request.id, world.carol),
        return_exceptions=True,
    )
    approved = [r for r in results if isinstance(r, ConfigChangeRequest)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert (len(approved), len(conflicts)) == (1, 1), results
    rows = await values(world.db)
    assert len(rows) == 1
    stored = await fetch(world.db, request.id)
    assert (stored.applied_value_id, stored.decided_by_id) == (
        rows[0].id,
        approved[0].decided_by_id,
    )
    assert [e.action for e in await audits(world, "config.request.approve")] == [
        "config.request.approve"
    ]


async def test_an_approval_racing_a_withdrawal_has_one_outcome(world: World) -> None:
    request = await request_set(world, "openai")
    results = await asyncio.gather(
        decide(world, "approve", request.id, world.bob),
        decide(world, "withdraw", request.id, world.alice),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ConfigChangeRequest) for r in results) == 1, results
    assert sum(isinstance(r, Conflict) for r in results) == 1, results
    status = (await fetch(world.db, request.id)).status
    assert len(await values(world.db)) == (1 if status == "approved" else 0)
