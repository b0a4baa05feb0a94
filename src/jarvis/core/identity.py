"""Who acts: ``Actor`` (what the audit ledger records) and ``Principal`` (an authenticated
caller with what they may do).

Auth creates principals from sessions and tokens; every domain receives them (to check a
permission, to decide whose records a caller sees) and records actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from jarvis.core.permissions import ADMIN_PERSONA_KEY

SYSTEM_ACTOR: Final = "system"


@dataclass(frozen=True)
class Actor:
    """Who did something: a user (id and e-mail) or a named system component."""

    label: str
    user_id: int | None = None

    @classmethod
    def system(cls, component: str = SYSTEM_ACTOR) -> Actor:
        return cls(label=component)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request, with what they may do."""

    user_id: int
    email: str
    persona: str
    via: Literal["session", "token"]
    # The user_sessions or api_tokens row the caller authenticated with.
    credential_id: int
    # The persona's permissions (every one for admin).
    permissions: frozenset[str] = frozenset()
    # A token's scopes (None: all of the user's permissions).
    scopes: frozenset[str] | None = None
    # When the credential stops working (None: a token without expiry).
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.persona == ADMIN_PERSONA_KEY

    def can(self, permission: str) -> bool:
        """True when the caller holds ``permission`` (and their token's scopes allow it)."""
        held = self.is_admin or permission in self.permissions
        return held and (self.scopes is None or permission in self.scopes)

    @property
    def actor(self) -> Actor:
        return Actor(label=self.email, user_id=self.user_id)
