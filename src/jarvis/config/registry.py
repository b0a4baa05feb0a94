"""The registry of configuration keys: definitions as the service uses them, the checks a
definition change must pass, looking one up, and listing.

Changing a definition is ``jarvis.config.keys``; the cached lookup ``jarvis.config.reads``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from jsonschema.protocols import Validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.config.models import ConfigChangeLog, ConfigChangeRequest, ConfigRegistry, ConfigValue
from jarvis.config.validation import compile_schema, mask, schema_errors
from jarvis.core.scope import LEVELS, Scope
from jarvis.errors import NotFound, ValidationFailed
from jarvis.kit.clock import utcnow


@dataclass(frozen=True)
class KeyInfo:
    """A registry entry as the service uses it; the schema is compiled when first used
    (listing keys needs no validator)."""

    key: str
    description: str
    schema: dict[str, Any]
    default: Any
    scopes: tuple[str, ...]
    secret: bool
    requires_approval: bool
    revision: int
    updated_at: datetime
    updated_by: str

    @cached_property
    def validator(self) -> Validator:
        return compile_schema(self.schema)

    @classmethod
    def from_row(cls, row: ConfigRegistry) -> KeyInfo:
        return cls(
            key=row.key,
            description=row.description,
            schema=row.value_schema,
            default=row.default_value,
            scopes=tuple(s for s in (level.value for level in LEVELS) if s in row.allowed_scopes),
            secret=row.is_secret,
            requires_approval=row.requires_approval,
            revision=row.revision,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )


@dataclass
class RegistryChanges:
    description: str | None = None
    schema: dict[str, Any] | None = None
    default: Any = None
    default_set: bool = False
    scopes: list[str] | None = None
    secret: bool | None = None
    requires_approval: bool | None = None

    def as_json(self) -> dict[str, Any]:
        """The change as a change request's payload (only what changes)."""
        out: dict[str, Any] = {}
        for name, value in (
            ("description", self.description),
            ("schema", self.schema),
            ("scopes", self.scopes),
            ("secret", self.secret),
            ("requiresApproval", self.requires_approval),
        ):
            if value is not None:
                out[name] = value
        if self.default_set:
            out["default"] = self.default
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistryChanges:
        return cls(
            description=data.get("description"),
            schema=data.get("schema"),
            default=data.get("default"),
            default_set="default" in data,
            scopes=data.get("scopes"),
            secret=data.get("secret"),
            requires_approval=data.get("requiresApproval"),
        )


@dataclass(frozen=True)
class KeyChangeOutcome:
    """A definition change was applied (``info``) or awaits approval (``request``)."""

    info: KeyInfo | None = None
    request: ConfigChangeRequest | None = None


def value_scope(row: ConfigValue | ConfigChangeLog) -> Scope:
    return Scope(row.persona, row.agent_id, row.workflow_id)


async def load_key(session: AsyncSession, key: str) -> KeyInfo:
    """The registry entry of ``key`` as stored; 404 naming the closest keys when unknown."""
    row = await session.get(ConfigRegistry, key)
    if row is not None:
        return KeyInfo.from_row(row)
    known = list((await session.scalars(select(ConfigRegistry.key))).all())
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else ""
    raise NotFound(f"no configuration key '{key}'{hint}")


async def list_keys(
    session: AsyncSession, *, search: str | None, limit: int, offset: int
) -> tuple[list[KeyInfo], int]:
    """Keys ordered by name, one page; ``search`` matches key and description as text."""
    query = select(ConfigRegistry)
    if search:
        # Literal text: "_" and "%" in a search are characters, not wildcards.
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            func.lower(ConfigRegistry.key).like(pattern, escape="\\")
            | func.lower(ConfigRegistry.description).like(pattern, escape="\\")
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(ConfigRegistry.key).limit(limit).offset(offset))
    return [KeyInfo.from_row(r) for r in rows], total


async def check_values_against(
    session: AsyncSession, key: str, validator: Validator, *, secret: bool
) -> None:
    """422 listing the live or scheduled values a new schema would reject."""
    now = utcnow()
    rows = await session.scalars(
        select(ConfigValue).where(
            ConfigValue.config_key == key,
            ConfigValue.is_active.is_(True),
            (ConfigValue.effective_to.is_(None)) | (ConfigValue.effective_to > now),
        )
    )
    broken = []
    for row in rows:
        for error in schema_errors(validator, row.value, loc=["schema"], secret=secret):
            broken.append(
                {
                    **error,
                    "msg": f"version {row.version} at {value_scope(row).describe()} "
                    f"would break the new schema: {error['msg']}",
                }
            )
    if broken:
        raise ValidationFailed(
            f"the new schema of '{key}' rejects {len(broken)} stored value(s); "
            "change or deactivate them first",
            errors=broken[:50],
        )


async def check_scopes_in_use(session: AsyncSession, key: str, scopes: Sequence[str]) -> None:
    """422 when active values use a scope the key would no longer allow."""
    rows = await session.scalars(
        select(ConfigValue).where(ConfigValue.config_key == key, ConfigValue.is_active.is_(True))
    )
    used = sorted({value_scope(r).level.value for r in rows} - set(scopes))
    if used:
        raise ValidationFailed.field(
            ["scopes"],
            f"active values exist at scope(s) {', '.join(used)}; deactivate them first",
        )


def ordered_scopes(scopes: Sequence[str]) -> list[str]:
    wanted = set(scopes)
    unknown = wanted - {level.value for level in LEVELS}
    if unknown or not wanted:
        raise ValidationFailed.field(
            ["scopes"],
            "must name at least one of global, persona, agent, workflow"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""),
        )
    return [level.value for level in LEVELS if level.value in wanted]


def definition(row: ConfigRegistry) -> dict[str, Any]:
    """The definition as stored (unmasked), to compare with a proposed one."""
    return {
        "description": row.description,
        "schema": row.value_schema,
        "default": row.default_value,
        "scopes": list(row.allowed_scopes),
        "secret": row.is_secret,
        "requiresApproval": row.requires_approval,
    }


def registry_json(row: ConfigRegistry) -> dict[str, Any]:
    return {
        "key": row.key,
        "description": row.description,
        "schema": row.value_schema,
        "default": mask(row.default_value, row.is_secret),
        "scopes": list(row.allowed_scopes),
        "secret": row.is_secret,
        "requiresApproval": row.requires_approval,
    }
