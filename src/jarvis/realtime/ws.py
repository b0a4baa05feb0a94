"""The WebSocket endpoint ``/api/agent-executions/ws``: live execution events.

Protocol (docs/realtime.md): the server accepts the socket and authenticates it with the
session cookie, a bearer token (``Authorization`` header or ``?token=``) or a first
``{"type": "auth", "token": ...}`` message; on failure it closes with 1008. Then it greets
with ``connection-established`` and serves ``subscribe-execution`` (replay, then live),
``subscribe-all``, ``subscribe-config``, ``ping``; errors in what the client sends are
answered with ``error`` messages and never close the socket.

Each connection has one bounded outgoing queue, filled by the hub without waiting and
emptied by the connection's writer task; a client that lets it overflow is closed with
1013, and nobody else notices. Whether a client is alive is the WebSocket protocol's
business: the server (uvicorn, configured by ``uvicorn_ws_options``) sends a protocol ping
every heartbeat interval and closes a connection that does not answer one within two
intervals (1011); client libraries and browsers answer those by themselves, so a client
that only listens stays connected for as long as it likes. The ``heartbeat`` messages go
out every interval as information (the connection is up; a client may time its own
silence check on them) and are never a reason to close. When the application stops,
every socket is closed with 1001. When the session or token a socket was opened with is
revoked (sign-out, a revoked session or token, the user deactivated or moved to another
persona), the hub closes it with 4001. A refused subscription (another user's execution)
is audited as ``auth.forbidden``, once per execution and connection. A socket that drops
affects nothing but itself (executions run on regardless).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from jarvis.audit.service import record_audit
from jarvis.auth.credentials import CREDENTIALS, Credentials
from jarvis.auth.dependencies import SESSION_COOKIE
from jarvis.core.identity import Principal
from jarvis.db.session import unit_of_work
from jarvis.errors import Forbidden, NotFound
from jarvis.orchestration.events import Event
from jarvis.realtime.channel import encode
from jarvis.realtime.follower import ExecutionFollower
from jarvis.realtime.hub import REALTIME, RealtimeHub
from jarvis.realtime.protocol import (
    CLIENT_MESSAGE_TYPES,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    MAX_CLIENT_MESSAGE_BYTES,
    AuthMessage,
    ConnectionEstablished,
    ErrorCode,
    ErrorMessage,
    Heartbeat,
    Ping,
    Pong,
    PongMessage,
    ServerMessage,
    SubscribeAll,
    SubscribeConfig,
    Subscribed,
    SubscribedAll,
    SubscribedConfig,
    SubscribeExecution,
    UnsubscribeAll,
    UnsubscribeConfig,
    Unsubscribed,
    UnsubscribedAll,
    UnsubscribedConfig,
    UnsubscribeExecution,
    client_message_adapter,
)
from jarvis.settings import SETTINGS

log = structlog.get_logger(__name__)

# How `jarvis serve` runs uvicorn's WebSockets (tests and benchmarks use the same): the
# sans-I/O implementation costs the least CPU per message sent, which is what fan-out to
# many subscribers spends; small JSON events are not worth compressing for each socket.
UVICORN_WS_OPTIONS: Final[dict[str, Any]] = {
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
}
# A connection that leaves a protocol ping unanswered for this many heartbeat intervals is
# closed by uvicorn: a dead peer is noticed within three intervals of its last answer.
PING_TIMEOUT_HEARTBEATS: Final = 2


def uvicorn_ws_options(heartbeat_seconds: float) -> dict[str, Any]:
    """uvicorn's WebSocket settings for ``JARVIS_WS_HEARTBEAT_SECONDS``: the
    implementation above, and a protocol ping every heartbeat interval that must be
    answered within ``PING_TIMEOUT_HEARTBEATS`` intervals (what keeps or drops a client)."""
    return {
        **UVICORN_WS_OPTIONS,
        "ws_ping_interval": heartbeat_seconds,
        "ws_ping_timeout": PING_TIMEOUT_HEARTBEATS * heartbeat_seconds,
    }


router = APIRouter()

WS_PATH: Final = "/api/agent-executions/ws"
# Executions one connection may follow at once (each costs a follower).
MAX_SUBSCRIPTIONS: Final = 1000
# How long closing may wait for a client that does not read (a slow consumer).
CLOSE_GRACE_SECONDS: Final = 5.0
# The audit action of a refusal (as for HTTP 403s, jarvis.auth.denials).
FORBIDDEN_ACTION: Final = "auth.forbidden"


def _text(message: ServerMessage) -> str:
    return encode(message.model_dump(mode="json", by_alias=True, exclude_none=True))


PONG: Final = _text(PongMessage())
HEARTBEAT: Final = _text(Heartbeat())
SUBSCRIBED_ALL: Final = _text(SubscribedAll())
UNSUBSCRIBED_ALL: Final = _text(UnsubscribedAll())
SUBSCRIBED_CONFIG: Final = _text(SubscribedConfig())
UNSUBSCRIBED_CONFIG: Final = _text(UnsubscribedConfig())


def error_text(code: ErrorCode, message: str, execution_id: str | None = None) -> str:
    return _text(ErrorMessage(code=code, message=message, execution_id=execution_id))


_KNOWN_TYPES: Final = ", ".join(sorted(CLIENT_MESSAGE_TYPES))


def _whole_seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


# --- reading client messages ------------------------------------------------------------


class BadClientMessage(Exception):
    """What the client sent cannot be used; ``text`` is the error message to answer."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.text = error_text(code, message)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if loc and isinstance(loc[0], str) and loc[0] in CLIENT_MESSAGE_TYPES:
            loc = loc[1:]  # the union's tag, not a field
        where = ".".join(str(part) for part in loc) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_client_message(raw: str | bytes) -> Any:
    """The typed client message in ``raw``; raises ``BadClientMessage`` saying why not."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_CLIENT_MESSAGE_BYTES:
        raise BadClientMessage(
            "bad_message", f"a message may be at most {MAX_CLIENT_MESSAGE_BYTES} bytes"
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadClientMessage("invalid_json", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadClientMessage("bad_message", "a message must be a JSON object with a 'type'")
    kind = data.get("type")
    if kind is None:
        raise BadClientMessage("bad_message", "type: Field required")
    if not isinstance(kind, str):
        raise BadClientMessage("bad_message", "type: must be a string")
    if kind not in CLIENT_MESSAGE_TYPES:
        shown = kind if len(kind) <= 64 else kind[:61] + "..."
        raise BadClientMessage(
            "unknown_type",
            f"unknown message type {shown!r}; expected one of {_KNOWN_TYPES}",
        )
    try:
        return client_message_adapter.validate_python(data)
    except ValidationError as exc:
        raise BadClientMessage("bad_message", _describe(exc)) from None


# --- authentication ---------------------------------------------------------------------


class AuthFailed(Exception):
    """The socket is closed with 1008 and this reason."""


async def _principal_of(
    credentials: Credentials, *, cookie: str | None, tokens: list[str]
) -> Principal | None:
    if cookie:
        principal = await credentials.from_session(cookie)
        if principal is not None:
            return principal
    for token in tokens:
        principal = await credentials.from_token(token)
        if principal is not None:
            return principal
    return None


def _same_origin(websocket: WebSocket) -> bool:
    """False when a browser opened the socket from another site's page: the session
    cookie is then not honoured (cross-site WebSocket hijacking), tokens still are."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def authenticate(websocket: WebSocket, *, wait_seconds: float) -> Principal:
    """The caller: from the cookie, a bearer token (header or ``?token=``), or the first
    message (within ``wait_seconds``). Raises ``AuthFailed`` with the close reason."""
    credentials = CREDENTIALS.get(websocket)
    cookie = websocket.cookies.get(SESSION_COOKIE) if _same_origin(websocket) else None
    tokens = [t for t in (_bearer(websocket), websocket.query_params.get("token")) if t]
    if cookie or tokens:
        principal = await _principal_of(credentials, cookie=cookie, tokens=tokens)
        if principal is None:
            raise AuthFailed("invalid credentials")
        return principal
    try:
        async with asyncio.timeout(wait_seconds):
            first = await websocket.receive()
    except TimeoutError:
        raise AuthFailed("authentication required") from None
    if first["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(first.get("code", 1000))
    raw = first.get("text") if first.get("text") is not None else first.get("bytes")
    try:
        message = parse_client_message(raw or "")
    except BadClientMessage:
        raise AuthFailed("authentication required") from None
    if not isinstance(message, AuthMessage):
        raise AuthFailed("authentication required")
    principal = await _principal_of(credentials, cookie=None, tokens=[message.token])
    if principal is None:
        raise AuthFailed("invalid credentials")
    return principal


# --- one connection ---------------------------------------------------------------------


class SocketClient:
    """One authenticated WebSocket: its queue, writer, subscriptions and heartbeat."""

    def __init__(
        self,
        websocket: WebSocket,
        hub: RealtimeHub,
        principal: Principal,
        *,
        heartbeat_seconds: float,
        queue_size: int,
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.principal = principal
        self.client_id = str(uuid.uuid4())
        self.heartbeat_seconds = heartbeat_seconds
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self._closing: asyncio.Future[tuple[int, str]] = loop.create_future()
        self._followers: dict[str, ExecutionFollower] = {}
        # Executions whose refusal this connection has audited (once each, so a client
        # repeating a refused subscription cannot flood the ledger).
        self._refusals_audited: set[str] = set()

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    # --- what the hub calls ----------------------------------------------------------------

    def push(self, text: str) -> None:
        if self._closing.done():
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.info("realtime.client_too_slow", client_id=self.client_id, user_id=self.user_id)
            self.close(CLOSE_TRY_AGAIN_LATER, "client too slow")

    def follows(self, execution_id: str) -> bool:
        return execution_id in self._followers

    def tick(self, now: float) -> None:
        """Send the heartbeat (information only: protocol pings decide liveness)."""
        self.push(HEARTBEAT)

    def shutdown(self) -> None:
        self.close(CLOSE_GOING_AWAY, "server shutting down")

    def close(self, code: int, reason: str) -> None:
        """Ask for the socket to be closed with ``code`` (the first request wins)."""
        if not self._closing.done():
            self._closing.set_result((code, reason))

    # --- serving -------------------------------------------------------------------------

    async def serve(self) -> None:
        """Greet, then read and write until either side ends the connection."""
        greeting = ConnectionEstablished(
            client_id=self.client_id,
            user_id=self.user_id,
            is_admin=self.is_admin,
            heartbeat_seconds=_whole_seconds(self.heartbeat_seconds),
        )
        self.push(_text(greeting))
        self.hub.add_client(self)
        writer = asyncio.create_task(self._write(), name=f"ws-write-{self.client_id}")
        reader = asyncio.create_task(self._read(), name=f"ws-read-{self.client_id}")
        try:
            watched: set[asyncio.Future[Any]] = {writer, reader, self._closing}
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.hub.remove_client(self)
            for follower in self._followers.values():
                follower.close()
            self._followers.clear()
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            _log_failure(reader, self.client_id)
        if self._closing.done():
            code, reason = self._closing.result()
            await self._close_socket(code, reason)

    async def _close_socket(self, code: int, reason: str) -> None:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        try:
            # A client that does not read cannot take the close frame either: bounded.
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self.websocket.close(code, reason)
        except Exception as exc:  # already gone
            log.debug("realtime.close_failed", client_id=self.client_id, error=repr(exc))

    async def _write(self) -> None:
        send = self.websocket.send_text
        queue = self._queue
        while True:
            await send(await queue.get())

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text") if message.get("text") is not None else message.get("bytes")
            try:
                parsed = parse_client_message(raw or "")
            except BadClientMessage as bad:
                self.push(bad.text)
                continue
            await self._handle(parsed)

    async def _handle(self, message: Any) -> None:
        if isinstance(message, SubscribeExecution):
            await self._subscribe(message.execution_id, message.after_seq)
        elif isinstance(message, UnsubscribeExecution):
            follower = self._followers.pop(message.execution_id, None)
            if follower is not None:
                follower.close()
            self.push(_text(Unsubscribed(execution_id=message.execution_id)))
        elif isinstance(message, Ping):
            self.push(PONG)
        elif isinstance(message, Pong):
            pass  # an answer to a heartbeat: welcome, never required
        elif isinstance(message, SubscribeAll):
            self.hub.subscribe_all(self)
            self.push(SUBSCRIBED_ALL)
        elif isinstance(message, UnsubscribeAll):
            self.hub.unsubscribe_all(self)
            self.push(UNSUBSCRIBED_ALL)
        elif isinstance(message, SubscribeConfig):
            self.hub.subscribe_config(self)
            self.push(SUBSCRIBED_CONFIG)
        elif isinstance(message, UnsubscribeConfig):
            self.hub.unsubscribe_config(self)
            self.push(UNSUBSCRIBED_CONFIG)
        elif isinstance(message, AuthMessage):
            self.push(error_text("bad_message", "this connection is already authenticated"))

    def _deliver(self, _body: Event, text: str) -> None:
        self.push(text)

    async def _subscribe(self, execution_id: str, after_seq: int) -> None:
        previous = self._followers.pop(execution_id, None)
        if previous is not None:
            previous.close()  # subscribing again asks for a new replay from after_seq
        if len(self._followers) >= MAX_SUBSCRIPTIONS:
            self.push(
                error_text(
                    "too_many_subscriptions",
                    f"a connection may follow at most {MAX_SUBSCRIPTIONS} executions; "
                    "unsubscribe from some first",
                    execution_id,
                )
            )
            return
        follower = self.hub.follower(execution_id, after_seq, self._deliver)
        self._followers[execution_id] = follower
        try:
            status = await follower.open(principal=self.principal)
        except (NotFound, Forbidden) as exc:
            self._followers.pop(execution_id, None)
            code: ErrorCode = "not_found" if isinstance(exc, NotFound) else "forbidden"
            self.push(error_text(code, exc.detail, execution_id))
            if isinstance(exc, Forbidden):
                await self._audit_refusal(execution_id, exc)
            return
        except Exception as exc:
            self._followers.pop(execution_id, None)
            log.warning("realtime.subscribe_failed", execution_id=execution_id, error=repr(exc))
            self.push(
                error_text(
                    "unavailable", "the execution cannot be read now; try again", execution_id
                )
            )
            return
        if self._followers.get(execution_id) is not follower:
            follower.close()  # superseded meanwhile
            return
        self.push(_text(Subscribed(execution_id=execution_id, status=status)))
        follower.start()

    async def _audit_refusal(self, execution_id: str, exc: Forbidden) -> None:
        """Record a refused subscription in the audit ledger (best effort: a ledger that
        cannot be written must not break the connection)."""
        if execution_id in self._refusals_audited:
            return
        self._refusals_audited.add(execution_id)
        client = self.websocket.client
        try:
            async with unit_of_work(self.hub.db) as session:
                await record_audit(
                    session,
                    actor=self.principal.actor,
                    action=FORBIDDEN_ACTION,
                    entity_type="websocket",
                    entity_id=f"subscribe-execution {execution_id}"[:100],
                    after={
                        "message": "subscribe-execution",
                        "executionId": execution_id,
                        "path": WS_PATH,
                        "reason": exc.detail,
                        "persona": self.principal.persona,
                        "via": self.principal.via,
                        "clientId": self.client_id,
                        "ipAddress": client.host if client else None,
                    },
                )
        except Exception as failure:
            log.warning(
                "realtime.refusal_audit_failed", execution_id=execution_id, error=repr(failure)
            )


def _log_failure(reader: asyncio.Task[None], client_id: str) -> None:
    """A reader that failed other than by the client leaving is a bug: say so."""
    if reader.done() and not reader.cancelled():
        exc = reader.exception()
        if exc is not None and not isinstance(exc, WebSocketDisconnect):
            log.error("realtime.socket_failed", client_id=client_id, error=repr(exc))


@router.websocket(WS_PATH)
async def execution_events_socket(websocket: WebSocket) -> None:
    """Live execution events (see the module docstring and docs/realtime.md)."""
    hub = REALTIME.get(websocket)
    settings = SETTINGS.get(websocket)
    await websocket.accept()
    try:
        principal = await authenticate(websocket, wait_seconds=settings.ws_auth_timeout_seconds)
    except AuthFailed as failed:
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_POLICY_VIOLATION, str(failed))
        return
    except WebSocketDisconnect:
        return
    client = SocketClient(
        websocket,
        hub,
        principal,
        heartbeat_seconds=settings.ws_heartbeat_seconds,
        queue_size=settings.ws_send_queue_size,
    )
    await client.serve()
