"""API tokens: one's own (``/api/user/tokens``) and, for administrators, anyone's
(``/api/users/{id}/tokens``). The token value appears only in the creation answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from jarvis.auth.announce import announce_revocation
from jarvis.auth.tokens import service as tokens
from jarvis.auth.tokens.schemas import TokenCreate, TokenCreated, TokenOut
from jarvis.auth.users.admin import get_user
from jarvis.core.guards import Authenticated, UsersAdmin
from jarvis.db.session import DbSession
from jarvis.kit.schema import Limit, Offset, Page

router = APIRouter(prefix="/api", tags=["tokens"])

TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The token's id")]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The user's id")]


@router.post(
    "/user/tokens",
    response_model=TokenCreated,
    status_code=201,
    summary="Create an API token for the caller (its value is shown only in this answer)",
)
async def create_token(
    body: TokenCreate, principal: Authenticated, session: DbSession, response: Response
) -> TokenCreated:
    row, value = await tokens.create_own_token(
        session,
        principal,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
    )
    response.headers["Location"] = f"/api/user/tokens/{row.id}"
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated(
        id=row.id,
        name=row.name,
        prefix=row.token_prefix,
        scopes=row.scopes,
        expires_at=row.expires_at,
        created_at=row.created_at,
        token=value,
    )


def _page(rows: list[TokenOut], total: int, limit: int, offset: int) -> Page[TokenOut]:
    return Page[TokenOut](items=rows, total=total, limit=limit, offset=offset)


@router.get("/user/tokens", response_model=Page[TokenOut], summary="The caller's API tokens")
async def my_tokens(
    principal: Authenticated, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[TokenOut]:
    rows, total = await tokens.list_tokens(session, principal.user_id, limit=limit, offset=offset)
    return _page([tokens.token_out(r) for r in rows], total, limit, offset)


@router.delete(
    "/user/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of the caller's API tokens",
)
async def revoke_my_token(
    token_id: TokenId, principal: Authenticated, session: DbSession, request: Request
) -> Response:
    row, revoked = await tokens.revoke_token(
        session, user_id=principal.user_id, token_id=token_id, actor=principal.actor
    )
    if revoked:
        announce_revocation(request, session, token_ids=[row.id])
    return Response(status_code=204)


@router.get(
    "/users/{user_id}/tokens",
    response_model=Page[TokenOut],
    summary="A user's API tokens (administrators)",
)
async def user_tokens(
    user_id: UserId,
    principal: UsersAdmin,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TokenOut]:
    await get_user(session, user_id)
    rows, total = await tokens.list_tokens(session, user_id, limit=limit, offset=offset)
    return _page([tokens.token_out(r) for r in rows], total, limit, offset)


@router.delete(
    "/users/{user_id}/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke one of a user's API tokens (administrators)",
)
async def revoke_user_token(
    user_id: UserId, token_id: TokenId, principal: UsersAdmin, session: DbSession, request: Request
) -> Response:
    await get_user(session, user_id)
    row, revoked = await tokens.revoke_token(
        session, user_id=user_id, token_id=token_id, actor=principal.actor
    )
    if revoked:
        announce_revocation(request, session, token_ids=[row.id])
    return Response(status_code=204)
