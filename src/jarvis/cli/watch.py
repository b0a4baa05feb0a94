"""``jarvis executions watch``: follow executions live from a server over its WebSocket.

It needs no database: it speaks the WebSocket protocol (``/api/agent-executions/ws``,
docs/realtime.md) to a running server, authenticating with an API token sent as the first
message. After a dropped connection it reconnects and resumes after the last event shown
(``afterSeq``), a bounded number of times. What counts as an event seen already, the next
one, one after missing numbers, or the end of an execution is ``jarvis.realtime.replay``'s,
the same bookkeeping the server's hub follows executions with.

The server is ``--url`` (or ``JARVIS_API_URL``), else ``JARVIS_PUBLIC_URL``, else this
machine's ``JARVIS_PORT``; the token is ``--token`` (or ``JARVIS_API_TOKEN``) or read from
``--token-file`` (or ``JARVIS_API_TOKEN_FILE``), which keeps it out of ``ps``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from jarvis.cli.common import console, err_console, fail, settings
from jarvis.cli.run import EXIT_INVALID, NOTE_CHARS, STATUS_STYLE, LayerProgress, exit_code
from jarvis.core.layers import LAYER_ORDER
from jarvis.kit.clock import as_utc
from jarvis.orchestration.events import final_status
from jarvis.orchestration.lifecycle import PAUSE_EVENT
from jarvis.realtime.replay import Arrival, EventCursor, seq_of

WS_PATH = "/api/agent-executions/ws"
EXIT_AUTH = EXIT_INVALID  # 2: nothing was watched, as for a usage error
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
CLOSE_POLICY_VIOLATION = 1008  # the server refused the credentials
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 8.0
HANDSHAKE_SECONDS = 10.0
MAX_MESSAGE_BYTES = 16 * 2**20
BOARD_ROWS = 20  # executions the table of every execution keeps
TICK_SECONDS = 0.5  # how often a live view redraws (running durations move on)


class WatchEnded(Exception):
    """Stop watching with ``message`` (on stderr) and exit ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _OutputClosed(Exception):
    """Standard output was closed by its reader: stop quietly."""


class _Resync(Exception):
    """The stream cannot be trusted any more (silence, a gap): reconnect and replay."""


def default_api_url() -> str:
    """The server when no ``--url`` / ``JARVIS_API_URL`` is given: ``JARVIS_PUBLIC_URL``
    where set, else this machine's server on ``JARVIS_PORT`` (settings, as ``jarvis serve``
    reads them)."""
    cfg = settings()
    if cfg.public_url and cfg.public_url.strip():
        return cfg.public_url.strip()
    return f"http://127.0.0.1:{cfg.port}"


def _default_websocket_url() -> str:
    api_url = default_api_url()
    try:
        return websocket_url(api_url)
    except typer.BadParameter as exc:  # only JARVIS_PUBLIC_URL can be malformed
        fail(f"JARVIS_PUBLIC_URL: {exc.message}; fix it or pass --url", EXIT_INVALID)


def websocket_url(api_url: str) -> str:
    """``http://host:8000`` (or ``ws://``, with any path prefix) -> the endpoint's URL."""
    scheme, sep, rest = api_url.strip().partition("://")
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    base = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if not sep or scheme.lower() not in schemes or not base:
        raise typer.BadParameter(f"'{api_url}' is not an http(s):// or ws(s):// URL")
    return f"{schemes[scheme.lower()]}://{base.removesuffix(WS_PATH)}{WS_PATH}"


def _checked_url(value: str | None) -> str | None:
    return websocket_url(value) if value is not None else None


def read_token(path: Path) -> str:
    """The API token in the file at ``path`` (surrounding whitespace dropped); fails with
    exit 2, naming the file, when it cannot be read or holds no token."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fail(f"cannot read the token file {path}: {reason}", EXIT_AUTH)
    if not token:
        fail(f"the token file {path} is empty", EXIT_AUTH)
    return token


def _check_watch_id(value: str | None) -> str | None:
    if value is not None and not 1 <= len(value.strip()) <= 36:
        raise typer.BadParameter("is not an execution id (a UUID)")
    return value.strip() if value is not None else None


def _elapsed_ms(started_at: str | None) -> int | None:
    try:
        start = as_utc(datetime.fromisoformat(started_at or ""))
    except ValueError:
        return None
    return max(0, int((datetime.now(UTC) - start).total_seconds() * 1000))


@dataclass
class _Followed:
    """One execution as the watch has seen it so far."""

    execution_id: str
    cursor: EventCursor = field(default_factory=EventCursor)
    status: str = "queued"
    persona: str = ""
    command: str = ""
    layer: str = ""
    started_at: str | None = None
    duration_ms: int | None = None
    agents: int = 0
    steps: dict[int, str] = field(default_factory=dict)  # step id -> its last event
    replaying: bool = False  # its own subscription fills a gap (watching every execution)
    progress: LayerProgress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = LayerProgress(self.execution_id)

    @property
    def finished(self) -> bool:
        return self.cursor.ended

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Take the next event in; the lines that describe it (Rich markup)."""
        kind = str(event.get("type", ""))
        self.cursor.take(event)
        self.persona = str(event.get("persona") or self.persona)
        self.command = " ".join(str(event.get("command") or self.command).split())
        lines = [line] if (line := self.progress.apply(event)) is not None else []
        if kind in ("execution_started", "execution_resumed"):
            self.status = "running"
            self.started_at = self.started_at or event.get("at")
            if kind == "execution_started":
                lines.append(f"started ({escape(self.persona)}): {escape(self.command[:90])}")
        elif kind == "layer_started":
            self.layer = str(event.get("layer") or "")
            self.agents += int(event.get("agents") or 0)
        elif kind.startswith("step_") and isinstance(event.get("stepId"), int):
            retrying = kind == "step_failed" and event.get("willRetry")
            self.steps[event["stepId"]] = "retrying" if retrying else kind
        elif kind == PAUSE_EVENT:
            self.status = PAUSE_EVENT
            lines.append(
                f"[yellow]awaiting a human decision[/]: jarvis executions approve "
                f"{self.execution_id} (or reject)"
            )
        elif (final := final_status(event)) is not None:
            self.status = final.value
            self.duration_ms = event.get("durationMs")
            took = f" in {self.duration_ms} ms" if self.duration_ms is not None else ""
            style = STATUS_STYLE.get(self.status, "")
            lines.append(f"Execution {self.execution_id}: [{style}]{self.status}[/]{took}")
            if event.get("error"):
                lines.append(f"Error: {escape(str(event['error']))}")
        return lines

    def took_ms(self) -> int | None:
        return self.duration_ms if self.finished else _elapsed_ms(self.started_at)

    def header(self) -> Text:
        text = Text(f"Execution {self.execution_id} ")
        text.append(self.status, style=STATUS_STYLE.get(self.status, ""))
        if (took := self.took_ms()) is not None:
            text.append(f" {took} ms")
        if self.command:
            text.append(f" ({self.persona}): {self.command[:NOTE_CHARS]}")
        return text


@dataclass
class WatchView:
    """What the watch shows: JSON lines, a live Rich view, or one line per event."""

    single: str | None  # the execution followed, or None for every execution
    as_json: bool
    live: Live | None = None
    followed: dict[str, _Followed] = field(default_factory=dict)

    def show(self, item: _Followed, event: dict[str, Any]) -> None:
        try:
            self._show(item, event)
        except BrokenPipeError:  # e.g. piped into `head`, which has had enough
            raise _OutputClosed from None

    def _show(self, item: _Followed, event: dict[str, Any]) -> None:
        lines = item.apply(event)
        if self.as_json:
            typer.echo(json.dumps(event, ensure_ascii=False))
            return
        if self.live is not None:
            # The table shows progress; what asks for attention is also printed above it.
            if final_status(event) is None and event.get("type") != PAUSE_EVENT:
                lines = []
            self.redraw()
        prefix = "" if self.single else f"[dim]{item.execution_id[:8]}[/] "
        for line in lines:
            console.print(prefix + line, highlight=False)
        if self.single is None and len(self.followed) > BOARD_ROWS:
            finished = [key for key, value in self.followed.items() if value.finished]
            for key in finished[: len(self.followed) - BOARD_ROWS]:
                del self.followed[key]

    def redraw(self) -> None:
        if self.live is not None:
            self.live.update(self.render(), refresh=True)

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.redraw()

    def render(self) -> RenderableType:
        if self.single is not None:
            item = self.followed[self.single]
            return Group(item.header(), _layers_table(item.progress))
        table = Table(title="Executions (live)", title_justify="left", box=box.SIMPLE_HEAD)
        # As in `list`: ids and statuses are never cut; the command gets what is left.
        columns = [("ID", 36), ("Status", 17), ("Persona", 11), ("Layer", 10)]
        columns += [("Steps", 7), ("Duration", 10)]
        for name, width in columns:
            justify: JustifyMethod = "right" if name in ("Steps", "Duration") else "left"
            table.add_column(name, no_wrap=True, width=width, justify=justify)
        left = console.width - sum(width for _, width in columns) - 3 * len(columns) - 4
        table.add_column("Command", no_wrap=True, overflow="ellipsis", width=max(12, left))
        for item in reversed(self.followed.values()):
            took = item.took_ms()
            done = sum(kind not in ("step_started", "retrying") for kind in item.steps.values())
            table.add_row(
                Text(item.execution_id),
                _status_cell(item.status),
                Text(item.persona),
                Text(item.layer),
                f"{done}/{item.agents}",
                "" if took is None else f"{took} ms",
                Text(item.command),
            )
        return table


def _layers_table(progress: LayerProgress) -> Table:
    """The six layers, one line per agent (a terminal's height holds a whole execution)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    names = [line.name for steps in progress.layers.values() for line in steps.values()]
    agent_width = min(40, max([5, *map(len, names)]))
    columns = [("Layer", 10), ("Agent", agent_width), ("Status", 17), ("Try", 3)]
    columns.append(("Duration", 9))
    for name, width in columns:
        justify: JustifyMethod = "right" if name == "Duration" else "left"
        table.add_column(name, no_wrap=True, width=width, justify=justify, overflow="ellipsis")
    left = console.width - sum(width for _, width in columns) - 3 * len(columns) - 2
    table.add_column("Output / reason", no_wrap=True, overflow="ellipsis", width=max(10, left))
    for layer in LAYER_ORDER:
        steps = progress.layers.get(layer.value)
        state = progress.layer_status.get(layer.value, "waiting")
        if not steps:
            table.add_row(Text(layer.value, style="dim"), "", _status_cell(state), "", "", "")
            continue
        for index, line in enumerate(steps.values()):
            table.add_row(
                Text(layer.value if index == 0 else "", style=STATUS_STYLE.get(state, "")),
                Text(line.name),
                _status_cell(line.status),
                str(line.attempt),
                "" if line.duration_ms is None else f"{line.duration_ms} ms",
                Text(line.note),
            )
    return table


def _status_cell(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


@dataclass
class Watch:
    """Connect, authenticate, subscribe and follow; after a dropped connection reconnect
    and resume after the last event shown (``afterSeq``), a bounded number of times."""

    url: str
    token: str
    view: WatchView
    retries: int

    async def run(self) -> int:
        failures = 0
        connected = False
        while True:
            try:
                async with connect(
                    self.url, open_timeout=HANDSHAKE_SECONDS, max_size=MAX_MESSAGE_BYTES
                ) as socket:
                    heartbeat = await self._authenticate(socket)
                    connected, failures = True, 0
                    return await self._follow(socket, heartbeat)
            except ConnectionClosed as exc:
                close = exc.rcvd
                if close is not None and close.code == CLOSE_POLICY_VIOLATION:
                    raise WatchEnded(
                        f"authentication failed: {close.reason or 'closed with 1008'} "
                        "(check --token / JARVIS_API_TOKEN / --token-file)",
                        EXIT_AUTH,
                    ) from None
                why = (
                    f"the server closed the connection ({close.code} {close.reason})"
                    if close is not None
                    else "the connection dropped"
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401:
                    raise WatchEnded(f"authentication failed (HTTP {status})", EXIT_AUTH) from None
                if status < 500:
                    raise WatchEnded(
                        f"{self.url} is not a JARVIS WebSocket endpoint (HTTP {status}); "
                        "check --url / JARVIS_API_URL",
                        1,
                    ) from None
                why = f"the server answered HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake, _Resync) as exc:
                why = str(exc) or type(exc).__name__
            if not connected:
                raise WatchEnded(f"cannot connect to {self.url}: {why}", 1)
            failures += 1
            if failures > self.retries:
                raise WatchEnded(
                    f"lost the connection to {self.url}: {why} (gave up after "
                    f"{self.retries} retries)",
                    1,
                )
            delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (failures - 1))
            err_console.print(
                f"[yellow]{escape(why)}; reconnecting in {delay:g} s "
                f"(retry {failures} of {self.retries})[/]",
                highlight=False,
            )
            await asyncio.sleep(delay)

    async def _authenticate(self, socket: ClientConnection) -> float:
        """Send the token as the first message (never in the URL, which servers log);
        return the server's heartbeat interval."""
        await socket.send(json.dumps({"type": "auth", "token": self.token}))
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            while True:
                message = _decode(await socket.recv())
                if message.get("type") == "connection-established":
                    return float(message.get("heartbeatSeconds") or 15)

    async def _follow(self, socket: ClientConnection, heartbeat: float) -> int:
        view = self.view
        if view.single is not None:
            await _send(socket, "subscribe-execution", view.single, view.followed[view.single])
        else:
            # After a reconnect, read what the unfinished executions did in the meantime.
            for item in view.followed.values():
                item.replaying = not item.finished
                if item.replaying:
                    await _send(socket, "subscribe-execution", item.execution_id, item)
            await _send(socket, "subscribe-all")
        silence = 3 * heartbeat + 5  # the server heartbeats every `heartbeat` seconds
        while True:
            try:
                raw = await asyncio.wait_for(socket.recv(), silence)
            except TimeoutError:
                raise _Resync(f"nothing from the server for {silence:g} s") from None
            message = _decode(raw)
            kind = message.get("type")
            if kind == "heartbeat":
                # Not needed by this server (protocol pings keep the connection), but an
                # older one closes a client that does not answer its heartbeats.
                await socket.send('{"type":"pong"}')
            elif kind == "error":
                self._error(message)
            elif kind == "subscribed-all":
                err_console.print("Watching every execution you may see; Ctrl-C stops.")
            elif seq_of(message) is not None and isinstance(message.get("executionId"), str):
                code = await self._event(socket, message)
                if code is not None:
                    return code

    def _error(self, message: dict[str, Any]) -> None:
        text = str(message.get("message") or message.get("code"))
        if self.view.single is not None and message.get("code") in ("forbidden", "not_found"):
            raise WatchEnded(f"execution {self.view.single}: {text}", 1)
        err_console.print(f"[yellow]server: {escape(text)}[/]", highlight=False)

    async def _event(self, socket: ClientConnection, event: dict[str, Any]) -> int | None:
        """Show an event once and in order; the exit code once the watched one ends."""
        view = self.view
        execution_id, seq = event["executionId"], event["seq"]
        item = view.followed.get(execution_id)
        if item is None:
            if view.single is not None:
                return None
            # First seen through subscribe-all, which does not replay: it starts here.
            start = EventCursor(last_seq=seq - 1)
            item = view.followed[execution_id] = _Followed(execution_id, cursor=start)
        arrival = item.cursor.arrival(seq)
        if arrival is Arrival.SEEN:
            return None  # shown already (a replay meeting the live stream)
        if arrival is Arrival.AHEAD:
            if view.single is not None:
                missing = item.cursor.missing(seq)
                raise _Resync(
                    f"events {missing.start}..{missing.stop - 1} of {execution_id} missing"
                )
            if not item.replaying:  # its own subscription replays what is missing
                item.replaying = True
                await _send(socket, "subscribe-execution", execution_id, item)
            return None
        view.show(item, event)
        if not item.finished:
            return None
        if view.single is not None:
            return exit_code(item.status)
        if item.replaying:
            item.replaying = False
            await _send(socket, "unsubscribe-execution", execution_id)
        return None


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


async def _send(
    socket: ClientConnection, kind: str, execution_id: str | None = None, item: Any = None
) -> None:
    message: dict[str, Any] = {"type": kind}
    if execution_id is not None:
        message["executionId"] = execution_id
    if isinstance(item, _Followed):
        message["afterSeq"] = item.cursor.last_seq
    await socket.send(json.dumps(message))


def _token(ctx: typer.Context, token: str | None, token_file: Path | None) -> str:
    """The token from ``--token-file`` (or its variable) or ``--token`` (or its variable);
    both on the command line is a mistake."""
    if token_file is not None:
        source = ctx.get_parameter_source("token")
        if token and source is not None and source.name == "COMMANDLINE":
            fail("give --token or --token-file, not both", EXIT_AUTH)
        return read_token(token_file)
    if not token:
        fail(
            "no API token: pass --token or set JARVIS_API_TOKEN, or give --token-file PATH "
            "(create one with `jarvis tokens create --user EMAIL --name NAME`)",
            EXIT_AUTH,
        )
    return token


def watch(
    ctx: typer.Context,
    execution_id: Annotated[
        str | None,
        typer.Argument(
            metavar="ID",
            callback=_check_watch_id,
            show_default=False,
            help="Follow this execution (its events so far, then live) until it ends; "
            "without an ID, every execution you may see, live",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="JARVIS_API_URL",
            callback=_checked_url,
            show_default=False,
            help="The JARVIS server, http(s):// (default: JARVIS_PUBLIC_URL, else "
            "http://127.0.0.1:JARVIS_PORT)",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="JARVIS_API_TOKEN",
            show_default=False,
            help="API token (jarvis tokens create). On the command line it shows in `ps`: "
            "prefer JARVIS_API_TOKEN or --token-file",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="JARVIS_API_TOKEN_FILE",
            show_default=False,
            dir_okay=False,
            help="Read the API token from this file (instead of --token)",
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option(min=0, max=100, help="Reconnections tried after a dropped connection")
    ] = 8,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as one JSON line instead")
    ] = False,
) -> None:
    """Follow executions live from a server over its WebSocket.

    The token comes from --token, JARVIS_API_TOKEN, --token-file or JARVIS_API_TOKEN_FILE
    (a file keeps it out of `ps`). With an ID, exits like ``jarvis run``: 0 when the
    execution completes, 1 when it fails, is cancelled or rejected (or the connection is
    lost for good); 2 when the token is missing or refused.
    """
    token = _token(ctx, token, token_file)
    ws_url = url if url is not None else _default_websocket_url()
    view = WatchView(execution_id, as_json)
    if execution_id is not None:
        view.followed[execution_id] = _Followed(execution_id)
    if not as_json and console.is_terminal:
        view.live = Live(view.render(), console=console, auto_refresh=False)

    async def body() -> int:
        # Redrawn from this loop only, so the view never changes under a drawing thread.
        ticker = asyncio.ensure_future(view.tick()) if view.live is not None else None
        try:
            return await Watch(ws_url, token, view, retries).run()
        finally:
            if ticker is not None:
                ticker.cancel()

    try:
        with view.live or contextlib.nullcontext():
            code = asyncio.run(body())
    except WatchEnded as ended:
        fail(str(ended), ended.code)
    except _OutputClosed:
        with contextlib.suppress(OSError, ValueError):  # nothing more can be written there
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("stopped")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)
