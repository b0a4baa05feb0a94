"""The catalogue of named permissions that routes require and personas are granted.

Code names a permission (a route says which it needs); the database records who has it
(``persona_permissions``, edited by admins). The admin persona holds every permission
implicitly and cannot lose one. Reads need only a signed-in caller, or nobody for the
seed's public reads.
"""

from __future__ import annotations

from typing import Final

AGENTS_WRITE: Final = "agents:write"
EXECUTIONS_CREATE: Final = "executions:create"
EXECUTIONS_APPROVE: Final = "executions:approve"
CONFIG_WRITE: Final = "config:write"
CONFIG_APPROVE: Final = "config:approve"
GOVERNANCE_WRITE: Final = "governance:write"
PERSONAS_WRITE: Final = "personas:write"
USERS_ADMIN: Final = "users:admin"
AUDIT_READ: Final = "audit:read"

PERMISSIONS: Final[dict[str, str]] = {
    AGENTS_WRITE: "Create, edit, delete and restore agents.",
    EXECUTIONS_CREATE: "Run commands (start executions) and cancel one's own.",
    EXECUTIONS_APPROVE: "Approve or reject executions paused for a human decision.",
    CONFIG_WRITE: "Set configuration values and registry keys, save rules and templates, "
    "take and restore snapshots.",
    CONFIG_APPROVE: "Approve or reject configuration change requests.",
    GOVERNANCE_WRITE: "Change governance records (models, risk assessments, approval status).",
    PERSONAS_WRITE: "Register personas.",
    USERS_ADMIN: "Manage users, their sessions and tokens, and what each persona may do.",
    AUDIT_READ: "Read the audit ledger.",
}

ALL_PERMISSIONS: Final = frozenset(PERMISSIONS)
ADMIN_PERSONA_KEY: Final = "admin"


def unknown_permissions(names: object) -> list[str]:
    """The names in ``names`` that are not in the catalogue."""
    if not isinstance(names, list | tuple | set | frozenset):
        return []
    return sorted(str(n) for n in names if n not in PERMISSIONS)
