"""Who a request is: credentials resolved to a ``Principal``, cached briefly per instance.

Resolving a session cookie or a bearer token costs a database read (the session or token,
its user and the persona's permissions). The answer is kept for ``JARVIS_AUTH_CACHE_SECONDS``
(never past the credential's own expiry). Revocations and permission edits are announced
on the bus (``jarvis.auth.revocation``) and drop the affected entries on every instance at
once; the time limit bounds staleness should an instance miss a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from cachetools import TTLCache
from sqlalchemy import or_, update

from jarvis.auth.models import ApiToken
from jarvis.auth.revocation import AUTH_CHANNEL, PERMISSIONS_CHANGED, affects
from jarvis.auth.sessions.service import principal_from_session
from jarvis.auth.tokens.service import principal_from_token
from jarvis.core.identity import Principal
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.app_state import StateKey
from jarvis.kit.bus import GAP, EventBus
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import keyed_digest, sha256_hex

log = structlog.get_logger(__name__)

# A token's last_used_at is written at most this often (it is shown to its owner, not used
# for decisions).
TOKEN_TOUCH_SECONDS = 60.0
CACHE_SIZE = 100_000


class Credentials:
    """Resolves session ids and tokens to principals, with a short-lived shared cache."""

    def __init__(
        self, db: Database, bus: EventBus | None, *, secret_key: str, cache_seconds: float
    ) -> None:
        self.db = db
        self.bus = bus
        self.secret_key = secret_key
        self.cache_seconds = cache_seconds
        self._cache: TTLCache[str, tuple[Principal, float]] = TTLCache(
            CACHE_SIZE, max(cache_seconds, 0.001)
        )
        self._touched: TTLCache[int, bool] = TTLCache(CACHE_SIZE, TOKEN_TOUCH_SECONDS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.bus is None:
            return
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name="auth-revocations")
        await ready.wait()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self, ready: asyncio.Event) -> None:
        assert self.bus is not None  # noqa: S101 - start() checked
        while True:
            try:
                async with self.bus.subscribe(AUTH_CHANNEL) as subscription:
                    ready.set()
                    async for message in subscription:
                        if message is GAP or not isinstance(message, dict):
                            self.clear()
                        else:
                            self.apply(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ready.set()
                log.warning("auth.bus_unavailable", error=str(exc))
                self.clear()
                await asyncio.sleep(1.0)

    # --- the cache ------------------------------------------------------------------------

    def clear(self) -> None:
        self._cache.clear()

    def apply(self, message: dict[str, Any]) -> None:
        """Drop what a revocation or permission change makes stale."""
        if message.get("type") == PERMISSIONS_CHANGED:
            self.clear()
            return
        stale = [
            key
            for key, (principal, _) in list(self._cache.items())
            if affects(
                message,
                via=principal.via,
                credential_id=principal.credential_id,
                user_id=principal.user_id,
            )
        ]
        for key in stale:
            self._cache.pop(key, None)

    def _cached(self, key: str) -> Principal | None:
        if self.cache_seconds <= 0:
            return None
        entry = self._cache.get(key)
        if entry is None:
            return None
        principal, expires = entry
        if expires <= time.time():
            self._cache.pop(key, None)
            return None
        return principal

    def _keep(self, key: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.cache_seconds <= 0:
            return
        expires = time.time() + self.cache_seconds
        if expires_at is not None:
            expires = min(expires, expires_at.timestamp())
        self._cache[key] = (principal, expires)

    # --- resolution -----------------------------------------------------------------------

    def session_hash(self, session_token: str) -> str:
        return keyed_digest(self.secret_key, session_token)

    async def from_session(self, session_token: str) -> Principal | None:
        """The principal of a session cookie; None when it is unknown, expired or revoked."""
        digest = self.session_hash(session_token)
        key = "s:" + digest
        principal = self._cached(key)
        if principal is not None:
            return principal
        async with unit_of_work(self.db, write=False) as session:
            principal = await principal_from_session(session, digest)
        if principal is not None:
            self._keep(key, principal, principal.expires_at)
        return principal

    async def from_token(self, token: str) -> Principal | None:
        """The principal of a bearer token; None when it is unknown, expired or revoked."""
        digest = sha256_hex(token)
        key = "t:" + digest
        principal = self._cached(key)
        if principal is not None:
            return principal
        async with unit_of_work(self.db, write=False) as session:
            principal = await principal_from_token(session, digest)
        if principal is not None:
            self._keep(key, principal, principal.expires_at)
            self._touch(principal.credential_id)
        return principal

    def _touch(self, token_id: int) -> None:
        """Record the token's use off the request's path, at most once a minute."""
        if token_id in self._touched:
            return
        self._touched[token_id] = True
        task = asyncio.create_task(self._write_last_used(token_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_last_used(self, token_id: int) -> None:
        now = utcnow()
        try:
            async with unit_of_work(self.db) as session:
                await session.execute(
                    update(ApiToken)
                    .where(
                        ApiToken.id == token_id,
                        or_(
                            ApiToken.last_used_at.is_(None),
                            ApiToken.last_used_at < now - timedelta(seconds=TOKEN_TOUCH_SECONDS),
                        ),
                    )
                    .values(last_used_at=now)
                )
        except Exception as exc:  # the token worked; its usage note is best effort
            log.warning("auth.token_touch_failed", token_id=token_id, error=str(exc))


CREDENTIALS: StateKey[Credentials] = StateKey(
    "credentials", "the cached sessions and tokens (who a credential belongs to)"
)
