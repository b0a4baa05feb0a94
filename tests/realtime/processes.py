"""A harness of real processes: ``jarvis serve`` API instances and ``jarvis worker``s.

Everything runs as an operator would run it: each process is the installed ``jarvis``
command in its own session (process group), configured only through ``JARVIS_*``
environment variables, all of them on one PostgreSQL database and the real Redis.

- ``Cluster.create(...)`` makes a fresh PostgreSQL database, applies the migrations with
  ``jarvis db upgrade``, and creates an admin with an API token (through the services,
  before any server starts, so the servers' own admin bootstrap finds one and two servers
  starting together never race to create it).
- ``start_api`` runs ``jarvis serve`` on a free loopback port (``ready`` waits for
  ``GET /api/health``); ``start_worker`` runs ``jarvis worker --concurrency N``
  (``workers_started`` waits for its ready line). Processes can be stopped with SIGTERM
  (``terminate``) or killed with SIGKILL to their whole group (``kill``, a crash).
- ``make_crew`` registers a persona of its own with ``echo`` agents through the API, so
  tests sharing the database never run each other's agents; ``ApiClient`` and
  ``Listener`` (a WebSocket that keeps reading) talk to the servers.
- Every process writes stdout/stderr to files under the work directory; ``report()`` gives
  their tails (tests print it when they fail).
- ``close()`` stops every process still running (SIGTERM, then SIGKILL to its whole
  group) and drops the database. Children also receive SIGKILL if the test process itself
  dies (``PR_SET_PDEATHSIG``), so an interrupted run leaves nothing behind.

``WAIT`` bounds every wait as a hang guard, never as a timing assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect

from jarvis.db.engine import Database
from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from jarvis.realtime.ws import WS_PATH
from tests.conftest import create_pg_database, drop_pg_database
from tests.factories import bearer, create_personas, token_for
from tests.orchestration.conftest import token_user

WAIT = 60.0  # a hang guard, not a timing assertion
SECRET_KEY = "processes-test-secret-key-" + "k" * 40
ADMIN_EMAIL = "admin@processes.test"
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "rejected"})
COLOURS = {
    "primary": "#1d4ed8",
    "secondary": "#1e3a8a",
    "accent": "#60a5fa",
    "background": "#0b1120",
    "glassmorphism": "rgba(11, 17, 32, 0.7)",
}
_PR_SET_PDEATHSIG = 1
# What `jarvis worker` prints once it reads the queue (cli/worker.py).
READY_LINE = " ready: queue "


def jarvis_command() -> list[str]:
    """The installed ``jarvis`` entry point of the running interpreter's environment."""
    script = Path(sys.executable).parent / "jarvis"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jarvis.cli.app import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the test process dies, however it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, limit: int = 12_000, start: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else "...\n" + text[-limit:]


# --- processes ---------------------------------------------------------------------------


@dataclass
class Process:
    """One child process (the leader of its own process group) and its log files."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process itself (as ``docker stop`` or ``kill PID`` do)."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL the whole process group (``kill -9``: nothing runs any cleanup); waits."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.popen.wait(timeout=WAIT)

    async def exited(self) -> int:
        """Wait (without blocking the event loop) for the process to exit; its code."""
        deadline = time.monotonic() + WAIT
        while self.popen.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not exit within {WAIT} s\n{self.logs()}")
            await asyncio.sleep(0.05)
        return int(self.popen.returncode)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL the group (synchronous)."""
        if self.alive:
            self.terminate()
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever the leader left behind in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=WAIT)

    def logs(self, *, since: tuple[int, int] = (0, 0), limit: int = 12_000) -> str:
        out = _tail(self.stdout, limit, since[0])
        err = _tail(self.stderr, limit, since[1])
        state = "running" if self.alive else f"exited {self.returncode}"
        return (
            f"===== {self.name} (pid {self.pid}, {state}): {' '.join(self.argv)}\n"
            f"----- stdout\n{out}\n----- stderr\n{err}\n"
        )

    def log_sizes(self) -> tuple[int, int]:
        sizes = []
        for path in (self.stdout, self.stderr):
            try:
                sizes.append(path.stat().st_size)
            except FileNotFoundError:
                sizes.append(0)
        return sizes[0], sizes[1]


@dataclass
class Api:
    """A ``jarvis serve`` process and its address."""

    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, **query: str) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"ws://127.0.0.1:{self.port}{WS_PATH}{suffix}"


# --- the cluster -------------------------------------------------------------------------


@dataclass
class Cluster:
    """API servers and workers sharing one database, one Redis and one Taskiq queue."""

    database_name: str
    database_url: str
    redis_url: str
    workdir: Path
    queue: str
    lease_seconds: float = 2.0
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    apis: list[Api] = field(default_factory=list)
    admin_token: str = ""
    _names: dict[str, int] = field(default_factory=dict)

    # --- setup ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        redis_url: str,
        workdir: Path,
        lease_seconds: float = 2.0,
        extra_env: dict[str, str] | None = None,
        label: str = "proc",
    ) -> Cluster:
        """A fresh, migrated database with an admin; no process running yet.

        Synchronous (it runs its own event loop): call it outside any running loop."""
        unique = uuid.uuid4().hex[:10]
        name = f"jarvis_{label}_{os.getpid()}_{unique}"
        workdir.mkdir(parents=True, exist_ok=True)
        cluster = cls(
            database_name=name,
            database_url=create_pg_database(name),
            redis_url=redis_url,
            workdir=workdir,
            queue=f"jarvis:test:{label}:{unique}",
            lease_seconds=lease_seconds,
            extra_env=dict(extra_env or {}),
        )
        try:
            cluster.cli("db", "upgrade")
            cluster.admin_token = asyncio.run(cluster._create_admin())
        except BaseException:
            cluster.close()
            raise
        return cluster

    async def user_token(self, persona: str) -> str:
        """An API token of a new (non-admin) user of ``persona`` (registered already)."""
        db = Database.from_url(self.database_url)
        try:
            user = await token_user(db, persona)
            return await token_for(db, user)
        finally:
            await db.dispose()

    async def _create_admin(self) -> str:
        db = Database.from_url(self.database_url)
        try:
            await create_personas(db)
            admin = await token_user(db, "admin")
            return await token_for(db, admin, name="processes")
        finally:
            await db.dispose()

    @property
    def env(self) -> dict[str, str]:
        """The environment of every child: this one without any ``JARVIS_*`` variable of
        the caller's, plus the cluster's settings."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
        return {
            **base,
            "PYTHONUNBUFFERED": "1",
            "JARVIS_ENV": "development",
            "JARVIS_DATABASE_URL": self.database_url,
            "JARVIS_REDIS_URL": self.redis_url,
            "JARVIS_TASKIQ_QUEUE": self.queue,
            "JARVIS_EXECUTION_LEASE_SECONDS": f"{self.lease_seconds:g}",
            "JARVIS_SECRET_KEY": SECRET_KEY,
            "JARVIS_ADMIN_EMAIL": ADMIN_EMAIL,
            "JARVIS_LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.admin_token)

    def cli(self, *args: str, timeout: float = 120.0) -> str:
        """Run a ``jarvis`` command to completion; its stdout (fails with its output)."""
        done = subprocess.run(
            [*jarvis_command(), *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`jarvis {' '.join(args)}` exited {done.returncode}\n"
                f"stdout:\n{done.stdout.decode(errors='replace')}\n"
                f"stderr:\n{done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode(errors="replace")

    def _unique(self, name: str) -> str:
        count = self._names.get(name, 0) + 1
        self._names[name] = count
        return name if count == 1 else f"{name}-{count}"

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start ``jarvis ARGS`` in its own process group, logging to files."""
        name = self._unique(name)
        argv = [*jarvis_command(), *args]
        stdout = self.workdir / f"{name}.stdout.log"
        stderr = self.workdir / f"{name}.stderr.log"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        process = Process(name, argv, popen, stdout, stderr)
        self.processes.append(process)
        return process

    def start_api(self, name: str = "api") -> Api:
        """``jarvis serve`` on a free loopback port (not waited for: see ``ready``)."""
        port = free_port()
        process = self.spawn(name, "serve", "--host", "127.0.0.1", "--port", str(port))
        api = Api(process, port)
        self.apis.append(api)
        return api

    def start_worker(
        self, name: str = "worker", *, concurrency: int = 4, grace: float | None = None
    ) -> Process:
        """``jarvis worker --concurrency N [--grace G]`` (not waited for)."""
        args = ["worker", "--concurrency", str(concurrency)]
        if grace is not None:
            args += ["--grace", f"{grace:g}"]
        return self.spawn(name, *args)

    # --- readiness -----------------------------------------------------------------------

    async def health(self, api: Api) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            response = await client.get("/api/health")
        body: dict[str, Any] = response.json()
        body["httpStatus"] = response.status_code
        return body

    async def ready(self, *apis: Api) -> None:
        """Wait until every API answers ``GET /api/health`` with status ok."""
        for api in apis:

            async def healthy(api: Api = api) -> bool:
                try:
                    body = await self.health(api)
                except (httpx.HTTPError, ValueError):
                    return False
                return body["httpStatus"] == 200 and body.get("status") == "ok"

            await self._until(
                healthy, f"{api.process.name} to answer /api/health", watch=[api.process]
            )

    async def workers_started(self, *workers: Process) -> None:
        """Wait until each worker has printed its ready line (it is reading the queue)."""
        for worker in workers:

            async def started(worker: Process = worker) -> bool:
                return READY_LINE in _tail(worker.stdout)

            await self._until(started, f"{worker.name} to start", watch=[worker])

    async def live_workers(self, api: Api) -> int:
        """Live workers as ``GET /api/health`` counts them."""
        body = await self.health(api)
        workers = body.get("workers") or {}
        return int(workers.get("live", 0))

    async def workers_ready(self, api: Api, *workers: Process, live: int | None = None) -> None:
        """Wait until ``GET /api/health`` counts at least ``live`` live workers (default:
        how many of ``workers`` there are); fails early when one of them exits."""
        wanted = len(workers) if live is None else live

        async def enough() -> bool:
            try:
                return await self.live_workers(api) >= wanted
            except (httpx.HTTPError, ValueError):
                return False

        await self._until(enough, f"{wanted} live worker(s)", watch=list(workers))

    async def until_logged(self, process: Process, text: str) -> None:
        """Wait until ``text`` shows up in the process's stdout or stderr."""

        async def logged() -> bool:
            return text in _tail(process.stdout, 10**7) or text in _tail(process.stderr, 10**7)

        await self._until(logged, f"{process.name} to log {text!r}")

    async def _until(
        self, condition: Callable[[], Any], what: str, *, watch: Iterable[Process] = ()
    ) -> None:
        deadline = time.monotonic() + WAIT
        watched = list(watch)
        while True:
            if await condition():
                return
            for process in watched:
                if not process.alive:
                    raise RuntimeError(
                        f"{process.name} exited ({process.returncode}) while waiting for "
                        f"{what}\n{process.logs()}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {WAIT} s for {what}\n{self.report()}")
            await asyncio.sleep(0.1)

    # --- teardown and diagnostics --------------------------------------------------------

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and drop the database."""
        running = [p for p in self.processes if p.alive]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + 15
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.popen.wait(timeout=WAIT)
        with contextlib.suppress(Exception):
            drop_pg_database(self.database_name)
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
            try:
                client.delete(self.queue)  # the Taskiq stream and its consumer group
            finally:
                client.close()

    def log_marks(self) -> dict[str, tuple[int, int]]:
        """Where each process's logs end now (``report(since=...)`` shows what follows)."""
        return {p.name: p.log_sizes() for p in self.processes}

    def report(self, since: dict[str, tuple[int, int]] | None = None) -> str:
        """The logs of every process (those written after ``since`` when given)."""
        marks = since or {}
        return "\n".join(p.logs(since=marks.get(p.name, (0, 0))) for p in self.processes)


# --- talking to the cluster --------------------------------------------------------------


class ApiClient:
    """The HTTP API of one server, as the admin."""

    def __init__(self, api: Api, headers: dict[str, str]) -> None:
        self.api = api
        self.http = httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    async def register_persona(self, key: str) -> None:
        await self.call(
            "POST",
            "/api/personas/register",
            json={"key": key, "displayName": f"Test persona {key}", "colorScheme": COLOURS},
        )

    async def create_agent(
        self, *, persona: str, layer: str, name: str, delay_ms: int = 0
    ) -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "POST",
            "/api/agents",
            json={
                "name": name,
                "layer": layer,
                "persona": persona,
                "kind": "echo",
                "config": {"delayMs": delay_ms},
                "governanceStatus": "approved",
                "businessFunction": "testing",
            },
        )
        return body

    async def post_command(self, persona: str, command: str = "scale out") -> str:
        response = await self.http.post(
            "/api/agent-executions", json={"command": command, "persona": persona}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "queued", body
        return str(body["executionId"])

    async def execution(self, execution_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.call("GET", f"/api/agent-executions/{execution_id}")
        return body

    async def events(self, execution_id: str) -> list[dict[str, Any]]:
        """The stored events' payloads, in ``seq`` order."""
        page = await self.call(
            "GET", f"/api/agent-executions/{execution_id}/events", params={"limit": 1000}
        )
        return [item["payload"] for item in page["items"]]

    async def until_status(
        self, execution_id: str, statuses: Iterable[str] = FINAL_STATUSES
    ) -> dict[str, Any]:
        """Poll the execution until its status is one of ``statuses``; the execution."""
        wanted = frozenset(statuses)
        deadline = time.monotonic() + WAIT
        while True:
            execution = await self.execution(execution_id)
            if execution["status"] in wanted:
                return execution
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_id} still {execution['status']} after {WAIT} s")
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Crew:
    """A persona of its own and its agents (names are unique across the registry, so each
    carries the persona: ``"Slow Desk · crash_1a2b3c4d"``)."""

    persona: str
    layers: dict[str, list[tuple[str, int]]]

    def agent(self, short: str) -> str:
        """The registered name of the agent called ``short`` in the crew's definition."""
        return f"{short} · {self.persona}"

    @property
    def agents(self) -> list[str]:
        """Every agent's registered name, sorted."""
        return sorted(self.agent(name) for agents in self.layers.values() for name, _ in agents)


async def make_crew(
    client: ApiClient, layers: dict[str, list[tuple[str, int]]], *, label: str
) -> Crew:
    """A persona of its own with echo agents: ``{layer: [(name, delay_ms), ...]}``.

    Executions run as that persona involve exactly these agents, so tests sharing one
    database never see each other's agents."""
    crew = Crew(f"{label}_{uuid.uuid4().hex[:8]}", layers)
    await client.register_persona(crew.persona)
    for layer, agents in layers.items():
        for name, delay in agents:
            await client.create_agent(
                persona=crew.persona, layer=layer, name=crew.agent(name), delay_ms=delay
            )
    return crew


# --- a WebSocket client that never stops reading -----------------------------------------


class Listener:
    """A WebSocket connection whose messages are read as they arrive, by a task, into
    ``messages`` (heartbeats answered and left out), so the test can look at what has
    arrived *so far* and wait for what it needs."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name="listener")
        self.closed: BaseException | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, api: Api, token: str, *, admin: bool = True) -> AsyncIterator[Listener]:
        """A socket on ``api`` authenticated with ``token`` (``?token=``), greeted."""
        connection = await asyncio.wait_for(
            connect(api.ws_url(token=token), max_queue=None, open_timeout=WAIT), WAIT
        )
        listener = cls(connection)
        try:
            greeting = await listener.next_of({"connection-established"})
            assert greeting["isAdmin"] is admin, greeting
            yield listener
        finally:
            await listener.close()

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                body = json.loads(raw)
                if body.get("type") == "heartbeat":
                    await self.connection.send(json.dumps({"type": "pong"}))
                    continue
                async with self._arrived:
                    self.messages.append(body)
                    self._arrived.notify_all()
        except Exception as exc:  # the socket ended; waiters are told
            self.closed = exc
        finally:
            async with self._arrived:
                if self.closed is None:
                    self.closed = ConnectionError("socket closed")
                self._arrived.notify_all()

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], Any], what: str = "a message"
    ) -> Any:
        """Wait until ``predicate(messages)`` is truthy; return its value."""
        async with asyncio.timeout(WAIT), self._arrived:
            while True:
                value = predicate(self.messages)
                if value:
                    return value
                if self.closed is not None:
                    raise AssertionError(f"socket closed ({self.closed!r}) waiting for {what}")
                await self._arrived.wait()

    async def next_of(self, types: set[str], start: int = 0) -> dict[str, Any]:
        """The first message at index >= ``start`` whose type is in ``types``."""

        def find(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next((m for m in messages[start:] if m.get("type") in types), None)

        found: dict[str, Any] = await self.wait_for(find, f"one of {sorted(types)}")
        return found

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """The events of ``execution_id`` received so far, in arrival order."""
        return [m for m in self.messages if m.get("executionId") == execution_id and "seq" in m]

    async def until_terminal(self, execution_id: str) -> list[dict[str, Any]]:
        """Wait for the execution's terminal event; its events received so far."""

        def ended(messages: list[dict[str, Any]]) -> bool:
            return any(
                m.get("executionId") == execution_id and m.get("type") in TERMINAL_EVENTS
                for m in messages
            )

        await self.wait_for(ended, f"the end of {execution_id}")
        return self.events(execution_id)

    async def subscribe(self, execution_id: str, after_seq: int | None = None) -> int:
        """Send subscribe-execution; wait for ``subscribed``; its index in ``messages``."""
        start = len(self.messages)
        message: dict[str, Any] = {"type": "subscribe-execution", "executionId": execution_id}
        if after_seq is not None:
            message["afterSeq"] = after_seq
        await self.send(message)

        def answered(messages: list[dict[str, Any]]) -> int | None:
            for index in range(start, len(messages)):
                body = messages[index]
                if body.get("executionId") == execution_id and body.get("type") in {
                    "subscribed",
                    "error",
                }:
                    assert body["type"] == "subscribed", body
                    return index + 1  # 1-based, so index 0 is truthy
            return None

        position: int = await self.wait_for(answered, f"subscribed to {execution_id}")
        return position - 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    def drop(self) -> None:
        """Drop the TCP connection abruptly (no close handshake), as a lost network does."""
        transport = self.connection.transport
        transport.abort()
