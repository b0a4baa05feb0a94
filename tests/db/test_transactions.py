"""Units of work: commit on success, roll back everything (audit entries included) on error."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import selectinload

from jarvis.agents.models import Agent
from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.audit.models import GENESIS_HASH, AuditTrail
from jarvis.audit.service import record_audit, verify_ledger
from jarvis.auth.models import User
from jarvis.db.base import Base
from jarvis.db.engine import Database
from jarvis.db.session import DbSession, unit_of_work
from jarvis.errors import Conflict
from jarvis.personas.models import RolePersona
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_personas, create_user


class Boom(RuntimeError):
    """Raised by tests after writing, to force a rollback."""


async def _count(db: Database, model: type[Base]) -> int:
    async with unit_of_work(db, write=False) as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def _agent(name: str = "Txn Agent", persona: str = "admin") -> AgentCreate:
    return AgentCreate.model_validate(
        {"name": name, "layer": "Process", "persona": persona, "businessFunction": "claims"}
    )


# --- unit_of_work -----------------------------------------------------------------------


async def test_unit_of_work_commits_on_success(db: Database) -> None:
    await create_personas(db)
    async with unit_of_work(db) as session:
        agent = await create_agent(session, _agent(), actor=TEST_ACTOR)
        agent_id = agent.id

    async with unit_of_work(db, write=False) as session:
        stored = await session.get(Agent, agent_id)
        entry = await session.scalar(
            select(AuditTrail).where(
                AuditTrail.action == "agent.create", AuditTrail.entity_id == str(agent_id)
            )
        )
    assert stored is not None and stored.name == "Txn Agent"
    assert entry is not None


async def test_unit_of_work_rolls_back_everything_on_error(db: Database) -> None:
    with pytest.raises(Boom):
        async with unit_of_work(db) as session:
            await ensure_persona(
                session, ADMIN_PERSONA, actor=TEST_ACTOR, config=config_service(db, poll_seconds=0)
            )
            await create_agent(session, _agent(), actor=TEST_ACTOR)
            await record_audit(
                session, actor=TEST_ACTOR, action="test.extra", entity_type="x", entity_id=1
            )
            # Everything was flushed: the rows exist inside the transaction...
            assert await session.scalar(select(func.count()).select_from(Agent)) == 1
            raise Boom("after writing")

    # ...and none of them outlived it.
    assert await _count(db, Agent) == 0
    assert await _count(db, RolePersona) == 0
    assert await _count(db, AuditTrail) == 0


async def test_rolled_back_audit_entries_leave_no_gap_in_the_chain(db: Database) -> None:
    async with unit_of_work(db) as session:
        await record_audit(session, actor=TEST_ACTOR, action="a.kept", entity_type="x", entity_id=1)
    with pytest.raises(Boom):
        async with unit_of_work(db) as session:
            await record_audit(
                session, actor=TEST_ACTOR, action="a.lost", entity_type="x", entity_id=2
            )
            raise Boom
    async with unit_of_work(db) as session:
        await record_audit(session, actor=TEST_ACTOR, action="a.kept", entity_type="x", entity_id=3)

    async with unit_of_work(db, write=False) as session:
        entries = (await session.scalars(select(AuditTrail).order_by(AuditTrail.id))).all()
        result = await verify_ledger(session)
    assert [e.entity_id for e in entries] == ["1", "3"]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].entry_hash
    assert result.status == "intact"
    assert result.checked == 2


async def test_a_domain_error_rolls_back_the_writes_before_it(db: Database) -> None:
    await create_personas(db)
    async with unit_of_work(db) as session:
        await create_agent(session, _agent("Original"), actor=TEST_ACTOR)
    audit_before = await _count(db, AuditTrail)

    with pytest.raises(Conflict):
        async with unit_of_work(db) as session:
            await create_agent(session, _agent("Written First"), actor=TEST_ACTOR)
            await create_agent(session, _agent("original"), actor=TEST_ACTOR)  # name taken

    async with unit_of_work(db, write=False) as session:
        names = set((await session.scalars(select(Agent.name))).all())
    assert names == {"Original"}
    assert await _count(db, AuditTrail) == audit_before


# --- through HTTP -----------------------------------------------------------------------


async def test_failed_create_agent_request_stores_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    audit_before = await _count(db, AuditTrail)
    assert audit_before > 0  # the admin's own setup was audited

    response = await client.post(
        "/api/agents",
        json={"name": "Orphan", "layer": "Role", "persona": "no_such_persona"},
        headers=admin_headers,
    )

    assert response.status_code == 422, response.text
    assert "persona" in response.json()["detail"]
    assert await _count(db, Agent) == 0
    assert await _count(db, AuditTrail) == audit_before


async def test_request_failing_after_its_writes_leaves_nothing_behind(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    """A route writes an agent (and its audit entry), then fails: both are rolled back."""

    async def write_then_fail(session: DbSession) -> None:
        await create_agent(session, _agent("Doomed"), actor=TEST_ACTOR)
        assert await session.scalar(select(func.count()).select_from(Agent)) == 1
        raise Conflict("failed after writing")

    app.add_api_route("/api/test/write-then-fail", write_then_fail, methods=["POST"])
    audit_before = await _count(db, AuditTrail)

    response = await client.post("/api/test/write-then-fail", headers=admin_headers)

    assert response.status_code == 409, response.text
    assert response.json()["detail"] == "failed after writing"
    assert await _count(db, Agent) == 0
    assert await _count(db, AuditTrail) == audit_before


async def test_request_crashing_after_its_writes_leaves_nothing_behind(
    app: FastAPI, admin_headers: dict[str, str], db: Database
) -> None:
    async def write_then_crash(session: DbSession) -> None:
        await create_agent(session, _agent("Crashed"), actor=TEST_ACTOR)
        raise Boom("internal detail 7f3a")

    app.add_api_route("/api/test/write-then-crash", write_then_crash, methods=["POST"])
    audit_before = await _count(db, AuditTrail)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.post("/api/test/write-then-crash", headers=admin_headers)

    assert response.status_code == 500
    assert "7f3a" not in response.text  # no internals leak
    assert await _count(db, Agent) == 0
    assert await _count(db, AuditTrail) == audit_before


async def test_successful_request_commits_before_responding(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    response = await client.post(
        "/api/agents", json={"name": "Kept", "layer": "Role"}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    agent_id = response.json()["id"]

    async with unit_of_work(db, write=False) as session:
        stored = await session.get(Agent, agent_id)
        entry = await session.scalar(
            select(AuditTrail).where(
                AuditTrail.action == "agent.create", AuditTrail.entity_id == str(agent_id)
            )
        )
    assert stored is not None and stored.name == "Kept"
    assert entry is not None and entry.actor.startswith("user")


async def test_read_only_request_does_not_write(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    # (A token's last use is recorded off the request's path, at most once a minute; see
    # tests/auth/tokens/test_api_tokens.py.)
    audit_before = await _count(db, AuditTrail)
    users_before = await _count(db, User)

    response = await client.get("/api/user", headers=admin_headers)

    assert response.status_code == 200, response.text
    assert await _count(db, AuditTrail) == audit_before
    assert await _count(db, User) == users_before


# --- lazy="raise" -----------------------------------------------------------------------


async def test_unloaded_relationship_raises_instead_of_lazy_loading(db: Database) -> None:
    user = await create_user(db)
    async with unit_of_work(db, write=False) as session:
        loaded = await session.scalar(select(User).where(User.id == user.id))
        assert loaded is not None
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = loaded.profile
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = loaded.preferences

        eager = await session.scalar(
            select(User)
            .where(User.id == user.id)
            .options(selectinload(User.profile))
            .execution_options(populate_existing=True)
        )
        assert eager is not None and eager.profile is not None
        assert eager.profile.user_id == user.id


def test_every_relationship_is_lazy_raise() -> None:
    import jarvis.db.models  # noqa: F401 - registers every table's mapper

    relationships = [
        (mapper.class_.__name__, rel.key, rel.lazy)
        for mapper in Base.registry.mappers
        for rel in mapper.relationships
    ]
    assert relationships, "no relationships found; the check would be vacuous"
    assert [r for r in relationships if r[2] != "raise"] == []
