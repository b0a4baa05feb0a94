"""What a route needs of its caller, as FastAPI dependencies every domain's routes share.

``Authenticated`` is any signed-in caller (401 otherwise); ``Permitted`` aliases such as
``AgentsWriter`` require a named permission (403 when the caller's persona lacks it, or
their token's scopes do). Who the caller is comes from the application's identity
resolver (auth's ``resolve_principal``, wired in by ``create_app``), which resolves each
request once; so domains below auth can guard their routes without importing it.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from jarvis.core import permissions as perm
from jarvis.core.identity import Principal
from jarvis.core.permissions import PERMISSIONS
from jarvis.errors import Forbidden, Unauthorized
from jarvis.kit.app_state import StateKey


class IdentityResolver(Protocol):
    """Who sent a request (None without credentials); raises 401 for a bad credential."""

    async def __call__(self, connection: HTTPConnection, /) -> Principal | None: ...


IDENTITY: StateKey[IdentityResolver] = StateKey("identity", "who sent a request")


def identity_resolver(connection: HTTPConnection) -> IdentityResolver:
    """The application's identity resolver."""
    return IDENTITY.get(connection)


async def current_principal(request: Request) -> Principal | None:
    """The caller, or None when the request carries no credential."""
    return await identity_resolver(request)(request)


async def require_auth(
    principal: Annotated[Principal | None, Depends(current_principal)],
) -> Principal:
    """The authenticated caller; 401 when there is none."""
    if principal is None:
        raise Unauthorized(
            "sign in (POST /api/login) or send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


class RequirePermission:
    """A dependency: the caller if they hold ``permission``; 403 otherwise."""

    def __init__(self, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        self.permission = permission

    async def __call__(self, principal: Annotated[Principal, Depends(require_auth)]) -> Principal:
        if not principal.can(self.permission):
            if principal.scopes is not None and (
                principal.is_admin or self.permission in principal.permissions
            ):
                why = f"the token's scopes do not include '{self.permission}'"
            else:
                why = f"the persona '{principal.persona}' is not granted '{self.permission}'"
            raise Forbidden(
                f"this needs the permission '{self.permission}': {why}",
                extra={"permission": self.permission},
            )
        return principal

    def __repr__(self) -> str:
        return f"RequirePermission({self.permission!r})"


Authenticated = Annotated[Principal, Depends(require_auth)]
# One alias per permission, for route signatures (mypy needs names, not calls).
AgentsWriter = Annotated[Principal, Depends(RequirePermission(perm.AGENTS_WRITE))]
ExecutionsCreator = Annotated[Principal, Depends(RequirePermission(perm.EXECUTIONS_CREATE))]
ExecutionsApprover = Annotated[Principal, Depends(RequirePermission(perm.EXECUTIONS_APPROVE))]
ConfigWriter = Annotated[Principal, Depends(RequirePermission(perm.CONFIG_WRITE))]
ConfigApprover = Annotated[Principal, Depends(RequirePermission(perm.CONFIG_APPROVE))]
GovernanceWriter = Annotated[Principal, Depends(RequirePermission(perm.GOVERNANCE_WRITE))]
PersonasWriter = Annotated[Principal, Depends(RequirePermission(perm.PERSONAS_WRITE))]
UsersAdmin = Annotated[Principal, Depends(RequirePermission(perm.USERS_ADMIN))]
AuditReader = Annotated[Principal, Depends(RequirePermission(perm.AUDIT_READ))]
