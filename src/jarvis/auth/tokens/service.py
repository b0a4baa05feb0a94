"""API tokens a user holds: creating them for oneself, listing and revoking them.

The token value is shown once, when it is created; only its SHA-256 is stored. A token
may be limited to scopes (permission names); a caller can hand a token no more than they
may do themselves. Revoking stores ``revoked_at`` and an audit entry (``token.revoke``);
the caller announces it after the commit so every instance stops accepting the token at
once (``jarvis.auth.revocation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.auth.models import ApiToken
from jarvis.auth.users.service import create_api_token, get_user_by_email
from jarvis.core.identity import Actor, Principal
from jarvis.core.permissions import unknown_permissions
from jarvis.errors import Forbidden, NotFound
from jarvis.kit.clock import utcnow

REVOKE_ACTION = "token.revoke"


def _check_scopes(principal: Principal, scopes: Sequence[str] | None) -> None:
    """403 unless the caller may do everything they want the token to do."""
    if scopes is None:
        if principal.scopes is not None:
            raise Forbidden(
                "a token limited to scopes cannot create an unlimited token; name its "
                f"scopes (at most: {', '.join(sorted(principal.scopes)) or 'none'})",
                extra={"reason": "scopes"},
            )
        return
    beyond = sorted({name for name in scopes if not principal.can(name)})
    if beyond:
        raise Forbidden(
            f"a token's scopes must be permissions the caller holds; {principal.email} "
            f"does not hold {', '.join(beyond)}",
            extra={"reason": "scopes", "permissions": beyond},
        )


async def create_own_token(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    scopes: Sequence[str] | None,
    expires_at: datetime | None = None,
    expires_in_days: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for the caller; returns the row and the value (shown only once).

    Unknown scopes are a 422, scopes the caller does not hold a 403; admins may choose
    any (through a scoped token, only within its scopes)."""
    if scopes is None or not unknown_permissions(list(scopes)):
        _check_scopes(principal, scopes)
    if expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=expires_in_days)
    # Unknown scopes, a taken name and a past expiry are refused here (422 / 409).
    return await create_api_token(
        session,
        email=principal.email,
        name=name,
        actor=principal.actor,
        expires_at=expires_at,
        scopes=scopes,
    )


async def list_tokens(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> tuple[Sequence[ApiToken], int]:
    """The user's tokens (revoked and expired ones too), newest first, one page."""
    where = ApiToken.user_id == user_id
    total = await session.scalar(select(func.count()).select_from(ApiToken).where(where))
    rows = await session.scalars(
        select(ApiToken)
        .where(where)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), total or 0


async def _revoke(session: AsyncSession, row: ApiToken, *, actor: Actor) -> tuple[ApiToken, bool]:
    if row.revoked_at is not None:
        return row, False  # revoking again changes nothing
    row.revoked_at = utcnow()
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action=REVOKE_ACTION,
        entity_type="api_token",
        entity_id=row.id,
        after={"userId": row.user_id, "name": row.name, "prefix": row.token_prefix},
    )
    return row, True


async def revoke_token(
    session: AsyncSession, *, user_id: int, token_id: int, actor: Actor
) -> tuple[ApiToken, bool]:
    """Revoke one of ``user_id``'s tokens; 404 when they have none with that id. Returns
    the token and whether this call revoked it (False: it was revoked already)."""
    row = await session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
    )
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    return await _revoke(session, row, actor=actor)


async def revoke_token_by_name(
    session: AsyncSession, *, email: str, name: str, actor: Actor
) -> tuple[ApiToken, bool]:
    """Revoke the user's token called ``name`` (the CLI's way to name one)."""
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    row = await session.scalar(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == name.strip())
    )
    if row is None:
        raise NotFound(f"{user.email} has no token named '{name.strip()}'")
    return await _revoke(session, row, actor=actor)


async def list_tokens_of(session: AsyncSession, email: str) -> Sequence[ApiToken]:
    """Every token of the user with this e-mail, newest first (the CLI's listing)."""
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return rows.all()
