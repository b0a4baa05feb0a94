"""Named, versioned rule tables (``business_rules``) and text templates (``templates``).

Each save creates the next version of the name; nothing is rewritten. Readers ask for the
newest active version or a given one, so a result can record which version decided it.
The rules agent kind and the template agent kind (orchestration) evaluate them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.config.models import BusinessRule, Template
from jarvis.core.identity import Actor
from jarvis.errors import NotFound
from jarvis.kit.clock import utcnow
from jarvis.kit.schema import ApiInput

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_.-]*$", max_length=90),
]
FieldPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", max_length=200)]
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]


class Condition(ApiInput):
    """``field`` (a dotted path into the context) ``op`` ``value``."""

    field: FieldPath
    op: Operator
    value: Any = None


class Rule(ApiInput):
    """All conditions hold -> this outcome, with a reason code for the audit trail."""

    when: list[Condition] = Field(max_length=50)
    outcome: Any
    reason_code: str = Field(min_length=1, max_length=100)


class RuleTable(ApiInput):
    """Rules are tried in order; the first whose conditions all hold decides."""

    rules: list[Rule] = Field(min_length=1, max_length=500)
    default_outcome: Any = None
    default_reason_code: str = Field(default="no_rule_matched", max_length=100)


class RuleSetIn(ApiInput):
    name: Name
    description: str | None = Field(default=None, max_length=4000)
    definition: RuleTable


class TemplateIn(ApiInput):
    name: Name
    description: str | None = Field(default=None, max_length=4000)
    body: str = Field(min_length=1, max_length=100_000)


async def save_rule_set(session: AsyncSession, data: RuleSetIn, *, actor: Actor) -> BusinessRule:
    """Store the next version of the rule table ``data.name``."""
    top = await session.scalar(
        select(func.max(BusinessRule.version)).where(BusinessRule.name == data.name)
    )
    row = BusinessRule(
        name=data.name,
        version=(top or 0) + 1,
        description=data.description,
        definition=data.definition.model_dump(mode="json", by_alias=True),
        is_active=True,
        created_by=actor.label,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="config.rules.save",
        entity_type="business_rules",
        entity_id=f"{row.name}@{row.version}",
        after={"name": row.name, "version": row.version, "definition": row.definition},
    )
    return row


async def get_rule_set(
    session: AsyncSession, name: str, version: int | None = None
) -> BusinessRule:
    """A given version, or the newest active one; 404 when there is none."""
    query = select(BusinessRule).where(BusinessRule.name == name)
    if version is not None:
        query = query.where(BusinessRule.version == version)
    else:
        query = query.where(BusinessRule.is_active.is_(True))
    row = await session.scalar(query.order_by(BusinessRule.version.desc()).limit(1))
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(f"no rule table '{name}'{which}")
    return row


async def save_template(session: AsyncSession, data: TemplateIn, *, actor: Actor) -> Template:
    """Store the next version of the template ``data.name``."""
    top = await session.scalar(select(func.max(Template.version)).where(Template.name == data.name))
    row = Template(
        name=data.name,
        version=(top or 0) + 1,
        description=data.description,
        body=data.body,
        is_active=True,
        created_by=actor.label,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="config.template.save",
        entity_type="templates",
        entity_id=f"{row.name}@{row.version}",
        after={"name": row.name, "version": row.version, "body": row.body},
    )
    return row


async def get_template(session: AsyncSession, name: str, version: int | None = None) -> Template:
    query = select(Template).where(Template.name == name)
    if version is not None:
        query = query.where(Template.version == version)
    else:
        query = query.where(Template.is_active.is_(True))
    row = await session.scalar(query.order_by(Template.version.desc()).limit(1))
    if row is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound(f"no template '{name}'{which}")
    return row


async def list_names(
    session: AsyncSession, model: type[BusinessRule] | type[Template], *, limit: int, offset: int
) -> tuple[list[tuple[str, int]], int]:
    """Each name with its newest version."""
    grouped = (
        select(model.name, func.max(model.version).label("version")).group_by(model.name).subquery()
    )
    total = await session.scalar(select(func.count()).select_from(grouped)) or 0
    rows = await session.execute(
        select(grouped.c.name, grouped.c.version)
        .order_by(grouped.c.name)
        .limit(limit)
        .offset(offset)
    )
    return [(r.name, r.version) for r in rows], total


async def rule_set_names(session: AsyncSession) -> set[str]:
    """Every name that has a rule table (any version, active or not)."""
    return set((await session.scalars(select(BusinessRule.name).distinct())).all())


async def template_names(session: AsyncSession) -> set[str]:
    """Every name that has a template (any version, active or not)."""
    return set((await session.scalars(select(Template.name).distinct())).all())
