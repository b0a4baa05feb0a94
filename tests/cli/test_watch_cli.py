"""``jarvis executions watch`` against a live server, on SQLite and on PostgreSQL.

The real app is served by uvicorn on a loopback port (``tests.realtime.conftest.live_app``,
on the test's event loop); the command runs through Typer's runner in a worker thread (it
runs its own event loop) or, to be interrupted with Ctrl-C, as a process. Executions are
started through the API with slow ``echo`` agents, so the watch meets them while they
run. A TCP relay between the command and the server lets a test drop the connection in the
middle of an execution. ``WAIT`` is a hang guard, never a timing assertion.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from rich.console import Console
from typer.testing import CliRunner

import jarvis.cli.watch as watch_module
from jarvis.cli.app import cli
from jarvis.cli.watch import default_api_url, websocket_url
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.engine import Database
from jarvis.settings import Settings, get_settings
from tests.realtime.conftest import Live, eventually, live_app

WAIT = 60.0
HEARTBEAT_SECONDS = 1.0
WATCH_VARIABLES = ("JARVIS_API_URL", "JARVIS_API_TOKEN", "JARVIS_API_TOKEN_FILE")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_and_clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No JARVIS_API_*, JARVIS_PUBLIC_URL or JARVIS_PORT from the environment (settings
    read afresh); Rich lines wide enough not to wrap."""
    for name in (*WATCH_VARIABLES, "JARVIS_PUBLIC_URL", "JARVIS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
async def live(settings: Settings, db: Database) -> AsyncIterator[Live]:
    """The app on loopback with a short heartbeat (and protocol pings as often), well
    within the slowest execution of these tests."""
    async with live_app(settings, db, ws_heartbeat_seconds=HEARTBEAT_SECONDS) as value:
        yield value


class Relay:
    """A TCP relay in front of the server whose connections a test can drop."""

    def __init__(self, target: str) -> None:
        self.host, port = target.split(":")
        self.port = int(port)
        self.accepted = 0
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.refuse()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._links.append((writer, up_writer))
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    def drop(self) -> None:
        """Cut every open connection, as a network failure does (no close frame)."""
        for near, far in self._links:
            near.transport.abort()
            far.transport.abort()
        self._links.clear()

    def refuse(self) -> None:
        """Accept no further connections."""
        if self._server is not None:
            self._server.close()


async def slow_agents(live: Live, delay_ms: int, **config: Any) -> None:
    """One echo agent per layer serving every persona, each waiting ``delay_ms``."""
    for layer in LAYER_ORDER:
        await live.world.agent(
            layer.value,
            f"{layer.value} Echo",
            config={"delay_ms": delay_ms, **config},
            serves_all_personas=True,
        )


def watch_in_thread(*args: str) -> asyncio.Future[Result]:
    """``jarvis executions watch ARGS`` through the runner, on a worker thread."""

    def invoke() -> Result:
        return runner.invoke(cli, ["executions", "watch", *args])

    return asyncio.ensure_future(asyncio.wait_for(asyncio.to_thread(invoke), WAIT))


def clean(result: Result) -> Result:
    # Failures must be clean exits with a message, never a stray exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    return result


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def following(live: Live) -> int:
    """How many subscriptions to one execution the server holds."""
    stats: dict[str, int] = live.app.state.realtime.stats()
    return stats["followers"]


def token(live: Live, headers: dict[str, str] | None = None) -> str:
    return live.token(headers or live.world.admin_headers)


# --- following one execution ------------------------------------------------------------


async def test_watch_replays_then_follows_live_through_a_dropped_connection(live: Live) -> None:
    world = live.world
    await slow_agents(live, 300)
    async with Relay(live.address) as relay, world.watch() as bus:
        execution_id = await world.post()
        watching = watch_in_thread(
            execution_id, "--url", relay.url, "--token", token(live), "--json"
        )
        # Once the watch is subscribed and the execution is halfway, the network fails.
        await eventually(lambda: following(live) == 1)
        await bus.until(execution_id, "layer_completed", layer="Role")
        relay.drop()
        result = clean(await watching)

    assert result.exit_code == 0, result.output
    events = json_lines(result.stdout)
    stored = await world.events(execution_id)
    # Every event once, in order: the replay, the live part, the replay after reconnecting.
    assert events == stored
    assert [e["seq"] for e in events] == list(range(1, len(stored) + 1))
    assert events[-1]["type"] == "execution_completed"
    assert relay.accepted >= 2
    assert "the connection dropped; reconnecting in 0.5 s (retry 1 of 8)" in result.stderr
    # The dropped socket did not affect the execution.
    assert (await world.show(execution_id))["status"] == "completed"


async def test_watch_shows_the_layers_through_many_heartbeats(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = live.world
    # Six layers of 700 ms: more than three heartbeat intervals on one connection.
    await slow_agents(live, 700)
    monkeypatch.setenv("JARVIS_API_URL", f"http://{live.address}/")
    monkeypatch.setenv("JARVIS_API_TOKEN", token(live))
    execution_id = await world.post("check the layers")
    result = clean(await watch_in_thread(execution_id))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "started (admin): check the layers" in out
    starts = [out.index(f"{layer.value} layer: 1 agent(s)") for layer in LAYER_ORDER]
    assert starts == sorted(starts)
    for layer in LAYER_ORDER:
        assert f"  {layer.value} Echo completed " in out
    assert f"Execution {execution_id}: completed in " in out
    assert "reconnecting" not in result.stderr, result.output


async def test_watch_draws_a_live_table_on_a_terminal(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=160, color_system=None)
    monkeypatch.setattr(watch_module, "console", terminal)
    await slow_agents(live, 50)
    execution_id = await live.world.post("draw me")
    result = clean(
        await watch_in_thread(execution_id, "--url", live.ws_url(), "--token", token(live))
    )

    assert result.exit_code == 0, result.output
    drawn = screen.getvalue()
    assert f"Execution {execution_id} completed" in drawn  # the header above the table
    assert "Output / reason" in drawn
    for layer in LAYER_ORDER:
        assert f"{layer.value} Echo" in drawn
    assert f"Execution {execution_id}: completed in " in drawn  # printed once it ends


async def test_watch_exits_1_when_the_execution_fails(live: Live) -> None:
    world = live.world
    await world.set("agent.max_retries", 0)
    await world.agent("Experience", "Broken", config={"fail_attempts": 100})
    execution_id = await world.post()
    result = clean(
        await watch_in_thread(
            execution_id, "--url", f"http://{live.address}", "--token", token(live)
        )
    )

    assert result.exit_code == 1, result.output
    assert "Broken failed" in result.stdout
    assert f"Execution {execution_id}: failed" in result.stdout
    assert "Error: " in result.stdout


async def test_watch_exits_1_when_the_execution_is_cancelled(live: Live) -> None:
    world = live.world
    await world.agent("Experience", "Sleeper", config={"delay_ms": 60_000})
    async with world.watch() as bus:
        execution_id = await world.post()
        watching = watch_in_thread(
            execution_id, "--url", f"http://{live.address}", "--token", token(live), "--json"
        )
        await bus.until(execution_id, "step_started")
        response = await world.action(execution_id, "cancel")
        assert response.status_code in (200, 202), response.text
        result = clean(await watching)

    assert result.exit_code == 1, result.output
    events = json_lines(result.stdout)
    assert events == await world.events(execution_id)
    assert events[-1]["type"] == "execution_cancelled"


# --- refusals ----------------------------------------------------------------------------


async def test_watch_refuses_a_bad_token_with_exit_2(live: Live) -> None:
    execution_id = await live.world.post()
    result = clean(
        await watch_in_thread(execution_id, "--url", f"http://{live.address}", "--token", "nope")
    )
    assert result.exit_code == 2, result.output
    assert "authentication failed: invalid credentials" in result.stderr
    assert "JARVIS_API_TOKEN" in result.stderr


def test_watch_without_a_token_or_with_a_bad_url_exits_2() -> None:
    missing = clean(runner.invoke(cli, ["executions", "watch", "--url", "http://127.0.0.1:9"]))
    assert missing.exit_code == 2
    assert "no API token: pass --token or set JARVIS_API_TOKEN" in missing.stderr
    bad_url = clean(runner.invoke(cli, ["executions", "watch", "--url", "ftp://x", "--token", "t"]))
    assert bad_url.exit_code == 2
    assert "is not an http(s):// or ws(s):// URL" in bad_url.output


# --- where the server is, and where the token comes from -----------------------------------


def test_the_default_url_is_the_public_url_else_the_configured_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert default_api_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("JARVIS_PORT", "8123")
    get_settings.cache_clear()
    assert default_api_url() == "http://127.0.0.1:8123"
    monkeypatch.setenv("JARVIS_PUBLIC_URL", "https://jarvis.example/base/")
    get_settings.cache_clear()
    assert default_api_url() == "https://jarvis.example/base/"
    assert websocket_url(default_api_url()) == "wss://jarvis.example/base/api/agent-executions/ws"
    monkeypatch.setenv("JARVIS_PUBLIC_URL", "jarvis.example")
    get_settings.cache_clear()
    result = clean(runner.invoke(cli, ["executions", "watch", "--token", "t"]))
    assert result.exit_code == 2
    assert "JARVIS_PUBLIC_URL: 'jarvis.example' is not an http(s):// or ws(s):// URL" in (
        result.stderr
    )


async def test_watch_finds_the_server_on_jarvis_port_with_the_token_from_the_environment(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id = await live.world.post()
    monkeypatch.setenv("JARVIS_PORT", live.address.rpartition(":")[2])
    monkeypatch.setenv("JARVIS_API_TOKEN", token(live))
    result = clean(await watch_in_thread(execution_id, "--json"))
    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout) == await live.world.events(execution_id)


async def test_watch_finds_the_server_at_jarvis_public_url(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution_id = await live.world.post()
    monkeypatch.setenv("JARVIS_PORT", "9")  # the public URL wins over the local port
    monkeypatch.setenv("JARVIS_PUBLIC_URL", live.http_url)
    result = clean(await watch_in_thread(execution_id, "--json", "--token", token(live)))
    assert result.exit_code == 0, result.output
    assert json_lines(result.stdout)[-1]["type"] == "execution_completed"


async def test_watch_reads_the_token_from_a_file(
    live: Live, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    execution_id = await live.world.post()
    token_file = tmp_path / "token"
    token_file.write_text(f"  {token(live)}\n", encoding="utf-8")
    url = live.http_url
    by_option = clean(
        await watch_in_thread(execution_id, "--url", url, "--token-file", str(token_file))
    )
    assert by_option.exit_code == 0, by_option.output
    # The file wins over JARVIS_API_TOKEN; JARVIS_API_TOKEN_FILE names it too.
    monkeypatch.setenv("JARVIS_API_TOKEN", "not-the-token")
    monkeypatch.setenv("JARVIS_API_TOKEN_FILE", str(token_file))
    by_variable = clean(await watch_in_thread(execution_id, "--url", url, "--json"))
    assert by_variable.exit_code == 0, by_variable.output
    assert json_lines(by_variable.stdout) == await live.world.events(execution_id)


def test_a_missing_or_empty_token_file_or_two_tokens_exit_2_naming_the_problem(
    tmp_path: Path,
) -> None:
    url = "http://127.0.0.1:9"
    missing = tmp_path / "nowhere" / "token"
    result = clean(
        runner.invoke(cli, ["executions", "watch", "--url", url, "--token-file", str(missing)])
    )
    assert result.exit_code == 2
    assert f"cannot read the token file {missing}: No such file or directory" in result.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    result = clean(
        runner.invoke(cli, ["executions", "watch", "--url", url, "--token-file", str(empty)])
    )
    assert result.exit_code == 2
    assert f"the token file {empty} is empty" in result.stderr
    both = ["--url", url, "--token", "t", "--token-file", str(empty)]
    result = clean(runner.invoke(cli, ["executions", "watch", *both]))
    assert result.exit_code == 2
    assert "give --token or --token-file, not both" in result.stderr


def test_watch_help_says_where_the_token_and_the_url_come_from() -> None:
    result = clean(runner.invoke(cli, ["executions", "watch", "--help"]))
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("--token-file", "JARVIS_API_TOKEN_FILE", "JARVIS_API_TOKEN", "`ps`"):
        assert words in text, words
    assert "JARVIS_PUBLIC_URL" in text and "JARVIS_PORT" in text


def test_websocket_url_accepts_http_ws_and_path_prefixes() -> None:
    assert websocket_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/api/agent-executions/ws"
    assert websocket_url("https://jarvis.example/base/") == (
        "wss://jarvis.example/base/api/agent-executions/ws"
    )
    assert websocket_url("ws://h:1/api/agent-executions/ws") == "ws://h:1/api/agent-executions/ws"


async def test_watch_of_another_users_or_an_unknown_execution_exits_1(live: Live) -> None:
    world = live.world
    execution_id = await world.post()  # the admin's
    url = f"http://{live.address}"
    forbidden = clean(
        await watch_in_thread(execution_id, "--url", url, "--token", token(live, world.uw_headers))
    )
    assert forbidden.exit_code == 1, forbidden.output
    assert f"execution {execution_id}: " in forbidden.stderr

    unknown = "00000000-0000-0000-0000-000000000000"
    missing = clean(await watch_in_thread(unknown, "--url", url, "--token", token(live)))
    assert missing.exit_code == 1, missing.output
    assert f"execution {unknown}: " in missing.stderr
    assert unknown in missing.stderr


async def test_watch_gives_up_after_its_retries_when_the_server_stays_away(live: Live) -> None:
    world = live.world
    await world.agent("Experience", "Sleeper", config={"delay_ms": 60_000})
    async with Relay(live.address) as relay, world.watch() as bus:
        execution_id = await world.post()
        watching = watch_in_thread(
            execution_id, "--url", relay.url, "--token", token(live), "--retries", "1"
        )
        await eventually(lambda: following(live) == 1)
        await bus.until(execution_id, "step_started")
        relay.refuse()
        relay.drop()
        result = clean(await watching)
        await world.action(execution_id, "cancel")

    assert result.exit_code == 1, result.output
    assert "reconnecting in 0.5 s (retry 1 of 1)" in result.stderr
    assert f"lost the connection to ws://127.0.0.1:{relay.url.rsplit(':', 1)[1]}" in (
        result.stderr.replace("\n", " ")
    )
    assert "gave up after 1 retries" in result.stderr.replace("\n", " ")


# --- every execution -----------------------------------------------------------------------


def jarvis_command() -> list[str]:
    script = Path(sys.executable).with_name("jarvis")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jarvis.cli.app import main; main()"]


async def test_watch_without_an_id_follows_the_users_own_executions_until_ctrl_c(
    live: Live,
) -> None:
    world = live.world
    await slow_agents(live, 20)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    process = await asyncio.create_subprocess_exec(
        *jarvis_command(),
        *("executions", "watch", "--json", "--url", f"http://{live.address}"),
        *("--token", token(live, world.uw_headers)),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        async with asyncio.timeout(WAIT):
            line = await process.stderr.readline()
        assert b"Watching every execution you may see" in line, line

        theirs = await world.post("the admin's")
        mine = await world.post("the underwriter's", "underwriter", world.uw_headers)
        await world.settle()
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while not seen or seen[-1]["type"] != "execution_completed":
                seen.append(json.loads(await process.stdout.readline()))
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT):
            rest, errors = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 130, errors
    assert b"stopped" in errors
    assert rest == b""
    # The underwriter's own execution, every event once and in order; not the admin's.
    assert seen == await world.events(mine, headers=world.uw_headers)
    assert theirs not in {e["executionId"] for e in seen}


async def test_watch_without_an_id_draws_a_table_of_executions(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = live.world
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=160, color_system=None)
    monkeypatch.setattr(watch_module, "console", terminal)
    await slow_agents(live, 20)
    async with Relay(live.address) as relay:
        watching = watch_in_thread("--url", relay.url, "--token", token(live), "--retries", "0")
        # Subscribed once the server counts it among the listeners to every execution.
        await eventually(lambda: live.app.state.realtime.stats()["allListeners"] == 1)
        first = await world.post("first command")
        second = await world.post("second command")
        await world.settle()
        ends = [f"Execution {execution_id}: completed" for execution_id in (first, second)]
        await eventually(lambda: all(end in screen.getvalue() for end in ends))
        relay.refuse()
        relay.drop()  # ends the watch: no retries left
        result = clean(await watching)

    assert result.exit_code == 1, result.output
    drawn = screen.getvalue()
    assert "Executions (live)" in drawn
    for execution_id, command in ((first, "first command"), (second, "second command")):
        assert execution_id in drawn
        assert f"Execution {execution_id}: completed in " in drawn
        assert command in drawn
    assert "6/6" in drawn  # steps done of the steps started, for a finished execution
