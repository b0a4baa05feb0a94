"""What a stored configuration change leaves behind: a row of the change log, and the
``Change`` announced on the bus (``CONFIG_CHANNEL``) once the transaction commits.

Every writer (values, key definitions, approvals, snapshots) logs through ``log_change``;
the poll of ``jarvis.config.reads`` reads the same log to catch changes a bus message
missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.config.models import ConfigChangeLog
from jarvis.core.identity import Actor
from jarvis.core.scope import Scope
from jarvis.kit.clock import utcnow

# The bus channel every instance listens to for ``config_changed``.
CONFIG_CHANNEL = "jarvis.config"


@dataclass(frozen=True)
class Change:
    """One stored change, as announced on the bus."""

    key: str
    scope: Scope | None
    version: int | None
    action: str

    def as_json(self) -> dict[str, Any]:
        """The change as a bus message carries it."""
        return {
            "key": self.key,
            "scope": self.scope.as_json() if self.scope is not None else None,
            "version": self.version,
            "action": self.action,
        }

    @property
    def of_definition(self) -> bool:
        """Whether the key's definition (not one of its values) changed."""
        return self.action.startswith("registry.")


def log_change(
    session: AsyncSession,
    key: str,
    action: str,
    actor: Actor,
    *,
    old: Any,
    new: Any,
    scope: Scope | None = None,
    version: int | None = None,
    value_id: int | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    reason: str | None = None,
    change_request_id: int | None = None,
    snapshot_id: int | None = None,
) -> None:
    """Add the change-log row of one change (values already masked by the caller).

    Called after the audit entry: its lock is held to commit, so log ids follow commit
    order (the poll relies on that).
    """
    session.add(
        ConfigChangeLog(
            config_key=key,
            action=action,
            scope_identifiers=scope.as_json() if scope is not None else None,
            persona=scope.persona if scope else None,
            agent_id=scope.agent_id if scope else None,
            workflow_id=scope.workflow_id if scope else None,
            old_value=old,
            new_value=new,
            version=version,
            value_id=value_id,
            effective_from=window[0],
            effective_to=window[1],
            performed_by=actor.label,
            performed_by_id=actor.user_id,
            reason=reason,
            change_request_id=change_request_id,
            snapshot_id=snapshot_id,
            created_at=utcnow(),
        )
    )
