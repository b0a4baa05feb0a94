"""Telling every instance that credentials or permissions changed.

A revocation (sign-out, a revoked session or token, a user deactivated or moved to another
persona, a persona's permissions edited) is stored first; after the commit one message on
the ``jarvis.auth`` channel reaches every instance, which drops what it cached about
those credentials and closes the WebSockets opened with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.db.session import after_commit
from jarvis.kit.bus import EventBus

AUTH_CHANNEL = "jarvis.auth"
REVOKED = "credentials_revoked"
PERMISSIONS_CHANGED = "permissions_changed"


def revoked_message(
    *,
    session_ids: Iterable[int] = (),
    token_ids: Iterable[int] = (),
    user_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """Sessions and tokens that no longer authenticate; a user id covers all of theirs."""
    return {
        "type": REVOKED,
        "sessionIds": sorted(set(session_ids)),
        "tokenIds": sorted(set(token_ids)),
        "userIds": sorted(set(user_ids)),
    }


def announce_after_commit(
    session: AsyncSession, bus: EventBus | None, message: dict[str, Any]
) -> None:
    """Publish ``message`` on the auth channel once ``session`` has committed."""
    if bus is None:
        return

    async def publish() -> None:
        await bus.publish(AUTH_CHANNEL, message)

    after_commit(session, publish)


def announce_revoked(
    session: AsyncSession,
    bus: EventBus | None,
    *,
    session_ids: Iterable[int] = (),
    token_ids: Iterable[int] = (),
    user_ids: Iterable[int] = (),
) -> None:
    """After the commit, tell every instance these credentials are revoked."""
    message = revoked_message(session_ids=session_ids, token_ids=token_ids, user_ids=user_ids)
    announce_after_commit(session, bus, message)


def announce_permissions_changed(session: AsyncSession, bus: EventBus | None) -> None:
    """After the commit, tell every instance to re-read what personas may do."""
    announce_after_commit(session, bus, {"type": PERMISSIONS_CHANGED})


def affects(message: dict[str, Any], *, via: str, credential_id: int, user_id: int) -> bool:
    """True when a revocation message covers this credential."""
    if message.get("type") != REVOKED:
        return False
    ids = message.get("sessionIds" if via == "session" else "tokenIds") or ()
    return credential_id in ids or user_id in (message.get("userIds") or ())
