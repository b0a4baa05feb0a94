"""Pure ASGI middleware (no BaseHTTPMiddleware: it breaks context variables)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_CONTENT_TYPE = b"application/problem+json"


async def _send_problem(send: Send, status: int, title: str, slug: str, detail: str) -> None:
    body = json.dumps(
        {"type": f"urn:jarvis:problem:{slug}", "title": title, "status": status, "detail": detail}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Answer 413 to requests whose body is larger than ``limit`` bytes.

    A declared ``Content-Length`` is checked before the app runs; a body without one
    (chunked, or a protocol without the header) is read up to the limit first, then
    replayed to the app.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _reject(self, send: Send) -> None:
        await _send_problem(
            send,
            413,
            "Payload too large",
            "payload-too-large",
            f"The request body exceeds the limit of {self.limit} bytes",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.limit
            except ValueError:
                too_large = False  # the server rejects a malformed length itself
            if too_large:
                await self._reject(send)
                return
            await self.app(scope, receive, send)
            return
        if scope.get("http_version", "1.1").startswith("1") and (
            headers.get(b"transfer-encoding") is None
        ):
            # HTTP/1.x without Content-Length or Transfer-Encoding has no body (RFC 9112).
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RejectNulInUrl:
    """Answer 400 to a request whose path or query string encodes a NUL character.

    No identifier or search text contains one, and PostgreSQL cannot compare with it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = scope.get("raw_path") or scope.get("path", "").encode()
            query = scope.get("query_string", b"")
            if b"%00" in raw.lower() or b"%00" in query or b"\x00" in raw + query:
                if scope["type"] == "http":
                    await _send_problem(
                        send,
                        400,
                        "Bad request",
                        "bad-request",
                        "The URL contains an encoded NUL character (%00), which no "
                        "parameter accepts",
                    )
                    return
        await self.app(scope, receive, send)
