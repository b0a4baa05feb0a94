"""Changing the registry: register a key, change its definition (through a change request
when the key needs approval) or update it now, and list keys.

Each change is a new revision of the definition, audited, logged and announced like a
change of a value (``jarvis.config.changes``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import lock_ledger, record_audit
from jarvis.config import approvals, registry
from jarvis.config.changes import Change, log_change
from jarvis.config.models import ConfigRegistry
from jarvis.config.reads import ConfigReads
from jarvis.config.registry import KeyChangeOutcome, KeyInfo, RegistryChanges
from jarvis.config.validation import compile_schema, validate_value
from jarvis.core.identity import Actor
from jarvis.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from jarvis.kit.clock import utcnow

KEY_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
MAX_KEY_LENGTH = 100


class KeyRegistry:
    """Registry writes; ``reads`` answers and caches the definitions."""

    def __init__(self, reads: ConfigReads) -> None:
        self.reads = reads

    async def list_keys(
        self, session: AsyncSession, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[KeyInfo], int]:
        """Keys ordered by name, one page; ``search`` matches key and description."""
        return await registry.list_keys(session, search=search, limit=limit, offset=offset)

    async def register_key(
        self,
        session: AsyncSession,
        *,
        key: str,
        description: str,
        schema: dict[str, Any],
        default: Any,
        scopes: Sequence[str],
        secret: bool,
        requires_approval: bool,
        actor: Actor,
    ) -> KeyInfo:
        """Add a key to the registry; 409 when it exists, 422 when the default fails."""
        if not KEY_RE.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
            raise ValidationFailed.field(
                ["key"],
                "must be dotted lower-case words (letters, digits, '_'; each word starting "
                f"with a letter), at most {MAX_KEY_LENGTH} characters",
            )
        await lock_ledger(session)
        if await session.get(ConfigRegistry, key) is not None:
            raise Conflict(f"the configuration key '{key}' already exists")
        validator = compile_schema(schema)
        validate_value(validator, default, key=key, loc=("default",), secret=secret)
        row = ConfigRegistry(
            key=key,
            description=description,
            value_schema=schema,
            default_value=default,
            allowed_scopes=registry.ordered_scopes(scopes),
            is_secret=secret,
            requires_approval=requires_approval,
            revision=1,
            updated_by=actor.label,
        )
        session.add(row)
        await session.flush()
        await self._definition_changed(session, row, "registry.create", actor, before=None)
        return KeyInfo.from_row(row)

    async def update_key(
        self,
        session: AsyncSession,
        key: str,
        changes: RegistryChanges,
        *,
        actor: Actor,
        if_match: int | None = None,
        change_request_id: int | None = None,
    ) -> KeyInfo:
        """Change a key's definition now. A new schema must accept the default and every
        value that is live or scheduled; otherwise 422 lists the values it would break.

        This applies without four eyes: on behalf of a person, call ``change_key``, which
        turns a change of a key that needs approval into a change request.
        """
        await lock_ledger(session)
        row = await session.scalar(
            select(ConfigRegistry).where(ConfigRegistry.key == key).with_for_update()
        )
        if row is None:
            await self.reads.key_info(key, session)  # raises the 404 with suggestions
            raise NotFound(f"no configuration key '{key}'")
        if if_match is not None and if_match != row.revision:
            raise PreconditionFailed(
                f"'{key}' is at revision {row.revision}, not {if_match}; reload and retry"
            )
        before = registry.registry_json(row)
        proposed = await _proposed(session, row, changes)
        if proposed == registry.definition(row):
            return KeyInfo.from_row(row)
        row.description = proposed["description"]
        row.value_schema = proposed["schema"]
        row.default_value = proposed["default"]
        row.allowed_scopes = proposed["scopes"]
        row.is_secret = proposed["secret"]
        row.requires_approval = proposed["requiresApproval"]
        row.revision += 1
        row.updated_by = actor.label
        row.updated_at = utcnow()
        await session.flush()
        await self._definition_changed(
            session,
            row,
            "registry.update",
            actor,
            before=before,
            change_request_id=change_request_id,
        )
        return KeyInfo.from_row(row)

    async def change_key(
        self,
        session: AsyncSession,
        key: str,
        changes: RegistryChanges,
        *,
        actor: Actor,
        if_match: int | None = None,
        reason: str | None = None,
    ) -> KeyChangeOutcome:
        """Change a key's definition; for a key that needs approval (turning approval off
        or un-masking a secret included), open a change request instead."""
        await lock_ledger(session)
        info = await self.reads.key_info(key, session)
        if not info.requires_approval:
            return KeyChangeOutcome(
                info=await self.update_key(session, key, changes, actor=actor, if_match=if_match)
            )
        if if_match is not None and if_match != info.revision:
            raise PreconditionFailed(
                f"'{key}' is at revision {info.revision}, not {if_match}; reload and retry"
            )
        row = await session.get(ConfigRegistry, key)
        assert row is not None  # noqa: S101 - key_info found it under the same lock
        # Checked now, so a request never holds a change that could not apply today.
        if await _proposed(session, row, changes) == registry.definition(row):
            return KeyChangeOutcome(info=info)
        payload = {**changes.as_json(), "revision": info.revision}
        request = await approvals.open_request(
            session, key, "registry", payload, actor=actor, reason=reason, secret=info.secret
        )
        return KeyChangeOutcome(request=request)

    async def _definition_changed(
        self,
        session: AsyncSession,
        row: ConfigRegistry,
        action: str,
        actor: Actor,
        *,
        before: dict[str, Any] | None,
        change_request_id: int | None = None,
    ) -> None:
        """Audit, log and announce a stored change of a key's definition."""
        after = registry.registry_json(row)
        await record_audit(
            session,
            actor=actor,
            action=f"config.{action}",
            entity_type="config_key",
            entity_id=row.key,
            before=before,
            after=after,
        )
        log_change(
            session,
            row.key,
            action,
            actor,
            old=before,
            new=after,
            change_request_id=change_request_id,
        )
        await session.flush()
        self.reads.announce(session, Change(row.key, None, None, action))


async def _proposed(
    session: AsyncSession, row: ConfigRegistry, changes: RegistryChanges
) -> dict[str, Any]:
    """The definition after ``changes``, checked against the stored values."""
    key = row.key
    schema = changes.schema if changes.schema is not None else row.value_schema
    default = changes.default if changes.default_set else row.default_value
    secret = row.is_secret or bool(changes.secret)
    validator = compile_schema(schema)
    validate_value(validator, default, key=key, loc=("default",), secret=secret)
    if changes.schema is not None:
        await registry.check_values_against(session, key, validator, secret=secret)
    scopes = list(row.allowed_scopes)
    if changes.scopes is not None:
        scopes = registry.ordered_scopes(changes.scopes)
        await registry.check_scopes_in_use(session, key, scopes)
    return {
        "description": changes.description or row.description,
        "schema": schema,
        "default": default,
        "scopes": scopes,
        "secret": row.is_secret if changes.secret is None else changes.secret,
        "requiresApproval": (
            row.requires_approval
            if changes.requires_approval is None
            else changes.requires_approval
        ),
    }
