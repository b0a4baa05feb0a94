"""API tokens: creating them (for oneself, or from the CLI for any user), resolving a bearer
token to its principal, listing and revoking them.

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
from jarvis.auth.models import ApiToken, User
from jarvis.auth.tokens.schemas import TokenOut
from jarvis.auth.users.service import get_user_by_email
from jarvis.core.identity import Actor, Principal
from jarvis.core.permissions import PERMISSIONS, unknown_permissions
from jarvis.errors import Conflict, Forbidden, NotFound, ValidationFailed
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.secrets import new_token, sha256_hex
from jarvis.personas.grants import persona_permissions

API_TOKEN_PREFIX = "jv_"  # noqa: S105 - a prefix, not a secret
REVOKE_ACTION = "token.revoke"


def token_out(row: ApiToken) -> TokenOut:
    """A token as listed (never its value)."""
    return TokenOut(
        id=row.id,
        name=row.name,
        prefix=row.token_prefix,
        scopes=row.scopes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def create_api_token(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    actor: Actor,
    expires_at: datetime | None = None,
    scopes: Sequence[str] | None = None,
) -> tuple[ApiToken, str]:
    """Create a named token for a user; returns the row and the token, shown only once.

    ``scopes`` limits the token to those permissions (within its user's); None allows
    every permission the user holds, now and later.
    """
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed.field(["name"], "must be 1 to 100 characters")
    existing = await session.scalar(
        select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.name == name)
    )
    if existing is not None:
        raise Conflict(f"{email} already has a token named '{name}'")
    if scopes is not None:
        unknown = unknown_permissions(list(scopes))
        if unknown:
            raise ValidationFailed.field(
                ["scopes"],
                f"unknown permission(s) {', '.join(unknown)}; known: {', '.join(PERMISSIONS)}",
            )
        scopes = sorted(set(scopes))
    if expires_at is not None and as_utc(expires_at) <= utcnow():
        raise ValidationFailed.field(["expiresAt"], "must be in the future")
    token = new_token(API_TOKEN_PREFIX)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=sha256_hex(token),
        token_prefix=token[:10],
        expires_at=expires_at,
        scopes=list(scopes) if scopes is not None else None,
    )
    session.add(row)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="token.create",
        entity_type="api_token",
        entity_id=row.id,
        after={
            "userId": user.id,
            "name": name,
            "prefix": row.token_prefix,
            "scopes": row.scopes,
            "expiresAt": as_utc(expires_at).isoformat() if expires_at else None,
        },
    )
    return row, token


async def principal_from_token(session: AsyncSession, token_hash: str) -> Principal | None:
    """The caller behind a live API token, by the SHA-256 of the token."""
    row = (
        await session.execute(
            select(ApiToken.id, ApiToken.expires_at, ApiToken.scopes, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    token_id, expires_at, scopes, user = row
    if (expires_at is not None and as_utc(expires_at) <= utcnow()) or not user.is_active:
        return None
    permissions = await persona_permissions(session, user.persona)
    return Principal(
        user.id,
        user.email,
        user.persona,
        "token",
        token_id,
        permissions,
        frozenset(scopes) if scopes is not None else None,
        as_utc(expires_at) if expires_at is not None else None,
    )


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


async def list_tokens_of(session: AsyncSession, email: str) -> list[TokenOut]:
    """Every token of the user with this e-mail, newest first (the CLI's listing)."""
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with e-mail {email}")
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return [token_out(row) for row in rows.all()]
