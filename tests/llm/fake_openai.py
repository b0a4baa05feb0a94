"""A small OpenAI-compatible HTTP server on loopback, for tests.

The real ``openai`` SDK talks to it over TCP, so the production client code runs end to
end. ``POST /v1/chat/completions`` answers in the real response shape. Without a script
it behaves deterministically from the request:

- a classification prompt (the system prompt lists ``Labels:`` as ``- name: description``)
  gets the label whose name and description words occur most often in the user's text;
- an extraction prompt (``Fields:`` as ``- name (type): description``) gets each field
  found after its name in the text (``year built: 1998``, ``policy number is PN-1``);
- a prompt carrying a JSON Schema gets a small object satisfying it;
- anything else gets ``Echo: <the user's text>`` (cut to ``max_tokens`` words).

Tests steer it through a control API: scripted replies (content, whole bodies, raw
bytes), forced status codes, delays, a required API key, and the record of every request
(headers including ``Authorization``, and the JSON body).

    async with running_fake_openai() as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k")

The server runs uvicorn in its own thread and event loop, so synchronous callers (a CLI
runner) can use it too: ``with FakeOpenAI() as server: ...``. Self-contained: it imports
nothing from the project.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

START_TIMEOUT = 10.0

# The lines the provider writes before its lists; how the fake recognises a task.
LABELS_MARKER = "\nLabels:\n"
FIELDS_MARKER = "\nFields:\n"
SCHEMA_MARKER = "satisfy this JSON Schema:\n"

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to "
    "was were will with about any new".split()
)
_TYPE_FROM_HINT = {
    "a string": "string",
    "a number": "number",
    "an integer": "integer",
    "true or false": "boolean",
    'a date as "YYYY-MM-DD"': "date",
    "an array of strings": "list",
}
_VALUE_PATTERNS = {
    "number": r"[-+]?\d[\d,]*(?:\.\d+)?",
    "integer": r"[-+]?\d[\d,]*",
    "boolean": r"yes|no|true|false",
    "date": r"\d{4}-\d{2}-\d{2}",
    "list": r"[^.;\n]+",
    "string": r"[^,.;\n]+",
}
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the parsed JSON, or the raw text when it is not JSON

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def messages(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return list(self.body["messages"])
        return []

    def text_of(self, role: str) -> str:
        """The content of every message of ``role``, joined."""
        return "\n".join(
            str(m.get("content") or "") for m in self.messages if m.get("role") == role
        )


@dataclass
class _Script:
    """What to answer to one request instead of the default behaviour."""

    status: int = 200
    content: str | None = None
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    usage: bool = True
    finish_reason: str = "stop"


class FakeOpenAI:
    """The server and its control API (thread-safe: tests and server share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: deque[_Script] = deque()
        self._delays: deque[float] = deque()
        self._requests: list[RecordedRequest] = []
        self._required_key: str | None = None
        self._counter = 0
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    # --- control API ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what a client's ``base_url`` should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reply(
        self, content: str, *, usage: bool = True, finish_reason: str = "stop", times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with a completion carrying ``content``."""
        self._queue(_Script(content=content, usage=usage, finish_reason=finish_reason), times=times)

    def reply_body(self, body: Any, *, status: int = 200) -> None:
        """Answer the next request with this JSON body (e.g. a completion without choices)."""
        self._queue(_Script(status=status, body=body))

    def reply_raw(
        self, raw: str | bytes, *, status: int = 200, content_type: str = "text/plain"
    ) -> None:
        """Answer the next request with these bytes as they are (a malformed response)."""
        data = raw.encode() if isinstance(raw, str) else raw
        self._queue(_Script(status=status, raw=data, content_type=content_type))

    def fail(
        self,
        status: int,
        message: str | None = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with an OpenAI-style error of ``status``."""
        text = message or f"the fake server was told to answer {status}"
        error_type, code = _ERROR_TYPES.get(status, ("server_error", None))
        body = {"error": {"message": text, "type": error_type, "param": None, "code": code}}
        self._queue(_Script(status=status, body=body, headers=dict(headers or {})), times=times)

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` requests this long before answering."""
        with self._lock:
            self._delays.extend([seconds] * times)

    def require_key(self, key: str | None) -> None:
        """Refuse (401, like OpenAI) requests whose bearer token is not ``key``."""
        with self._lock:
            self._required_key = key

    def reset(self) -> None:
        """Forget scripts, delays, the required key and the recorded requests."""
        with self._lock:
            self._scripts.clear()
            self._delays.clear()
            self._requests.clear()
            self._required_key = None

    def _queue(self, script: _Script, *, times: int = 1) -> None:
        with self._lock:
            self._scripts.extend(_Script(**vars(script)) for _ in range(times))

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on a free loopback port and serve from a background thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config, self._ready)
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"fake-openai-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the fake OpenAI server did not start")
        if self._startup_error is not None:
            raise RuntimeError("the fake OpenAI server failed to start") from self._startup_error

    def stop(self) -> None:
        """Stop serving (delayed requests are released) and wait for the thread."""
        if self._thread is None or self._server is None:
            return
        self._server.should_exit = True
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop has already ended
                pass
        self._thread.join(START_TIMEOUT)
        self._thread = None

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except BaseException as exc:  # reported to start(), which the test is waiting in
            self._startup_error = exc
        finally:
            sock.close()
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self._server.serve(sockets=[sock])

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the endpoint ---------------------------------------------------------------------

    async def _not_found(self, request: Request) -> Response:
        await self._record(request)
        return _error(
            404, f"Invalid URL ({request.method} {request.url.path})", "invalid_request_error"
        )

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
        )
        with self._lock:
            self._requests.append(recorded)
        return body

    async def _chat_completions(self, request: Request) -> Response:
        body = await self._record(request)
        with self._lock:
            delay = self._delays.popleft() if self._delays else 0.0
            required = self._required_key
            script = self._scripts.popleft() if self._scripts else None
        if delay > 0 and self._stopping is not None:
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass
        if required is not None:
            given = request.headers.get("authorization", "")
            if given != f"Bearer {required}":
                presented = given.removeprefix("Bearer ")
                # Like OpenAI, the message quotes the key it was given; the client must
                # never pass that on.
                return _error(
                    401,
                    f"Incorrect API key provided: {presented}.",
                    "invalid_request_error",
                    "invalid_api_key",
                )
        if script is not None and script.content is None:
            if script.raw is not None:
                return Response(
                    script.raw,
                    status_code=script.status,
                    media_type=script.content_type,
                    headers=script.headers,
                )
            return JSONResponse(script.body, status_code=script.status, headers=script.headers)
        problem = _check_request(body)
        if problem is not None:
            return _error(400, problem, "invalid_request_error")
        assert isinstance(body, dict)
        messages = body["messages"]
        if script is not None:
            assert script.content is not None
            content, finish, usage = script.content, script.finish_reason, script.usage
        else:
            content, finish = _default_answer(body)
            usage = True
        with self._lock:
            self._counter += 1
            number = self._counter
        answer: dict[str, Any] = {
            "id": f"chatcmpl-fake{number:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "system_fingerprint": "fp_fake",
        }
        if usage:
            prompt_tokens = sum(_count_words(str(m.get("content") or "")) for m in messages)
            completion_tokens = _count_words(content)
            answer["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
        return JSONResponse(answer)


class _Server(uvicorn.Server):
    """uvicorn that says when it listens."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready_event = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready_event.set()


@asynccontextmanager
async def running_fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A started fake server for the duration of the block."""
    server = FakeOpenAI()
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


# --- request checks and default answers ---------------------------------------------------


def _error(status: int, message: str, error_type: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}},
        status_code=status,
    )


def _check_request(body: Any) -> str | None:
    """What OpenAI would refuse with 400, or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in {
            "system",
            "developer",
            "user",
            "assistant",
        }:
            return "each message needs a valid 'role'"
    response_format = body.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict):
            return "'response_format' must be an object"
        if response_format.get("type") not in {"text", "json_object", "json_schema"}:
            return "Invalid value for 'response_format.type'"
        texts = " ".join(str(m.get("content") or "") for m in messages).lower()
        if response_format.get("type") == "json_object" and "json" not in texts:
            return (
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'."
            )
    return None


def _count_words(text: str) -> int:
    return len(text.split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _default_answer(body: dict[str, Any]) -> tuple[str, str]:
    """The deterministic answer to a request nobody scripted: (content, finish_reason)."""
    messages = body["messages"]
    system = "\n".join(
        str(m.get("content") or "") for m in messages if m.get("role") in {"system", "developer"}
    )
    user = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
    if LABELS_MARKER in system:
        return json.dumps(_classify(system.split(LABELS_MARKER, 1)[1], user)), "stop"
    if FIELDS_MARKER in system:
        return json.dumps(_extract(system.split(FIELDS_MARKER, 1)[1], user)), "stop"
    if SCHEMA_MARKER in system:
        schema = json.loads(system.split(SCHEMA_MARKER, 1)[1].strip())
        return json.dumps(example_of(schema)), "stop"
    if (body.get("response_format") or {}).get("type") == "json_object":
        return "{}", "stop"
    words = f"Echo: {user}".split()
    limit = body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        return " ".join(words[:limit]), "length"
    return " ".join(words), "stop"


def _classify(listing: str, text: str) -> dict[str, Any]:
    """The label whose name and description words occur most in ``text``."""
    counts: dict[str, int] = {}
    for word in _words(text):
        counts[word] = counts.get(word, 0) + 1
    scores: list[tuple[str, int]] = []
    for line in listing.splitlines():
        if not line.startswith("- "):
            continue
        name, _, description = line[2:].partition(": ")
        name = name.strip()
        vocabulary = {w for w in _words(name.replace("_", " ") + " " + description)}
        vocabulary -= _STOPWORDS
        scores.append((name, sum(counts.get(word, 0) for word in vocabulary)))
    if not scores:
        return {"label": None, "confidence": 0}
    best_name, best = max(scores, key=lambda item: item[1])  # first wins a tie
    total = sum(score for _, score in scores)
    return {"label": best_name, "confidence": round(best / total, 3) if total else 0.0}


_FIELD_LINE = re.compile(r"^- (?P<name>[A-Za-z_][A-Za-z0-9_]*) \((?P<hint>[^)]*)\)")


def _extract(listing: str, text: str) -> dict[str, Any]:
    """Each field's value where the text names the field and follows it with a value."""
    answer: dict[str, Any] = {}
    for line in listing.splitlines():
        match = _FIELD_LINE.match(line)
        if match is None:
            continue
        name = match["name"]
        kind = _TYPE_FROM_HINT.get(match["hint"], "string")
        label = r"[\s_-]+".join(re.escape(part) for part in name.split("_") if part)
        pattern = re.compile(
            rf"\b{label}\b\s*(?:[:=]|\bis\b|\bwas\b|\bof\b)?\s*(?P<value>{_VALUE_PATTERNS[kind]})",
            re.IGNORECASE,
        )
        found = pattern.search(text)
        if found is None:
            answer[name] = {"value": None, "confidence": 0}
            continue
        raw = found["value"].strip()
        value: Any
        if kind == "number":
            value = float(raw.replace(",", ""))
        elif kind == "integer":
            value = int(raw.replace(",", ""))
        elif kind == "boolean":
            value = raw.lower() in {"yes", "true"}
        elif kind == "list":
            value = [item.strip() for item in raw.split(",") if item.strip()]
        else:
            value = raw
        answer[name] = {"value": value, "confidence": 0.9}
    return answer


def example_of(schema: Any) -> Any:
    """A small value satisfying the common keywords of ``schema`` (what a model would do)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return example_of(schema[combinator][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required") or list(properties)
        return {name: example_of(properties.get(name, {"type": "string"})) for name in required}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [example_of(schema.get("items", {"type": "string"})) for _ in range(count)]
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind in {"number", "integer"}:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = low + 1 if "exclusiveMinimum" in schema else low
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    return None
