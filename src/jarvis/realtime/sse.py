"""Server-Sent Events: one execution's events for clients that cannot use WebSockets.

``GET /api/agent-executions/{id}/events`` with ``Accept: text/event-stream`` answers a
stream of ``id: <seq>`` / ``event: <type>`` / ``data: <event JSON>`` records: the stored
events after ``Last-Event-ID`` (or ``afterSeq``), then live ones, with the same follower as
the WebSocket (no gap, no duplicate). A ``: heartbeat`` comment goes out every heartbeat
interval; the stream ends after the execution's terminal event. When the execution has
ended and the client already has every event, the answer is 204, which tells a browser's
``EventSource`` to stop reconnecting. A client that reads too slowly has its stream ended
(it reconnects with ``Last-Event-ID`` and misses nothing). At every heartbeat the
caller's session or token is checked again: once it is revoked the stream ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.dependencies import still_authenticated
from jarvis.orchestration import service
from jarvis.orchestration.events import Event, final_status
from jarvis.orchestration.lifecycle import FINAL
from jarvis.realtime.hub import REALTIME, RealtimeHub
from jarvis.settings import SETTINGS

EVENT_STREAM: Final = "text/event-stream"
# How long a browser waits before reconnecting a dropped stream.
RETRY_MS: Final = 2000
HEARTBEAT_COMMENT: Final = ": heartbeat\n\n"

# The OpenAPI description of the stream, merged into the JSON route's responses.
SSE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": (
            "The events as JSON (default), or with `Accept: text/event-stream` as a stream "
            "of Server-Sent Events (`id: <seq>`, `event: <type>`, `data: <event JSON>`) that "
            "replays the events after `Last-Event-ID` (or `afterSeq`), continues live and "
            "ends after the terminal event"
        ),
        "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
    },
    204: {
        "description": (
            "Event stream only: the execution has ended and the client has every event "
            "(an EventSource stops reconnecting)"
        )
    },
}


def wants_event_stream(request: Request) -> bool:
    """True when the client asks for ``text/event-stream`` (and prefers it to JSON)."""
    accept = request.headers.get("accept", "")
    if EVENT_STREAM not in accept.lower():
        return False
    quality: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (item.strip() for item in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = max(q, quality.get(media.lower(), 0.0))
    stream = quality.get(EVENT_STREAM, 0.0)
    return stream > 0 and stream >= quality.get("application/json", 0.0)


def record(body: Event, text: str) -> str:
    """One SSE record (JSON has no raw newlines, so ``data`` is a single line)."""
    return f"id: {body['seq']}\nevent: {body['type']}\ndata: {text}\n\n"


async def event_stream(
    request: Request, session: AsyncSession, execution_id: str, status: str, *, after_seq: int
) -> Response:
    """The SSE answer for the execution (already authorised; now in ``status``) after
    ``after_seq``."""
    if status in FINAL:
        rest = await service.events_of(session, execution_id, after_seq=after_seq, limit=1)
        if not rest:
            return Response(status_code=204)
    hub = REALTIME.get(request)
    settings = SETTINGS.get(request)
    stream = _stream(
        hub,
        execution_id,
        after_seq,
        heartbeat_seconds=settings.ws_heartbeat_seconds,
        queue_size=settings.ws_send_queue_size,
        authorised=lambda: still_authenticated(request),
    )
    return StreamingResponse(
        stream,
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    hub: RealtimeHub,
    execution_id: str,
    after_seq: int,
    *,
    heartbeat_seconds: float,
    queue_size: int,
    authorised: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    queue: asyncio.Queue[tuple[Event, str] | None] = asyncio.Queue(queue_size + 1)

    def deliver(body: Event, text: str) -> None:
        if queue.qsize() >= queue_size:
            # Too slow: end the stream; the client resumes from its Last-Event-ID.
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
            follower.close()
            return
        queue.put_nowait((body, text))

    follower = hub.follower(execution_id, after_seq, deliver)
    try:
        await follower.open(authorize=False)
        yield f"retry: {RETRY_MS}\n\n"
        follower.start()
        while True:
            try:
                async with asyncio.timeout(heartbeat_seconds):
                    item = await queue.get()
            except TimeoutError:
                if follower.closed:
                    return  # the application is shutting down
                if not await authorised():
                    return  # signed out, or the session or token was revoked
                yield HEARTBEAT_COMMENT
                continue
            if item is None:
                return
            body, text = item
            yield record(body, text)
            if final_status(body) is not None:
                return
    finally:
        follower.close()
