"""The execution events channel (``jarvis.executions``): to each execution's followers,
and to the ``subscribe-all`` listeners.

Followers (``jarvis.realtime.follower``) are found by execution id. ``subscribe-all``
listeners get live events only (no replay): admins every execution's, others those of
executions they created. The creator of an execution is looked up once and kept in a
bounded LRU cache; events that arrive while the lookup runs wait for it, so their order is
kept.
"""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from cachetools import LRUCache

from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import NotFound
from jarvis.kit.bus import Message
from jarvis.orchestration import service
from jarvis.orchestration.events import EVENTS_CHANNEL
from jarvis.realtime.channel import Client, Deliver, Spawn, encode
from jarvis.realtime.follower import ExecutionFollower

log = structlog.get_logger(__name__)

# Events of one execution kept while its creator is looked up.
MAX_WAITING_FOR_OWNER: Final = 10_000
DEFAULT_OWNER_CACHE_SIZE: Final = 10_000
_UNKNOWN: Final = object()


class ExecutionListener:
    """Hands each execution event to whoever wants it, without waiting for anyone."""

    channel: Final = EVENTS_CHANNEL

    def __init__(
        self, db: Database, spawn: Spawn, *, owner_cache_size: int = DEFAULT_OWNER_CACHE_SIZE
    ) -> None:
        self.db = db
        self.spawn = spawn
        self.followers: dict[str, set[ExecutionFollower]] = {}
        self.all_admins: set[Client] = set()
        self.all_by_user: dict[int, set[Client]] = {}
        self.owners: LRUCache[str, int | None] = LRUCache(maxsize=max(owner_cache_size, 1))
        self._waiting_for_owner: dict[str, list[str]] = {}

    # --- registration ------------------------------------------------------------------------

    def follower(self, execution_id: str, after_seq: int, deliver: Deliver) -> ExecutionFollower:
        """A follower of one execution (not registered until ``open``)."""
        return ExecutionFollower(self, execution_id, after_seq, deliver)

    def add_follower(self, follower: ExecutionFollower) -> None:
        """Live events of the follower's execution go to it from now on."""
        self.followers.setdefault(follower.execution_id, set()).add(follower)

    def remove_follower(self, follower: ExecutionFollower) -> None:
        """No more events for ``follower``."""
        followers = self.followers.get(follower.execution_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self.followers[follower.execution_id]

    def subscribe_all(self, client: Client) -> None:
        """Every execution's events (admins), or those of the client's user's executions."""
        if client.is_admin:
            self.all_admins.add(client)
        else:
            self.all_by_user.setdefault(client.user_id, set()).add(client)

    def unsubscribe_all(self, client: Client) -> None:
        """No more events through ``subscribe-all`` for ``client``."""
        self.all_admins.discard(client)
        mine = self.all_by_user.get(client.user_id)
        if mine is not None:
            mine.discard(client)
            if not mine:
                del self.all_by_user[client.user_id]

    def forget(self, client: Client) -> None:
        """``client`` is gone (its followers are closed by the client itself)."""
        self.unsubscribe_all(client)

    def close_followers(self) -> None:
        """Close every follower (the hub is stopping)."""
        for followers in list(self.followers.values()):
            for follower in list(followers):
                follower.close()

    def stats(self) -> dict[str, int]:
        """Followers, followed executions and ``subscribe-all`` listeners."""
        return {
            "followers": sum(len(f) for f in self.followers.values()),
            "followedExecutions": len(self.followers),
            "allListeners": len(self.all_admins) + sum(len(c) for c in self.all_by_user.values()),
        }

    # --- the channel -------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        """One execution event, to its followers and to the ``subscribe-all`` listeners
        that may see it and do not follow it already."""
        execution_id = message.get("executionId")
        if not isinstance(execution_id, str) or not isinstance(message.get("seq"), int):
            return
        text: str | None = None
        followers = self.followers.get(execution_id)
        if followers:
            text = encode(message)
            for follower in list(followers):
                follower.offer(message, text)
        if self.all_admins or self.all_by_user:
            text = text if text is not None else encode(message)
            for client in list(self.all_admins):
                if not client.follows(execution_id):
                    client.push(text)
            if self.all_by_user:
                self._to_owner(execution_id, text)

    def on_gap(self) -> None:
        """Events may have been lost: every follower reads the database for newer ones."""
        for followers in list(self.followers.values()):
            for follower in list(followers):
                follower.on_gap()

    # --- subscribe-all for non-admins: by the execution's creator ------------------------------

    def _to_owner(self, execution_id: str, text: str) -> None:
        owner = self.owners.get(execution_id, _UNKNOWN)
        if owner is _UNKNOWN:
            waiting = self._waiting_for_owner.get(execution_id)
            if waiting is None:
                self._waiting_for_owner[execution_id] = [text]
                self.spawn(self._look_up_owner(execution_id), name="realtime-owner")
            elif len(waiting) < MAX_WAITING_FOR_OWNER:
                waiting.append(text)
            return
        if isinstance(owner, int):
            self._to_user(owner, execution_id, [text])

    def _to_user(self, user_id: int, execution_id: str, texts: list[str]) -> None:
        for client in list(self.all_by_user.get(user_id, ())):
            if not client.follows(execution_id):
                for text in texts:
                    client.push(text)

    async def _look_up_owner(self, execution_id: str) -> None:
        owner: int | None
        try:
            async with unit_of_work(self.db, write=False) as session:
                execution = await service.get_execution(session, execution_id)
                owner = execution.created_by_id
        except NotFound:
            owner = None  # not ours (another deployment on the same Redis): nobody's
        except asyncio.CancelledError:
            self._waiting_for_owner.pop(execution_id, None)
            raise
        except Exception as exc:  # retried with the execution's next event
            log.warning("realtime.owner_lookup_failed", execution_id=execution_id, error=str(exc))
            self._waiting_for_owner.pop(execution_id, None)
            return
        self.owners[execution_id] = owner
        texts = self._waiting_for_owner.pop(execution_id, [])
        if owner is not None:
            self._to_user(owner, execution_id, texts)
