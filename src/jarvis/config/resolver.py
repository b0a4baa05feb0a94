"""Resolution: which value of a key applies to a scope at an instant.

``resolve_query`` answers with one indexed statement: the winner (most specific scope,
then highest version, among live values) joined to the earliest future ``effective_from``
of any applicable value, which bounds how long the answer may be cached.
``explain`` lists every applicable value with the reason it won or lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from jarvis.config.models import ConfigValue
from jarvis.core.scope import Scope

Source = Literal["workflow", "agent", "persona", "global", "default"]


@dataclass(frozen=True)
class Resolution:
    """The answer for one key, scope and instant."""

    key: str
    value: Any
    source: Source
    version: int | None = None
    value_id: int | None = None
    value_scope: Scope | None = None
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    # The earliest instant at which the answer could change without a write.
    valid_until: datetime | None = None


def applicable(scope: Scope) -> ColumnElement[bool]:
    """Values whose every set scope member equals the read's, with the read's members as
    bound parameters (``scope_params``), so one statement serves every scope of a shape."""

    def member(column: Any, present: bool, name: str) -> ColumnElement[bool]:
        if not present:
            return column.is_(None)  # type: ignore[no-any-return]
        return or_(column.is_(None), column == bindparam(name))

    return and_(
        member(ConfigValue.persona, scope.persona is not None, "persona"),
        member(ConfigValue.agent_id, scope.agent_id is not None, "agent_id"),
        member(ConfigValue.workflow_id, scope.workflow_id is not None, "workflow_id"),
    )


def scope_params(scope: Scope) -> dict[str, Any]:
    """The bound parameters ``applicable(scope)`` needs."""
    params: dict[str, Any] = {}
    if scope.persona is not None:
        params["persona"] = scope.persona
    if scope.agent_id is not None:
        params["agent_id"] = scope.agent_id
    if scope.workflow_id is not None:
        params["workflow_id"] = scope.workflow_id
    return params


def live_at(at: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Active (or deactivated only after ``at``) and inside its window at ``at``."""
    return and_(
        or_(ConfigValue.is_active.is_(True), ConfigValue.deactivated_at > at),
        ConfigValue.effective_from <= at,
        or_(ConfigValue.effective_to.is_(None), ConfigValue.effective_to > at),
    )


@lru_cache(maxsize=8)
def _shaped_statement(has_persona: bool, has_agent: bool, has_workflow: bool) -> Select[Any]:
    """The resolution statement for one shape of scope (which members are set), built once:
    building it per call would cost more than running it."""
    scope = Scope(
        "p" if has_persona else None, 1 if has_agent else None, 1 if has_workflow else None
    )
    at: BindParameter[datetime] = bindparam("at")
    match = applicable(scope)
    winner = (
        select(
            ConfigValue.id,
            ConfigValue.value,
            ConfigValue.version,
            ConfigValue.persona,
            ConfigValue.agent_id,
            ConfigValue.workflow_id,
            ConfigValue.effective_from,
            ConfigValue.effective_to,
        )
        .where(
            ConfigValue.config_key == bindparam("key"),
            match,
            live_at(at),
        )
        .order_by(ConfigValue.scope_rank.desc(), ConfigValue.version.desc())
        .limit(1)
        .subquery("winner")
    )
    upcoming = (
        select(func.min(ConfigValue.effective_from).label("next_from"))
        .where(
            ConfigValue.config_key == bindparam("key"),
            match,
            ConfigValue.is_active.is_(True),
            ConfigValue.effective_from > at,
        )
        .subquery("upcoming")
    )
    return select(upcoming.c.next_from, winner).select_from(upcoming.outerjoin(winner, true()))


def resolve_statement(key: str, scope: Scope, at: datetime) -> tuple[Select[Any], dict[str, Any]]:
    """The one statement that resolves ``key`` for ``scope`` at ``at``, and its parameters."""
    statement = _shaped_statement(
        scope.persona is not None, scope.agent_id is not None, scope.workflow_id is not None
    )
    return statement, {"key": key, "at": at, **scope_params(scope)}


def _earliest(*instants: datetime | None) -> datetime | None:
    present = [i for i in instants if i is not None]
    return min(present) if present else None


async def resolve_query(
    conn: AsyncSession | AsyncConnection, key: str, scope: Scope, at: datetime, default: Any
) -> Resolution:
    """Resolve with one statement on ``conn`` (a session or a Core connection)."""
    statement, params = resolve_statement(key, scope, at)
    row = (await conn.execute(statement, params)).one()
    next_from = row.next_from
    if row.id is None:
        return Resolution(key=key, value=default, source="default", valid_until=next_from)
    value_scope = Scope(row.persona, row.agent_id, row.workflow_id)
    effective_to = row.effective_to
    return Resolution(
        key=key,
        value=row.value,
        source=value_scope.level.value,
        version=row.version,
        value_id=row.id,
        value_scope=value_scope,
        effective_from=row.effective_from,
        effective_to=effective_to,
        valid_until=_earliest(next_from, effective_to),
    )


# --- explanation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    value_id: int
    value: Any
    scope: Scope
    version: int
    effective_from: datetime
    effective_to: datetime | None
    is_active: bool
    deactivated_at: datetime | None
    status: Literal["winner", "outranked", "superseded", "scheduled", "expired", "inactive"]
    reason: str


def _status(row: ConfigValue, at: datetime) -> tuple[str, str] | None:
    """Why a value is not live at ``at``, or None when it is."""
    if not row.is_active and (row.deactivated_at is None or row.deactivated_at <= at):
        when = row.deactivated_at.isoformat() if row.deactivated_at else "an unknown time"
        return "inactive", f"deactivated at {when}"
    if row.effective_from > at:
        return "scheduled", f"takes effect at {row.effective_from.isoformat()}"
    if row.effective_to is not None and row.effective_to <= at:
        return "expired", f"ended at {row.effective_to.isoformat()}"
    return None


async def explain(session: AsyncSession, key: str, scope: Scope, at: datetime) -> list[Candidate]:
    """Every value that applies to ``scope``, best first, each with why it won or lost."""
    rows = (
        await session.scalars(
            select(ConfigValue)
            .where(ConfigValue.config_key == key, applicable(scope))
            .order_by(ConfigValue.scope_rank.desc(), ConfigValue.version.desc()),
            scope_params(scope),
        )
    ).all()
    out: list[Candidate] = []
    winner: ConfigValue | None = None
    for row in rows:
        value_scope = Scope(row.persona, row.agent_id, row.workflow_id)
        not_live = _status(row, at)
        if not_live is not None:
            status, reason = not_live
        elif winner is None:
            winner = row
            status = "winner"
            reason = (
                f"most specific live value ({value_scope.level.value} scope: "
                f"{value_scope.describe()}), highest live version there"
            )
        elif winner.scope_rank == row.scope_rank and winner.scope_key == row.scope_key:
            status, reason = "superseded", f"version {winner.version} is newer at this scope"
        else:
            winner_scope = Scope(winner.persona, winner.agent_id, winner.workflow_id)
            status = "outranked"
            reason = (
                f"a more specific scope wins: {winner_scope.level.value} "
                f"({winner_scope.describe()})"
            )
        out.append(
            Candidate(
                value_id=row.id,
                value=row.value,
                scope=value_scope,
                version=row.version,
                effective_from=row.effective_from,
                effective_to=row.effective_to,
                is_active=row.is_active,
                deactivated_at=row.deactivated_at,
                status=status,  # type: ignore[arg-type]
                reason=reason,
            )
        )
    return out
