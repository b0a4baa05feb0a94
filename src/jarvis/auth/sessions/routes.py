"""Sign-in sessions: one's own (``/api/user/sessions``) and, for administrators, anyone's
(``/api/users/{id}/sessions``). Another user's session id answers 404, never 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from jarvis.auth.announce import announce_revocation
from jarvis.auth.models import UserSession
from jarvis.auth.sessions import service as sessions
from jarvis.auth.sessions.cookies import clear_session_cookies
from jarvis.auth.sessions.schemas import SessionOut
from jarvis.auth.users.admin import get_user
from jarvis.core.guards import Authenticated, UsersAdmin
from jarvis.core.identity import Principal
from jarvis.db.session import DbSession
from jarvis.kit.schema import Limit, Offset, Page

router = APIRouter(prefix="/api", tags=["sessions"])

SessionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The session's id")]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The user's id")]


def _current_session(principal: Principal) -> int | None:
    return principal.credential_id if principal.via == "session" else None


def _page(
    rows: list[UserSession], total: int, principal: Principal, limit: int, offset: int
) -> Page[SessionOut]:
    current = _current_session(principal)
    items = [
        SessionOut.model_validate(row).model_copy(update={"current": row.id == current})
        for row in rows
    ]
    return Page[SessionOut](items=items, total=total, limit=limit, offset=offset)


def _signed_out(principal: Principal, revoked: list[int]) -> Response:
    """204; clears the cookies when the request's own session was among those revoked."""
    response = Response(status_code=204)
    current = _current_session(principal)
    if current is not None and current in revoked:
        clear_session_cookies(response)
    return response


# --- one's own ----------------------------------------------------------------------------


@router.get("/user/sessions", response_model=Page[SessionOut], summary="The caller's live sessions")
async def my_sessions(
    principal: Authenticated, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[SessionOut]:
    rows, total = await sessions.list_sessions(
        session, principal.user_id, limit=limit, offset=offset
    )
    return _page(list(rows), total, principal, limit, offset)


@router.delete(
    "/user/sessions/{session_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of the caller's sessions (their current one signs them out)",
)
async def revoke_my_session(
    session_id: SessionId, principal: Authenticated, session: DbSession, request: Request
) -> Response:
    row = await sessions.revoke_session(
        session,
        user_id=principal.user_id,
        session_id=session_id,
        actor=principal.actor,
        reason="revoked by its user",
    )
    announce_revocation(request, session, session_ids=[row.id])
    return _signed_out(principal, [row.id])


@router.delete(
    "/user/sessions",
    status_code=204,
    response_class=Response,
    summary="Revoke every session of the caller but the current one",
)
async def revoke_my_other_sessions(
    principal: Authenticated, session: DbSession, request: Request
) -> Response:
    revoked = await sessions.revoke_sessions(
        session,
        user_id=principal.user_id,
        actor=principal.actor,
        reason="revoked by its user",
        keep=_current_session(principal),
    )
    if revoked:
        announce_revocation(request, session, session_ids=revoked)
    return Response(status_code=204)


# --- administration -----------------------------------------------------------------------


@router.get(
    "/users/{user_id}/sessions",
    response_model=Page[SessionOut],
    summary="A user's live sessions (administrators)",
)
async def user_sessions(
    user_id: UserId,
    principal: UsersAdmin,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[SessionOut]:
    await get_user(session, user_id)
    rows, total = await sessions.list_sessions(session, user_id, limit=limit, offset=offset)
    return _page(list(rows), total, principal, limit, offset)


@router.delete(
    "/users/{user_id}/sessions/{session_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of a user's sessions (administrators)",
)
async def revoke_user_session(
    user_id: UserId,
    session_id: SessionId,
    principal: UsersAdmin,
    session: DbSession,
    request: Request,
) -> Response:
    await get_user(session, user_id)
    row = await sessions.revoke_session(
        session,
        user_id=user_id,
        session_id=session_id,
        actor=principal.actor,
        reason="revoked by an administrator",
    )
    announce_revocation(request, session, session_ids=[row.id])
    return _signed_out(principal, [row.id])


@router.delete(
    "/users/{user_id}/sessions",
    status_code=204,
    response_class=Response,
    summary="Revoke every session of a user (administrators)",
)
async def revoke_user_sessions(
    user_id: UserId, principal: UsersAdmin, session: DbSession, request: Request
) -> Response:
    await get_user(session, user_id)
    revoked = await sessions.revoke_sessions(
        session, user_id=user_id, actor=principal.actor, reason="revoked by an administrator"
    )
    if revoked:
        announce_revocation(request, session, session_ids=revoked)
    return _signed_out(principal, revoked)
