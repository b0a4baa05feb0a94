"""Announcing revocations and permission edits from a request: to every instance over the
bus after the commit, and to this instance's principal cache at once, so the very next
request with a revoked credential is refused here too."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from jarvis.auth.credentials import CREDENTIALS
from jarvis.auth.revocation import (
    PERMISSIONS_CHANGED,
    announce_permissions_changed,
    announce_revoked,
    revoked_message,
)
from jarvis.db.session import after_commit
from jarvis.kit.bus import BUS


def announce_revocation(
    request: HTTPConnection,
    session: AsyncSession,
    *,
    session_ids: list[int] | tuple[int, ...] = (),
    token_ids: list[int] | tuple[int, ...] = (),
    user_ids: list[int] | tuple[int, ...] = (),
) -> None:
    """After the commit: tell every instance (the bus), and this one's principal cache at
    once, so the very next request with a revoked credential is refused here too."""
    announce_revoked(
        session,
        BUS.get(request),
        session_ids=session_ids,
        token_ids=token_ids,
        user_ids=user_ids,
    )
    credentials = CREDENTIALS.get(request)
    message = revoked_message(session_ids=session_ids, token_ids=token_ids, user_ids=user_ids)
    after_commit(session, lambda: credentials.apply(message))


def announce_permission_change(request: HTTPConnection, session: AsyncSession) -> None:
    """After the commit: every instance (and this one at once) re-reads persona grants."""
    announce_permissions_changed(session, BUS.get(request))
    credentials = CREDENTIALS.get(request)
    after_commit(session, lambda: credentials.apply({"type": PERMISSIONS_CHANGED}))
