"""Store the demo (``jarvis.demo.data``, from the scenario files) idempotently: what
exists is left alone, what is missing is added, each through its domain's service."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.agents.service import agent_names, create_agent, has_agents
from jarvis.auth.users.passwords import generate_password
from jarvis.auth.users.service import create_user, get_user_by_email
from jarvis.config.rules import rule_set_names, save_rule_set, save_template, template_names
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.demo.data import AGENTS, PERSONA_PERMISSIONS, PERSONAS, RULE_SETS, TEMPLATES, USERS
from jarvis.personas.grants import grant
from jarvis.personas.service import ensure_persona

SEED_ACTOR = Actor.system("demo-seed")


@dataclass
class DemoResult:
    personas_created: int = 0
    agents_created: int = 0
    users_created: list[tuple[str, str]] = field(default_factory=list)  # (email, password)
    rule_sets_created: int = 0
    templates_created: int = 0
    skipped: bool = False


async def _seed_rules_and_templates(session: AsyncSession, result: DemoResult) -> None:
    """The rule tables and templates the demo agents use, unless a name already exists
    (an operator's newer version of a demo table is never overwritten)."""
    rule_names = await rule_set_names(session)
    for rule_set in RULE_SETS:
        if rule_set.name not in rule_names:
            await save_rule_set(session, rule_set, actor=SEED_ACTOR)
            result.rule_sets_created += 1
    stored_templates = await template_names(session)
    for template in TEMPLATES:
        if template.name not in stored_templates:
            await save_template(session, template, actor=SEED_ACTOR)
            result.templates_created += 1


async def seed_demo(
    session: AsyncSession, *, config: ConfigService, only_if_empty: bool = False
) -> DemoResult:
    """Add the demo personas, rule tables, templates, agents and users not there yet."""
    result = DemoResult()
    if only_if_empty and await has_agents(session):
        result.skipped = True
        return result
    for persona in PERSONAS:
        if await ensure_persona(session, persona, actor=SEED_ACTOR, config=config):
            result.personas_created += 1
            # What the demo persona does at work, on top of the default set.
            await grant(
                session, persona.key, PERSONA_PERMISSIONS.get(persona.key, ()), actor=SEED_ACTOR
            )
    await _seed_rules_and_templates(session, result)
    existing = await agent_names(session)
    for data, metrics in AGENTS:
        if data.name.lower() in existing:
            continue
        await create_agent(session, data, actor=SEED_ACTOR, metrics=metrics)
        result.agents_created += 1
    for user in USERS:
        if await get_user_by_email(session, user.email) is not None:
            continue
        password = generate_password()
        await create_user(
            session,
            email=user.email,
            persona=user.persona,
            password=password,
            actor=SEED_ACTOR,
            first_name=user.first_name,
            last_name=user.last_name,
            job_title=user.job_title,
            department=user.department,
        )
        result.users_created.append((user.email, password))
    return result
