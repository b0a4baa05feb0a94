"""The auth channel (``jarvis.auth.revocation``): a revocation closes every socket of this
process opened with a revoked session or token, or by a revoked user, with 4001
(``credentials revoked``).

What the bus may have lost (a ``GAP``, a reconnect) is made good by checking every socket's
credential against the database; so is a socket that registers just after a revocation
arrived (its credential may have been read, or taken from a cache, just before the
revocation was stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Final

import structlog

from jarvis.auth.revocation import AUTH_CHANNEL, REVOKED, affects
from jarvis.auth.sessions import live_credentials
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import Message
from jarvis.realtime.channel import Client, Spawn

log = structlog.get_logger(__name__)

# Sockets whose session or token was revoked (or whose user was) are closed with this.
CLOSE_CREDENTIALS_REVOKED: Final = 4001
REVOKED_REASON: Final = "credentials revoked"
# A socket registered this soon after a revocation (or a gap on the auth channel) arrived
# has its credential checked against the database: it may have been read just before the
# revocation was stored. Covers the time between the hub and the principal cache hearing
# of the same revocation, with a wide margin.
RECHECK_AFTER_REVOCATION_SECONDS: Final = 30.0


class RevocationListener:
    """Closes the sockets of revoked credentials; ``clients`` gives this process's."""

    channel: Final = AUTH_CHANNEL

    def __init__(
        self, db: Database, spawn: Spawn, clients: Callable[[], Collection[Client]]
    ) -> None:
        self.db = db
        self.spawn = spawn
        self._clients = clients
        # When (event-loop time) a revocation or a gap on the auth channel last arrived.
        self._last_revocation: float | None = None

    def client_added(self, client: Client) -> None:
        """A new socket: checked against the database when a revocation came just now."""
        if self._last_revocation is not None:
            since = asyncio.get_running_loop().time() - self._last_revocation
            if since <= RECHECK_AFTER_REVOCATION_SECONDS:
                self.spawn(self._close_revoked([client]), name="realtime-auth-check")

    def forget(self, client: Client) -> None:
        """Nothing is kept per client."""

    def on_message(self, message: Message) -> None:
        """A revocation closes the sockets it affects (permission edits change nothing:
        they do not change who a socket's user is)."""
        if message.get("type") != REVOKED:
            return
        self._last_revocation = asyncio.get_running_loop().time()
        for client in list(self._clients()):
            principal = client.principal
            if affects(
                message,
                via=principal.via,
                credential_id=principal.credential_id,
                user_id=principal.user_id,
            ):
                log.info(
                    "realtime.credentials_revoked",
                    user_id=principal.user_id,
                    via=principal.via,
                    credential_id=principal.credential_id,
                )
                client.close(CLOSE_CREDENTIALS_REVOKED, REVOKED_REASON)

    def on_gap(self) -> None:
        """Revocations may have been lost: check every socket against the database."""
        self._last_revocation = asyncio.get_running_loop().time()
        clients = list(self._clients())
        if clients:
            self.spawn(self._close_revoked(clients), name="realtime-auth-check")

    async def _close_revoked(self, clients: list[Client]) -> None:
        """Close those of ``clients`` whose session or token no longer authenticates."""
        sessions = {c.principal.credential_id for c in clients if c.principal.via == "session"}
        tokens = {c.principal.credential_id for c in clients if c.principal.via == "token"}
        try:
            async with unit_of_work(self.db, write=False) as session:
                live_sessions, live_tokens = await live_credentials(
                    session, session_ids=sessions, token_ids=tokens
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away; the next gap or revocation retries
            log.warning("realtime.credential_check_failed", error=repr(exc))
            return
        for client in clients:
            principal = client.principal
            live = live_sessions if principal.via == "session" else live_tokens
            if principal.credential_id not in live:
                client.close(CLOSE_CREDENTIALS_REVOKED, REVOKED_REASON)
