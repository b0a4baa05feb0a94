"""The realtime hub: one bus subscription per channel per process, fanned out to clients.

Every WebSocket connection and SSE stream of this process is served from the same two bus
subscriptions (execution events and configuration changes); the hub hands each message to
whoever wants it, by execution id, without awaiting any client. A client that cannot keep
up notices it in its own bounded queue (see ``jarvis.realtime.ws``); the hub never waits.

Following one execution (``ExecutionFollower``) gives "replay, then live, with no gap and
no duplicate": the follower registers for live events *first*, then reads the stored
events after ``afterSeq``, then passes live events on, dropping those it already sent
(``seq`` de-duplication). Events are stored before they are published, so whatever a live
event or the bus's ``GAP`` marker says was missed is in the database: a follower that sees
a live event skip numbers, or a ``GAP``, re-reads the missing events from there.

``subscribe-all`` listeners get live events only (no replay): admins every execution's,
others those of executions they created. The creator of an execution is looked up once
and kept in a bounded LRU cache; events that arrive while the lookup runs wait for it, so
their order is kept.

The hub also listens on the auth channel (``jarvis.auth.revocation``): a revocation closes
every socket of this process opened with a revoked session or token, or by a revoked user,
with 4001 (``credentials revoked``). What the bus may have lost (a ``GAP``, a reconnect)
is made good by checking every socket's credential against the database; so is a socket
that registers just after a revocation arrived (its credential may have been read, or
taken from a cache, just before the revocation was stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

import structlog
from cachetools import LRUCache

from jarvis.auth.revocation import AUTH_CHANNEL, REVOKED, affects
from jarvis.auth.sessions import live_credentials
from jarvis.config.service import CONFIG_CHANNEL
from jarvis.core.identity import Principal
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import NotFound
from jarvis.kit.app_state import StateKey
from jarvis.kit.bus import GAP, EventBus, Message
from jarvis.orchestration import service
from jarvis.orchestration.events import EVENTS_CHANNEL, Event

log = structlog.get_logger(__name__)

# Stored events read per query when replaying.
REPLAY_PAGE: Final = 500
# Live events a follower keeps while it reads the database; past this it drops them and
# reads them back from the database instead (they are all stored).
MAX_BUFFERED: Final = 10_000
# Events of one execution kept while its creator is looked up.
MAX_WAITING_FOR_OWNER: Final = 10_000
DEFAULT_OWNER_CACHE_SIZE: Final = 10_000
# How long shutdown waits for clients to close their sockets.
SHUTDOWN_GRACE_SECONDS: Final = 5.0
RETRY_DELAYS: Final = (0.2, 0.5, 1.0, 2.0, 5.0)
# Sockets whose session or token was revoked (or whose user was) are closed with this.
CLOSE_CREDENTIALS_REVOKED: Final = 4001
REVOKED_REASON: Final = "credentials revoked"
# A socket registered this soon after a revocation (or a gap on the auth channel) arrived
# has its credential checked against the database: it may have been read just before the
# revocation was stored. Covers the time between the hub and the principal cache hearing
# of the same revocation, with a wide margin.
RECHECK_AFTER_REVOCATION_SECONDS: Final = 30.0

Deliver = Callable[[Event, str], None]
_UNKNOWN: Final = object()


def encode(message: Message) -> str:
    """Compact JSON text of a message (encoded once per message, shared by all clients)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Client(Protocol):
    """A connection the hub serves beyond single executions (a WebSocket)."""

    @property
    def user_id(self) -> int: ...

    @property
    def is_admin(self) -> bool: ...

    @property
    def principal(self) -> Principal:
        """Who opened the connection, and with which session or token."""

    def close(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` and ``reason`` (never waits)."""

    def push(self, text: str) -> None:
        """Queue ``text`` for sending; never waits (a full queue closes the client)."""

    def follows(self, execution_id: str) -> bool:
        """True when the client follows this execution (its follower sends its events)."""

    def tick(self, now: float) -> None:
        """A heartbeat interval passed (``now`` is the event loop's clock)."""

    def shutdown(self) -> None:
        """The server is stopping: close the connection."""


class ExecutionFollower:
    """Delivers one execution's events in ``seq`` order, replayed then live, exactly once.

    Use: ``status = await follower.open(...)`` (registers, checks, reads the first page),
    send whatever must precede the events, then ``follower.start()``; ``close()`` when done.
    ``deliver`` is called with each event and its JSON text, never concurrently, and must
    not wait.
    """

    def __init__(self, hub: RealtimeHub, execution_id: str, after_seq: int, deliver: Deliver):
        self.hub = hub
        self.execution_id = execution_id
        self.last_seq = after_seq
        self._deliver = deliver
        self._buffer: list[tuple[Event, str]] = []
        self._catching_up = True
        self._reread = False
        self._first_page: list[Event] | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def open(self, *, principal: Principal | None = None, authorize: bool = True) -> str:
        """Register for live events, then (in one read) check that ``principal`` may see
        the execution and read the first stored events after ``after_seq``. Returns the
        execution's status; raises ``NotFound`` / ``Forbidden`` (the follower is closed)."""
        self.hub._add_follower(self)
        try:
            async with unit_of_work(self.hub.db, write=False) as session:
                # The read starts after registering: whatever is committed later comes live.
                execution = await service.get_execution(
                    session, self.execution_id, principal=principal if authorize else None
                )
                status = execution.status
                rows = await service.events_of(
                    session, self.execution_id, after_seq=self.last_seq, limit=REPLAY_PAGE
                )
                self._first_page = [row.payload for row in rows]
        except BaseException:
            self.close()
            raise
        return status

    def start(self) -> None:
        """Deliver the first page, then what arrived live meanwhile; go live."""
        page, self._first_page = self._first_page or [], None
        for body in page:
            self._emit(body, None)
        if len(page) >= REPLAY_PAGE or not self._settle():
            self._spawn_catch_up()

    def close(self) -> None:
        """Stop delivering; forget buffered events."""
        if self.closed:
            return
        self.closed = True
        self._buffer.clear()
        self.hub._remove_follower(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # --- called by the hub -------------------------------------------------------------------

    def offer(self, message: Event, text: str) -> None:
        """A live event of this execution."""
        if self.closed:
            return
        if self._catching_up:
            if len(self._buffer) >= MAX_BUFFERED:
                self._buffer.clear()
                self._reread = True
            else:
                self._buffer.append((message, text))
            return
        seq = message["seq"]
        if seq <= self.last_seq:
            return
        if seq == self.last_seq + 1:
            self._emit(message, text)
            return
        # Numbers were skipped: the database has them (stored before published).
        self._buffer.append((message, text))
        self._catching_up = True
        self._spawn_catch_up()

    def on_gap(self) -> None:
        """The bus may have lost messages: read the database for anything newer."""
        if self.closed:
            return
        if self._catching_up:
            self._reread = True
            return
        self._catching_up = True
        self._spawn_catch_up()

    # --- inside ------------------------------------------------------------------------------

    def _emit(self, body: Event, text: str | None) -> None:
        seq = body.get("seq")
        if not isinstance(seq, int) or seq <= self.last_seq:
            return
        self.last_seq = seq
        self._deliver(body, text if text is not None else encode(body))

    def _settle(self) -> bool:
        """Deliver buffered live events in order; True when caught up (live from now on),
        False when the database must be read again (a hole, or a GAP meanwhile)."""
        buffered = sorted(self._buffer, key=lambda item: int(item[0]["seq"]))
        self._buffer = []
        for index, (message, text) in enumerate(buffered):
            seq = message["seq"]
            if seq <= self.last_seq:
                continue
            if seq != self.last_seq + 1:
                self._buffer = buffered[index:]
                return False
            self._emit(message, text)
        if self._reread:
            return False
        self._catching_up = False
        return True

    def _spawn_catch_up(self) -> None:
        if self.closed or (self._task is not None and not self._task.done()):
            return
        self._task = self.hub._spawn(self._catch_up(), name=f"follow-{self.execution_id}")

    async def _catch_up(self) -> None:
        failures = 0
        while not self.closed:
            self._reread = False
            try:
                async with unit_of_work(self.hub.db, write=False) as session:
                    rows = await service.events_of(
                        session, self.execution_id, after_seq=self.last_seq, limit=REPLAY_PAGE
                    )
                    page = [row.payload for row in rows]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again, never go quiet
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.warning(
                    "realtime.replay_failed", execution_id=self.execution_id, error=repr(exc)
                )
                self._reread = True
                await asyncio.sleep(delay)
                continue
            failures = 0
            if self.closed:
                return
            for body in page:
                self._emit(body, None)
            if len(page) >= REPLAY_PAGE:
                continue
            if self._settle():
                return


class RealtimeHub:
    """See the module docstring. One per application (process)."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        heartbeat_seconds: float = 15.0,
        owner_cache_size: int = DEFAULT_OWNER_CACHE_SIZE,
    ) -> None:
        self.db = db
        self.bus = bus
        self.heartbeat_seconds = heartbeat_seconds
        self._followers: dict[str, set[ExecutionFollower]] = {}
        self._all_admins: set[Client] = set()
        self._all_by_user: dict[int, set[Client]] = {}
        self._config: set[Client] = set()
        self._clients: set[Client] = set()
        self._no_clients = asyncio.Event()
        self._no_clients.set()
        self._owners: LRUCache[str, int | None] = LRUCache(maxsize=max(owner_cache_size, 1))
        self._waiting_for_owner: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[asyncio.Task[None]] = []
        # When (event-loop time) a revocation or a gap on the auth channel last arrived.
        self._last_revocation: float | None = None
        self.running = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the event and configuration channels; start the heartbeat."""
        if self.running:
            return
        self.running = True
        ready = [asyncio.Event(), asyncio.Event(), asyncio.Event()]
        self._listeners = [
            asyncio.create_task(
                self._listen(EVENTS_CHANNEL, self._on_event, self._on_events_gap, ready[0]),
                name="realtime-events",
            ),
            asyncio.create_task(
                self._listen(CONFIG_CHANNEL, self._on_config, None, ready[1]),
                name="realtime-config",
            ),
            asyncio.create_task(
                self._listen(AUTH_CHANNEL, self._on_auth, self._on_auth_gap, ready[2]),
                name="realtime-auth",
            ),
            asyncio.create_task(self._heartbeat(), name="realtime-heartbeat"),
        ]
        await asyncio.gather(*(event.wait() for event in ready))

    async def close(self) -> None:
        """Close every client (1001), wait briefly for them, stop listening."""
        for client in list(self._clients):
            client.shutdown()
        if self._clients:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_clients.wait(), SHUTDOWN_GRACE_SECONDS)
        for followers in list(self._followers.values()):
            for follower in list(followers):
                follower.close()
        tasks = [*self._listeners, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._listeners.clear()
        self._tasks.clear()
        self.running = False

    def stats(self) -> dict[str, int]:
        """How many clients and subscriptions this process serves (for health and tests)."""
        return {
            "clients": len(self._clients),
            "followers": sum(len(f) for f in self._followers.values()),
            "followedExecutions": len(self._followers),
            "allListeners": len(self._all_admins) + sum(len(c) for c in self._all_by_user.values()),
            "configListeners": len(self._config),
        }

    # --- registration ------------------------------------------------------------------------

    def follower(self, execution_id: str, after_seq: int, deliver: Deliver) -> ExecutionFollower:
        """A follower of one execution (not registered until ``open``)."""
        return ExecutionFollower(self, execution_id, after_seq, deliver)

    def add_client(self, client: Client) -> None:
        self._clients.add(client)
        self._no_clients.clear()
        if self._last_revocation is not None:
            since = asyncio.get_running_loop().time() - self._last_revocation
            if since <= RECHECK_AFTER_REVOCATION_SECONDS:
                self._spawn(self._close_revoked([client]), name="realtime-auth-check")

    def remove_client(self, client: Client) -> None:
        self._clients.discard(client)
        self.unsubscribe_all(client)
        self._config.discard(client)
        if not self._clients:
            self._no_clients.set()

    def subscribe_all(self, client: Client) -> None:
        if client.is_admin:
            self._all_admins.add(client)
        else:
            self._all_by_user.setdefault(client.user_id, set()).add(client)

    def unsubscribe_all(self, client: Client) -> None:
        self._all_admins.discard(client)
        mine = self._all_by_user.get(client.user_id)
        if mine is not None:
            mine.discard(client)
            if not mine:
                del self._all_by_user[client.user_id]

    def subscribe_config(self, client: Client) -> None:
        self._config.add(client)

    def unsubscribe_config(self, client: Client) -> None:
        self._config.discard(client)

    def _add_follower(self, follower: ExecutionFollower) -> None:
        self._followers.setdefault(follower.execution_id, set()).add(follower)

    def _remove_follower(self, follower: ExecutionFollower) -> None:
        followers = self._followers.get(follower.execution_id)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._followers[follower.execution_id]

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the bus -----------------------------------------------------------------------------

    async def _listen(
        self,
        channel: str,
        on_message: Callable[[Message], None],
        on_gap: Callable[[], None] | None,
        ready: asyncio.Event,
    ) -> None:
        first = True
        failures = 0
        while True:
            try:
                async with self.bus.subscribe(channel) as subscription:
                    ready.set()
                    failures = 0
                    if not first and on_gap is not None:
                        on_gap()  # messages published while we were away are lost
                    first = False
                    while True:
                        item = await subscription.get()
                        if item is GAP:
                            if on_gap is not None:
                                on_gap()
                        elif isinstance(item, dict):
                            try:
                                on_message(item)
                            except Exception as exc:  # one bad message never stops fan-out
                                log.error("realtime.dispatch_failed", error=repr(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ready.set()  # serve replays from the database until the bus is back
                first = False
                log.warning("realtime.bus_unavailable", channel=channel, error=str(exc))
                if on_gap is not None:
                    on_gap()
                await asyncio.sleep(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                failures += 1

    def _on_event(self, message: Message) -> None:
        execution_id = message.get("executionId")
        if not isinstance(execution_id, str) or not isinstance(message.get("seq"), int):
            return
        text: str | None = None
        followers = self._followers.get(execution_id)
        if followers:
            text = encode(message)
            for follower in list(followers):
                follower.offer(message, text)
        if self._all_admins or self._all_by_user:
            text = text if text is not None else encode(message)
            for client in list(self._all_admins):
                if not client.follows(execution_id):
                    client.push(text)
            if self._all_by_user:
                self._to_owner(execution_id, text)

    def _on_events_gap(self) -> None:
        for followers in list(self._followers.values()):
            for follower in list(followers):
                follower.on_gap()

    def _on_config(self, message: Message) -> None:
        if message.get("type") != "config_changed" or not self._config:
            return
        text = encode(message)
        for client in list(self._config):
            client.push(text)

    # --- revocations ---------------------------------------------------------------------------

    def _on_auth(self, message: Message) -> None:
        if message.get("type") != REVOKED:
            return  # permission edits do not change who a socket's user is
        self._last_revocation = asyncio.get_running_loop().time()
        for client in list(self._clients):
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

    def _on_auth_gap(self) -> None:
        """Revocations may have been lost: check every socket against the database."""
        self._last_revocation = asyncio.get_running_loop().time()
        if self._clients:
            self._spawn(self._close_revoked(list(self._clients)), name="realtime-auth-check")

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

    # --- subscribe-all for non-admins: by the execution's creator ------------------------------

    def _to_owner(self, execution_id: str, text: str) -> None:
        owner = self._owners.get(execution_id, _UNKNOWN)
        if owner is _UNKNOWN:
            waiting = self._waiting_for_owner.get(execution_id)
            if waiting is None:
                self._waiting_for_owner[execution_id] = [text]
                self._spawn(self._look_up_owner(execution_id), name="realtime-owner")
            elif len(waiting) < MAX_WAITING_FOR_OWNER:
                waiting.append(text)
            return
        if isinstance(owner, int):
            self._to_user(owner, execution_id, [text])

    def _to_user(self, user_id: int, execution_id: str, texts: list[str]) -> None:
        for client in list(self._all_by_user.get(user_id, ())):
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
        self._owners[execution_id] = owner
        texts = self._waiting_for_owner.pop(execution_id, [])
        if owner is not None:
            self._to_user(owner, execution_id, texts)

    # --- heartbeat ---------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            now = loop.time()
            for client in list(self._clients):
                try:
                    client.tick(now)
                except Exception as exc:
                    log.error("realtime.heartbeat_failed", error=repr(exc))


REALTIME: StateKey[RealtimeHub] = StateKey("realtime", "the live-event hub")
