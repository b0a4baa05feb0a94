"""The signed-in user (``GET /api/user``, ``POST /api/user/password``), user administration
(``/api/users``) and what each persona may do (``/api/permissions``,
``PUT /api/personas/{key}/permissions``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from jarvis.auth.announce import announce_permission_change, announce_revocation
from jarvis.auth.models import User
from jarvis.auth.sessions.signin import start_browser_session
from jarvis.auth.users import admin as users
from jarvis.auth.users.schemas import (
    AdminUserOut,
    PasswordChange,
    PermissionCatalogue,
    PermissionOut,
    PersonaPermissionsIn,
    PersonaPermissionsOut,
    UserOut,
    UserUpdate,
)
from jarvis.auth.users.service import change_password as change_own_password
from jarvis.auth.users.service import get_user_with_profile
from jarvis.config.dependencies import Config
from jarvis.core.guards import Authenticated, UsersAdmin
from jarvis.core.scope import GLOBAL
from jarvis.db.session import DbSession
from jarvis.kit.schema import Limit, Offset, Page
from jarvis.personas.grants import set_persona_permissions

router = APIRouter(prefix="/api", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The user's id")]
PersonaKey = Annotated[str, Path(min_length=1, max_length=64, description="The persona's key")]


def user_out(user: User) -> AdminUserOut:
    return AdminUserOut(
        id=user.id,
        email=user.email,
        persona=user.persona,
        first_name=user.first_name,
        last_name=user.last_name,
        is_active=user.is_active,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
        failed_login_count=user.failed_login_count,
        locked_until=user.locked_until,
        has_password=user.password_hash is not None,
    )


@router.get("/user", response_model=UserOut, summary="The signed-in user")
async def current_user(principal: Authenticated, session: DbSession) -> UserOut:
    return UserOut.model_validate(await get_user_with_profile(session, principal.user_id))


@router.post(
    "/user/password",
    response_model=UserOut,
    summary="Change your password (ends your other sessions; this one gets a new id)",
)
async def change_password(
    body: PasswordChange,
    principal: Authenticated,
    request: Request,
    response: Response,
    session: DbSession,
    config: Config,
) -> UserOut:
    min_length = await config.get("auth.password_min_length", GLOBAL, as_type=int)
    user, ended = await change_own_password(
        session,
        principal.user_id,
        body.current_password,
        body.new_password,
        password_min_length=min_length,
    )
    announce_revocation(request, session, session_ids=ended)
    if principal.via == "session":
        await start_browser_session(request, response, config, session, user, "password")
    return UserOut.model_validate(await get_user_with_profile(session, user.id))


@router.get("/users", response_model=Page[AdminUserOut], summary="Users (administrators)")
async def list_users(
    principal: UsersAdmin,
    session: DbSession,
    persona: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200, description="In e-mail or name")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AdminUserOut]:
    rows, total = await users.list_users(session, persona=persona, q=q, limit=limit, offset=offset)
    return Page[AdminUserOut](
        items=[user_out(u) for u in rows], total=total, limit=limit, offset=offset
    )


@router.get("/users/{user_id}", response_model=AdminUserOut, summary="One user (administrators)")
async def get_user(user_id: UserId, principal: UsersAdmin, session: DbSession) -> AdminUserOut:
    return user_out(await users.get_user(session, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=AdminUserOut,
    summary="Change a user's persona or active flag (revokes their sessions)",
)
async def update_user(
    user_id: UserId, body: UserUpdate, principal: UsersAdmin, session: DbSession, request: Request
) -> AdminUserOut:
    change = await users.update_user(
        session, user_id, persona=body.persona, is_active=body.is_active, actor=principal.actor
    )
    if change.changed:
        # The user id covers their sessions (revoked) and tokens (their principal is re-read).
        announce_revocation(
            request, session, session_ids=change.revoked_sessions, user_ids=[change.user.id]
        )
    return user_out(change.user)


@router.post(
    "/users/{user_id}/unlock",
    response_model=AdminUserOut,
    summary="Clear a user's failed sign-ins and lockout (administrators)",
)
async def unlock_user(user_id: UserId, principal: UsersAdmin, session: DbSession) -> AdminUserOut:
    return user_out(await users.unlock_user(session, user_id, actor=principal.actor))


@router.get(
    "/permissions",
    response_model=PermissionCatalogue,
    summary="Every permission, and what each persona may do",
)
async def permissions(principal: Authenticated, session: DbSession) -> PermissionCatalogue:
    catalogue, table = await users.permission_catalogue(session)
    return PermissionCatalogue(
        permissions=[PermissionOut(name=n, description=d) for n, d in catalogue],
        personas=table,
    )


@router.put(
    "/personas/{key}/permissions",
    response_model=PersonaPermissionsOut,
    summary="Replace what a persona may do (administrators; not the admin persona)",
)
async def set_permissions(
    key: PersonaKey,
    body: PersonaPermissionsIn,
    principal: UsersAdmin,
    session: DbSession,
    request: Request,
) -> PersonaPermissionsOut:
    before, after = await set_persona_permissions(
        session, key, body.permissions, actor=principal.actor
    )
    if before != after:
        announce_permission_change(request, session)
    return PersonaPermissionsOut(
        persona=key, permissions=after, before=before, changed=before != after
    )
