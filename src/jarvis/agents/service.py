"""Agent registry: query, create, update, delete, version history and restore.

Every change stores the previous state in ``agent_versions`` and appends to the audit
ledger, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.agents.kinds.registry import validate_agent_config
from jarvis.agents.listing import AgentPageCache, mark_registry_changed, registry_generation
from jarvis.agents.models import Agent, AgentVersion
from jarvis.agents.schemas import AgentCreate, AgentMetrics, AgentOut, AgentUpdate
from jarvis.audit.queries import first_actor
from jarvis.audit.service import record_audit
from jarvis.core.identity import Actor
from jarvis.core.layers import LAYER_ORDER, Layer
from jarvis.db.session import after_commit
from jarvis.errors import Conflict, NotFound, PreconditionFailed
from jarvis.kit.schema import Page
from jarvis.personas.service import require_persona

# Fields a version snapshot restores; metrics and bookkeeping are not part of a version.
VERSIONED_FIELDS: tuple[str, ...] = tuple(
    name for name in AgentCreate.model_fields if name not in {"id"}
)

_LAYER_RANK = case(
    {layer.value: position for position, layer in enumerate(LAYER_ORDER)},
    value=Agent.layer,
    else_=len(LAYER_ORDER),
)


@dataclass(frozen=True)
class AgentFilter:
    layer: Layer | None = None
    persona: str | None = None
    business_function: str | None = None
    governance_status: str | None = None
    q: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.layer is not None:
            out.append(Agent.layer == self.layer.value)
        if self.persona is not None:
            out.append(Agent.persona == self.persona)
        if self.business_function is not None:
            out.append(Agent.business_function == self.business_function)
        if self.governance_status is not None:
            out.append(Agent.governance_status == self.governance_status)
        if self.q:
            pattern = "%" + _escape_like(self.q.strip().lower()) + "%"
            out.append(
                or_(
                    *(
                        func.lower(column).like(pattern, escape="\\")
                        for column in (
                            Agent.name,
                            Agent.specialization,
                            Agent.description,
                            Agent.business_function,
                        )
                    )
                )
            )
        return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_ORDER = (_LAYER_RANK, Agent.name, Agent.id)
_page_adapter: TypeAdapter[Page[AgentOut]] = TypeAdapter(Page[AgentOut])


def _ordered(query: Select[Agent]) -> Select[Agent]:
    return query.order_by(*_ORDER)


async def list_agents(
    session: AsyncSession, flt: AgentFilter, *, limit: int, offset: int
) -> tuple[Sequence[Agent], int]:
    """One page of agents in layer order, then by name; and the filtered total."""
    conditions = flt.conditions()
    total = await session.scalar(select(func.count()).select_from(Agent).where(*conditions))
    rows = await session.scalars(
        _ordered(select(Agent).where(*conditions)).limit(limit).offset(offset)
    )
    return rows.all(), total or 0


def page_key(flt: AgentFilter, *, limit: int, offset: int) -> tuple[AgentFilter, int, int]:
    """The cache key of one page of the agent list."""
    return (flt, limit, offset)


async def agent_page_json(
    session: AsyncSession,
    flt: AgentFilter,
    *,
    limit: int,
    offset: int,
    cache: AgentPageCache | None = None,
) -> bytes:
    """Render one page of agents as the API's JSON (``Page[AgentOut]``), and cache it.

    The caller looks in ``cache`` first (``page_key``), so that a hit needs no session.
    One query returns the rows and, through a window function, the filtered total.
    """
    generation = registry_generation()
    conditions = flt.conditions()
    # Core rows straight off the connection, as plain dicts: validating SQLAlchemy
    # RowMappings through aliases costs a failed lookup (an exception) per field.
    connection = await session.connection()
    result = await connection.execute(
        select(*Agent.__table__.c, func.count().over().label("total_count"))
        .where(*conditions)
        .order_by(*_ORDER)
        .limit(limit)
        .offset(offset)
    )
    rows = [dict(row) for row in result.mappings()]
    if rows:
        total = int(rows[0]["total_count"])
    else:  # past the end there is no row to carry the window count
        counted = await session.scalar(select(func.count()).select_from(Agent).where(*conditions))
        total = counted or 0
    page = _page_adapter.validate_python(
        {"items": rows, "total": total, "limit": limit, "offset": offset}
    )
    body = _page_adapter.dump_json(page, by_alias=True)
    if cache is not None:
        cache.put(page_key(flt, limit=limit, offset=offset), generation, body)
    return body


async def agent_exists(session: AsyncSession, agent_id: int) -> bool:
    return await session.scalar(select(Agent.id).where(Agent.id == agent_id)) is not None


async def get_agent(session: AsyncSession, agent_id: int, *, for_update: bool = False) -> Agent:
    """The agent with ``agent_id``; 404 when there is none."""
    query = select(Agent).where(Agent.id == agent_id)
    if for_update:
        query = query.with_for_update()
    agent = await session.scalar(query)
    if agent is None:
        raise NotFound(f"no agent with id {agent_id}")
    return agent


async def _ensure_name_free(session: AsyncSession, name: str, *, except_id: int | None) -> None:
    # lower() on both sides: the same folding as the unique index, on either backend.
    query = select(Agent.id).where(func.lower(Agent.name) == func.lower(name))
    if except_id is not None:
        query = query.where(Agent.id != except_id)
    if await session.scalar(query) is not None:
        raise Conflict(f"an agent named '{name}' already exists")


def agent_state(agent: Agent) -> dict[str, Any]:
    """The agent as the API shows it, in JSON types (for audit entries)."""
    return AgentOut.model_validate(agent).model_dump(mode="json")


def _versioned_state(agent: Agent) -> dict[str, Any]:
    return {name: getattr(agent, name) for name in VERSIONED_FIELDS}


async def create_agent(
    session: AsyncSession,
    data: AgentCreate,
    *,
    actor: Actor,
    metrics: AgentMetrics | None = None,
) -> Agent:
    """Create an agent; 409 if the name is taken, 422 if the persona is unknown."""
    await require_persona(session, data.persona, loc=("persona",))
    validate_agent_config(data.kind, data.config)
    await _ensure_name_free(session, data.name, except_id=None)
    values = data.model_dump(by_alias=False)
    values["layer"] = data.layer.value
    if metrics is not None:
        values.update(metrics.model_dump(by_alias=False))
    agent = Agent(**values, version=1)
    session.add(agent)
    await session.flush()
    after_commit(session, mark_registry_changed)
    await session.refresh(agent)
    await record_audit(
        session,
        actor=actor,
        action="agent.create",
        entity_type="agent",
        entity_id=agent.id,
        after=agent_state(agent),
    )
    return agent


async def _store_version(
    session: AsyncSession, agent: Agent, *, change_type: str, actor: Actor
) -> None:
    session.add(
        AgentVersion(
            agent_id=agent.id,
            version=agent.version,
            snapshot=AgentCreate.model_validate(_versioned_state(agent)).model_dump(
                mode="json", by_alias=False
            ),
            change_type=change_type,
            changed_by=actor.label,
        )
    )
    await session.flush()


async def _apply(
    session: AsyncSession,
    agent: Agent,
    changes: dict[str, Any],
    *,
    change_type: str,
    action: str,
    actor: Actor,
) -> Agent:
    if "persona" in changes:
        await require_persona(session, changes["persona"], loc=("persona",))
    if "kind" in changes or "config" in changes:
        # A new kind must accept the config the agent keeps, and a new config its kind.
        validate_agent_config(changes.get("kind", agent.kind), changes.get("config", agent.config))
    if "name" in changes:
        await _ensure_name_free(session, changes["name"], except_id=agent.id)
    before = agent_state(agent)
    await _store_version(session, agent, change_type=change_type, actor=actor)
    for name, value in changes.items():
        setattr(agent, name, value.value if isinstance(value, Layer) else value)
    agent.version += 1
    await session.flush()
    after_commit(session, mark_registry_changed)
    await session.refresh(agent)
    await record_audit(
        session,
        actor=actor,
        action=action,
        entity_type="agent",
        entity_id=agent.id,
        before=before,
        after=agent_state(agent),
    )
    return agent


async def update_agent(
    session: AsyncSession,
    agent_id: int,
    data: AgentUpdate,
    *,
    actor: Actor,
    expected_version: int | None = None,
) -> Agent:
    """Apply a partial update, keeping the previous state as a version."""
    agent = await get_agent(session, agent_id, for_update=True)
    if expected_version is not None and agent.version != expected_version:
        raise PreconditionFailed(
            f"agent {agent_id} is at version {agent.version}, not {expected_version}; "
            "reload it and apply your change again"
        )
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    return await _apply(
        session, agent, changes, change_type="update", action="agent.update", actor=actor
    )


async def list_versions(
    session: AsyncSession, agent_id: int, *, limit: int, offset: int
) -> tuple[Sequence[AgentVersion], int]:
    """Stored earlier versions of an agent, newest first."""
    await get_agent(session, agent_id)
    where = AgentVersion.agent_id == agent_id
    total = await session.scalar(select(func.count()).select_from(AgentVersion).where(where))
    rows = await session.scalars(
        select(AgentVersion)
        .where(where)
        .order_by(AgentVersion.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0


async def restore_version(
    session: AsyncSession, agent_id: int, version: int, *, actor: Actor
) -> Agent:
    """Make a stored version current again, as a new version."""
    agent = await get_agent(session, agent_id, for_update=True)
    if version == agent.version:
        raise Conflict(f"version {version} is already agent {agent_id}'s current version")
    stored = await session.scalar(
        select(AgentVersion).where(
            AgentVersion.agent_id == agent_id, AgentVersion.version == version
        )
    )
    if stored is None:
        raise NotFound(f"agent {agent_id} has no stored version {version}")
    snapshot = AgentCreate.model_validate(stored.snapshot)
    changes = {name: getattr(snapshot, name) for name in VERSIONED_FIELDS}
    return await _apply(
        session, agent, changes, change_type="restore", action="agent.restore", actor=actor
    )


async def delete_agent(session: AsyncSession, agent_id: int, *, actor: Actor) -> None:
    """Delete an agent and its versions; the audit entry keeps its last state."""
    agent = await get_agent(session, agent_id, for_update=True)
    before = agent_state(agent)
    await session.delete(agent)
    await session.flush()
    after_commit(session, mark_registry_changed)
    await record_audit(
        session,
        actor=actor,
        action="agent.delete",
        entity_type="agent",
        entity_id=agent_id,
        before=before,
    )


async def count_by_layer(session: AsyncSession) -> dict[Layer, int]:
    """How many agents each layer has (zero included)."""
    rows = await session.execute(select(Agent.layer, func.count()).group_by(Agent.layer))
    counts = {layer: 0 for layer in LAYER_ORDER}
    for layer, count in rows.all():
        counts[Layer(layer)] = count
    return counts


def agents_serving(connection: Connection, persona: str) -> list[dict[str, Any]]:
    """The enabled agents that serve ``persona`` (their own or every persona), as plain rows
    in execution order: layer, then name, then id (on a synchronous connection: the
    engine's claim runs in one write batch)."""
    result = connection.execute(
        select(
            Agent.id,
            Agent.name,
            Agent.layer,
            Agent.persona,
            Agent.kind,
            Agent.config,
            Agent.governance_status,
        )
        .where(
            Agent.enabled.is_(True),
            or_(Agent.persona == persona, Agent.serves_all_personas.is_(True)),
        )
        .order_by(*_ORDER)
    )
    return [dict(row) for row in result.mappings()]


@dataclass(frozen=True)
class MetricsUpdate:
    """Performance figures the engine computed for one agent from its recent steps."""

    agent_id: int
    success_rate: float
    avg_response_time: int
    sla_performance: float
    sla_status: str


def store_metrics(connection: Connection, updates: Sequence[MetricsUpdate]) -> None:
    """Store engine-computed metrics (not a version: metrics are not configuration).

    On a synchronous connection, inside the engine's write batch; the caller calls
    ``mark_registry_changed`` once the batch has committed.
    """
    if not updates:
        return
    table = cast(Table, Agent.__table__)
    # Keys named like columns become the SET clause of each executemany row.
    connection.execute(
        update(table).where(table.c.id == bindparam("b_agent_id")),
        [
            {
                "b_agent_id": u.agent_id,
                "success_rate": u.success_rate,
                "avg_response_time": u.avg_response_time,
                "sla_performance": u.sla_performance,
                "sla_status": u.sla_status,
            }
            for u in updates
        ],
    )


# --- reads for the web pages (agent directory) ----------------------------------------


async def get_version(session: AsyncSession, agent_id: int, version: int) -> AgentVersion:
    """One stored earlier version of an agent; 404 when the agent or version is unknown."""
    stored = await session.scalar(
        select(AgentVersion).where(
            AgentVersion.agent_id == agent_id, AgentVersion.version == version
        )
    )
    if stored is None:
        await get_agent(session, agent_id)
        raise NotFound(f"agent {agent_id} has no stored version {version}")
    return stored


async def business_functions(session: AsyncSession, *, limit: int = 100) -> list[str]:
    """The business functions agents have, sorted (for filters and suggestions)."""
    rows = await session.scalars(
        select(Agent.business_function)
        .where(Agent.business_function.is_not(None))
        .distinct()
        .order_by(Agent.business_function)
        .limit(limit)
    )
    return [row for row in rows.all() if row]


async def created_by(session: AsyncSession, agent_id: int) -> str | None:
    """Who created the agent, from its audit entry (None when the ledger has none)."""
    return await first_actor(
        session, action="agent.create", entity_type="agent", entity_id=str(agent_id)
    )


async def has_agents(session: AsyncSession) -> bool:
    """Whether the registry holds any agent."""
    return await session.scalar(select(Agent.id).limit(1)) is not None


async def agent_names(session: AsyncSession) -> set[str]:
    """Every agent's name, lower-cased (the folding under which names are unique)."""
    return set((await session.scalars(select(func.lower(Agent.name)))).all())
