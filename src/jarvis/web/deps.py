"""Dependencies of page routes: the signed-in viewer (or a trip to the sign-in page)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jarvis.core import permissions as perm
from jarvis.core.guards import current_principal
from jarvis.core.identity import Principal
from jarvis.errors import Forbidden, Unauthorized


class SignInRequired(Unauthorized):
    """A page asked for by someone not signed in: the HTML error layer redirects it to
    ``/login?next=…`` instead of showing an error."""


async def page_viewer(
    principal: Annotated[Principal | None, Depends(current_principal)],
) -> Principal:
    if principal is None:
        raise SignInRequired("sign in to see this page")
    return principal


Viewer = Annotated[Principal, Depends(page_viewer)]


class PagePermission:
    """A page dependency: the signed-in viewer if they hold ``permission`` (403 page naming
    it otherwise); declared on the route, so tests/test_permission_matrix.py reads it."""

    def __init__(self, permission: str, action: str) -> None:
        self.permission = permission
        self.action = action

    async def __call__(self, principal: Viewer) -> Principal:
        require(principal, self.permission, self.action)
        return principal


AgentsEditor = Annotated[
    Principal, Depends(PagePermission(perm.AGENTS_WRITE, "Creating, editing or deleting agents"))
]
ConfigEditor = Annotated[
    Principal, Depends(PagePermission(perm.CONFIG_WRITE, "Changing configuration"))
]
CommandRunner = Annotated[
    Principal, Depends(PagePermission(perm.EXECUTIONS_CREATE, "Running or cancelling commands"))
]
ExecutionsDecider = Annotated[
    Principal,
    Depends(PagePermission(perm.EXECUTIONS_APPROVE, "Approving or rejecting executions")),
]


def require(principal: Principal, permission: str, action: str) -> None:
    """403 naming what the viewer tried and the permission it takes."""
    if not principal.can(permission):
        raise Forbidden(
            f"{action} needs the {permission} permission, which your persona "
            f"({principal.persona}) does not have",
            extra={"permission": permission},
        )


def wants_fragment(request: Request) -> bool:
    """Whether the ES modules asked for the page's main content only (``?fragment=1``)."""
    return request.query_params.get("fragment") == "1"
