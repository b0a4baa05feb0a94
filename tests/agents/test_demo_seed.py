"""The demo seed: personas, agents in every layer, a user per demo person, idempotent."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from sqlalchemy import func, select

from jarvis.agents.models import Agent
from jarvis.agents.service import delete_agent
from jarvis.auth.models import User, UserProfile
from jarvis.config.models import BusinessRule, Template
from jarvis.config.rules import RuleSetIn, get_rule_set, get_template, save_rule_set
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.data import AGENTS, PERSONAS, RULE_SETS, TEMPLATES, USERS
from jarvis.demo.service import DemoResult, seed_demo
from jarvis.personas.models import RolePersona
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_agent

LAYERS = [layer.value for layer in LAYER_ORDER]


async def run_seed(db: Database, *, only_if_empty: bool = False) -> DemoResult:
    async with unit_of_work(db) as session:
        return await seed_demo(
            session, config=config_service(db, poll_seconds=0), only_if_empty=only_if_empty
        )


async def counts(db: Database) -> tuple[int, int, int]:
    """(personas, agents, users) stored."""
    async with unit_of_work(db, write=False) as session:
        values = []
        for model in (RolePersona, Agent, User):
            values.append(int(await session.scalar(select(func.count()).select_from(model)) or 0))
    return values[0], values[1], values[2]


async def all_agents(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = (await client.get("/api/agents", params={"limit": 100, "offset": offset})).json()
        items.extend(page["items"])
        offset += 100
        if offset >= page["total"]:
            return items


async def test_seed_fills_every_layer_with_at_least_three_agents(
    client: httpx.AsyncClient, db: Database
) -> None:
    result = await run_seed(db)
    assert result.skipped is False
    assert result.agents_created == len(AGENTS)

    layers = (await client.get("/api/layers")).json()["items"]
    per_layer = {item["name"]: item["agentCount"] for item in layers}
    assert list(per_layer) == LAYERS
    assert all(count >= 3 for count in per_layer.values()), per_layer

    agents = await all_agents(client)
    assert len(agents) == len(AGENTS)
    assert Counter(a["layer"] for a in agents) == Counter(per_layer)
    assert len({a["name"].lower() for a in agents}) == len(agents)


async def test_seed_agents_carry_metrics_and_valid_personas(
    client: httpx.AsyncClient, db: Database
) -> None:
    await run_seed(db)
    agents = await all_agents(client)
    persona_keys = {p["key"] for p in (await client.get("/api/personas/all")).json()["items"]}
    assert {a["persona"] for a in agents} <= persona_keys
    # each demo persona owns agents, so every dashboard has something to show
    assert {a["persona"] for a in agents} == {"admin", "underwriter", "it_support"}
    assert all(a["successRate"] > 0 for a in agents)
    assert all(a["avgResponseTime"] > 0 for a in agents)
    assert all(a["slaPerformance"] is not None for a in agents)
    assert all(a["businessFunction"] for a in agents)
    assert any(a["canGeneratePersona"] for a in agents if a["layer"] == "Role")


async def test_seed_registers_demo_personas_with_person_names(
    client: httpx.AsyncClient, db: Database
) -> None:
    result = await run_seed(db)
    assert result.personas_created == 3
    body = (await client.get("/api/personas/all")).json()
    by_key = {p["key"]: p for p in body["items"]}
    assert set(by_key) == {"admin", "underwriter", "it_support"}
    assert body["total"] == 3
    assert by_key["underwriter"]["personName"] == "Rachel Thompson"
    assert by_key["it_support"]["personName"] == "John Stevens"
    for persona in by_key.values():
        assert persona["displayName"]
        assert set(persona["colorScheme"]) == {
            "primary",
            "secondary",
            "accent",
            "background",
            "glassmorphism",
        }
        assert persona["isDynamic"] is False


async def test_seed_creates_a_user_for_each_demo_person(db: Database) -> None:
    result = await run_seed(db)
    assert len(result.users_created) == len(USERS)
    passwords = [password for _, password in result.users_created]
    assert all(len(p) >= 12 for p in passwords)
    assert len(set(passwords)) == len(passwords)

    async with unit_of_work(db, write=False) as session:
        users = (await session.scalars(select(User).order_by(User.email))).all()
        profiles = {p.user_id: p for p in (await session.scalars(select(UserProfile))).all()}
    by_persona = {u.persona: u for u in users}
    assert len(by_persona) == len(users)  # one user per persona

    people = {p.key: p.person_name for p in PERSONAS if p.person_name}
    assert people == {"underwriter": "Rachel Thompson", "it_support": "John Stevens"}
    for key, person in people.items():
        user = by_persona[key]
        assert f"{user.first_name} {user.last_name}" == person
        assert user.is_active
        assert profiles[user.id].job_title
    assert {email for email, _ in result.users_created} == {u.email for u in users}


async def test_seeded_users_can_sign_in_with_the_printed_password(
    client: httpx.AsyncClient, db: Database
) -> None:
    result = await run_seed(db)
    for email, password in result.users_created:
        response = await client.post("/api/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        wrong = await client.post("/api/login", json={"email": email, "password": password + "x"})
        assert wrong.status_code == 401


async def test_second_run_adds_nothing(client: httpx.AsyncClient, db: Database) -> None:
    await run_seed(db)
    before = await counts(db)
    agents_before = await all_agents(client)

    again = await run_seed(db)
    assert again.skipped is False
    assert again.personas_created == 0
    assert again.agents_created == 0
    assert again.users_created == []
    assert (again.rule_sets_created, again.templates_created) == (0, 0)
    assert await counts(db) == before
    # nothing was touched either: same versions, same values
    assert await all_agents(client) == agents_before


async def test_seed_adds_back_only_what_is_missing(client: httpx.AsyncClient, db: Database) -> None:
    await run_seed(db)
    async with unit_of_work(db) as session:
        gone = await session.scalar(select(Agent).where(Agent.name == "Intent Router"))
        assert gone is not None
        await delete_agent(session, gone.id, actor=TEST_ACTOR)
    personas, agents, users = await counts(db)

    result = await run_seed(db)
    assert (result.personas_created, result.agents_created, result.users_created) == (0, 1, [])
    assert await counts(db) == (personas, agents + 1, users)
    found = (await client.get("/api/agents", params={"q": "intent router"})).json()
    assert [a["name"] for a in found["items"]] == ["Intent Router"]


async def test_seed_respects_an_existing_agent_of_the_same_name_in_any_case(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_agent(db, name="META BRAIN ORCHESTRATOR", layer="System")
    result = await run_seed(db)
    assert result.agents_created == len(AGENTS) - 1
    found = (await client.get("/api/agents", params={"q": "meta brain orchestrator"})).json()
    assert found["total"] == 1
    assert found["items"][0]["name"] == "META BRAIN ORCHESTRATOR"
    assert found["items"][0]["layer"] == "System"


async def test_only_if_empty_skips_when_agents_exist(db: Database) -> None:
    await create_agent(db, name="Pre-existing Agent")
    before = await counts(db)
    result = await run_seed(db, only_if_empty=True)
    assert result.skipped is True
    assert (result.personas_created, result.agents_created, result.users_created) == (0, 0, [])
    assert await counts(db) == before


async def test_only_if_empty_seeds_an_empty_database(db: Database) -> None:
    assert await counts(db) == (0, 0, 0)
    result = await run_seed(db, only_if_empty=True)
    assert result.skipped is False
    assert result.agents_created == len(AGENTS)
    assert await counts(db) == (len(PERSONAS), len(AGENTS), len(USERS))
    # and a later run with only_if_empty now skips
    assert (await run_seed(db, only_if_empty=True)).skipped is True


async def test_seed_stores_the_rule_tables_and_templates_the_agents_use(db: Database) -> None:
    # An operator's own version of a demo rule table is kept, not replaced.
    mine = RuleSetIn.model_validate(
        {
            "name": "itil-priority",
            "definition": {"rules": [{"when": [], "outcome": "P2", "reasonCode": "all_p2"}]},
        }
    )
    async with unit_of_work(db) as session:
        await save_rule_set(session, mine, actor=TEST_ACTOR)

    result = await run_seed(db)
    assert result.rule_sets_created == len(RULE_SETS) - 1
    assert result.templates_created == len(TEMPLATES)
    async with unit_of_work(db, write=False) as session:
        kept = await get_rule_set(session, "itil-priority")
        assert (kept.version, kept.definition["rules"][0]["outcome"]) == (1, "P2")
        for rule_set in RULE_SETS:
            assert (await get_rule_set(session, rule_set.name)).version == 1
        for template in TEMPLATES:
            row = await get_template(session, template.name)
            assert (row.version, row.body) == (1, template.body)
        counts = [
            int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (BusinessRule, Template)
        ]
    assert counts == [len(RULE_SETS), len(TEMPLATES)]
    # every name an agent refers to exists now
    named = {a.config.get("ruleSet") for a, _ in AGENTS} | {
        a.config.get("template") for a, _ in AGENTS
    }
    assert named - {None} <= {r.name for r in RULE_SETS} | {t.name for t in TEMPLATES}

    again = await run_seed(db)
    assert (again.rule_sets_created, again.templates_created) == (0, 0)
