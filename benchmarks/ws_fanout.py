"""WebSocket fan-out: how long after its commit an event reaches 1,000 subscribers.

A real API process (uvicorn, ``jarvis.main:app``) on a SQLite file seeded with six
``echo`` agents, one per layer, persona ``admin``. The Experience agent
``requires_approval``, so every execution pauses after its first layer: the subscribers
subscribe (``subscribe-execution``) while it waits and receive its replay, the benchmark
approves it through the API, and what the execution does from then on (24 events: the
approval, the resume, five layers of started / completed steps, the end) reaches them
live. The other agents wait ``--agent-delay-ms`` each, as an agent waiting on I/O does,
so the events come in bursts of about four (one per commit group) every 100 ms.

The subscribers are spread over ``--client-processes`` processes, each an asyncio loop
answering heartbeats. By default each socket is a minimal frame reader (``LeanSocket``)
that stamps every frame with the time of the read that brought it and parses it only
after the run, so on these 2 cores the clients take as little CPU from the server as
they can; ``--client websockets`` uses the ``websockets`` library instead (with
``--deflate``: permessage-deflate, as browsers negotiate it). For every live event and
every subscriber: delay = receipt (``time.time()``) - the event's ``at``, which the engine
stamps just before the transaction that stores the event commits, so the figure also
counts the commit: it is conservative. Every subscriber must receive every event once, in
``seq`` order, or the benchmark fails.

Baseline, measured in the same run: the same execution followed by one subscriber (the
other connections stay open and idle), the two alternated execution by execution.
Prints p50 / p99 in ms for both, the ratio of the p99s, the p99 of each execution, and
the CPU the server and the clients used while the events were live.
Target: p99 <= 100 ms at 1,000 subscribers.

    python benchmarks/ws_fanout.py [--subscribers 1000] [--executions 5]
        [--client-processes 4] [--agent-delay-ms 100] [--client lean|websockets [--deflate]]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect

from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.core.layers import LAYER_ORDER
from wsserver import ACTOR, free_port, raise_fd_limit, start_server
from wsserver import prepare_database as seeded_database

EMAIL = "fanout@bench.local"
TARGET_P99_MS = 100.0
FINAL = frozenset(
    {b"execution_completed", b"execution_failed", b"execution_cancelled", b"execution_rejected"}
)
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process
WAIT = 120.0  # a hang guard


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the server --------------------------------------------------------------------------


async def prepare_database(url: str, agent_delay_ms: int) -> str:
    """The seeded database, with six echo agents (the Experience one pauses for approval);
    the token."""

    async def agents(session: AsyncSession) -> None:
        for index, layer in enumerate(LAYER_ORDER):
            settings: dict[str, Any] = (
                {"requires_approval": True} if index == 0 else {"delay_ms": agent_delay_ms}
            )
            data = AgentCreate(
                name=f"Fan-out {layer.value}",
                layer=layer,
                persona="admin",
                kind="echo",
                config=settings,
                governance_status="approved",
            )
            await create_agent(session, data, actor=ACTOR)

    return await seeded_database(url, EMAIL, agents)


# --- the subscribers (client processes) --------------------------------------------------


def type_of(raw: bytes) -> bytes:
    """The message's type, read without parsing it (the server writes ``type`` first)."""
    if raw.startswith(b'{"type":"'):
        return raw[9 : raw.index(b'"', 9)]
    kind = json.loads(raw).get("type", "")
    return str(kind).encode()


@dataclass
class Subscriber:
    """One WebSocket: what it receives while following an execution, with the time each
    frame was read; parsed and checked only afterwards, so reading stays cheap."""

    send: Callable[[str], None]
    execution_id: str | None = None
    frames: list[tuple[bytes, float]] = field(default_factory=list)
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def follow(self, execution_id: str) -> None:
        self.execution_id, self.frames = execution_id, []
        self.paused.clear()
        self.done.clear()
        self.send(json.dumps({"type": "subscribe-execution", "executionId": execution_id}))

    def unfollow(self) -> None:
        self.send(json.dumps({"type": "unsubscribe-execution", "executionId": self.execution_id}))

    def receive(self, raw: bytes, received: float) -> None:
        kind = type_of(raw)
        if kind == b"heartbeat":
            self.send('{"type":"pong"}')
            return
        self.frames.append((raw, received))
        if kind == b"awaiting_approval":
            self.paused.set()  # the replay ends here; the approval comes after
        elif kind in FINAL:
            self.done.set()

    def delays_ms(self) -> tuple[list[float], list[str]]:
        """The delay of each live event (those after the pause), and what was wrong."""
        delays: list[float] = []
        problems: list[str] = []
        last, live = 0, False
        for raw, received in self.frames:
            message = json.loads(raw)
            if message.get("type") == "error":
                problems.append(f"server error: {message}")
            if message.get("executionId") != self.execution_id or "seq" not in message:
                continue
            if message["seq"] != last + 1:
                problems.append(f"seq {message['seq']} after {last}")
            last = message["seq"]
            if live:
                at = datetime.fromisoformat(message["at"]).timestamp()
                delays.append((received - at) * 1000)
            live = live or message["type"] == "awaiting_approval"
        return delays, problems


class LeanSocket(asyncio.Protocol):
    """Just enough of a WebSocket client (RFC 6455, no extensions) to receive text frames
    cheaply: every frame of a TCP read is parsed in one pass and stamped with the time of
    that read, so 250 sockets per process cost the client little next to the server."""

    def __init__(self, path: str, host: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.buffer = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.on_text: Callable[[bytes, float], None] = lambda _text, _at: None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self.buffer += data
        if not self.upgraded.done():
            head, sep, _ = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(head.decode(errors="replace")))
                return
            del self.buffer[: len(head) + len(sep)]
            self.upgraded.set_result(None)
        buffer, start = self.buffer, 0
        while len(buffer) - start >= 2:
            opcode, length = buffer[start] & 0x0F, buffer[start + 1] & 0x7F
            header = 2
            if length == 126:
                header = 4
                length = int.from_bytes(buffer[start + 2 : start + 4], "big")
            elif length == 127:
                header = 10
                length = int.from_bytes(buffer[start + 2 : start + 10], "big")
            end = start + header + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[start + header : end])
            start = end
            if opcode == 0x1:
                self.on_text(payload, received)
            elif opcode == 0x9:
                self._frame(0xA, payload)  # pong
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()
        del buffer[:start]

    def _frame(self, opcode: int, payload: bytes) -> None:
        # Client frames are masked; FIN set, never fragmented.
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = bytes([0x80 | opcode, 0x80 | size])
        else:
            header = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None:
            self.transport.write(header + mask + masked)

    def send_text(self, text: str) -> None:
        self._frame(0x1, text.encode())


async def open_lean(url: str, token: str) -> Subscriber:
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, _, port = host_port.partition(":")
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: LeanSocket("/" + path, host_port), host, int(port)
    )
    await protocol.upgraded
    greeted = loop.create_future()

    def greeting(text: bytes, _at: float) -> None:
        if json.loads(text).get("type") == "connection-established" and not greeted.done():
            greeted.set_result(None)

    protocol.on_text = greeting
    protocol.send_text(json.dumps({"type": "auth", "token": token}))
    await greeted
    subscriber = Subscriber(protocol.send_text)
    protocol.on_text = subscriber.receive
    return subscriber


async def open_library(url: str, token: str, deflate: bool) -> Subscriber:
    """A subscriber on the ``websockets`` client (permessage-deflate when ``deflate``)."""
    sock = await connect(
        url, compression="deflate" if deflate else None, open_timeout=60, proxy=None
    )
    await sock.send(json.dumps({"type": "auth", "token": token}))
    while json.loads(await sock.recv()).get("type") != "connection-established":
        pass
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def send(text: str) -> None:
        task = loop.create_task(sock.send(text))
        pending.add(task)
        task.add_done_callback(pending.discard)

    subscriber = Subscriber(send)

    async def read() -> None:
        async for raw in sock:
            received = time.time()
            subscriber.receive(raw.encode() if isinstance(raw, str) else raw, received)

    reader = loop.create_task(read())
    pending.add(reader)
    return subscriber


async def client_main(
    url: str, token: str, count: int, client: str, deflate: bool, pipe: Connection
) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> Subscriber:
        async with gate:
            if client == "lean":
                return await open_lean(url, token)
            return await open_library(url, token, deflate)

    pool = list(await asyncio.gather(*(one() for _ in range(count))))
    pipe.send(("connected", len(pool)))
    active: list[Subscriber] = []
    cpu_at_ready = time.process_time()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "subscribe":
            _, execution_id, wanted = command
            active = pool[:wanted]
            for sub in active:
                sub.follow(execution_id)
            async with asyncio.timeout(WAIT):
                await asyncio.gather(*(s.paused.wait() for s in active))
            cpu_at_ready = time.process_time()
            pipe.send(("ready",))
        elif command[0] == "collect":
            async with asyncio.timeout(WAIT):
                await asyncio.gather(*(s.done.wait() for s in active))
            cpu = time.process_time() - cpu_at_ready
            delays, counts, problems = [], set(), []
            for sub in active:
                mine, wrong = sub.delays_ms()
                delays.extend(mine)
                counts.add(len(mine))
                problems.extend(wrong)
            for sub in active:
                sub.unfollow()
            pipe.send(("result", delays, sorted(counts), problems[:10], cpu))
        else:
            pipe.send(("stopped",))
            return


def client_process(
    url: str, token: str, count: int, client: str, deflate: bool, pipe: Connection
) -> None:
    # The clients' own collector pauses would show up as delivery delay: measure the server.
    gc.disable()
    asyncio.run(client_main(url, token, count, client, deflate, pipe))


# --- the conductor -----------------------------------------------------------------------


@dataclass
class Clients:
    pipes: list[Connection]
    sizes: list[int]

    def ask(self, commands: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(WAIT):
                raise RuntimeError("a client process did not answer")
            answers.append(pipe.recv())
        return answers

    def spread(self, subscribers: int) -> list[int]:
        """How many of each process's sockets subscribe, for ``subscribers`` in all."""
        wanted, left = [], subscribers
        for size in self.sizes:
            wanted.append(min(size, left))
            left -= wanted[-1]
        return wanted


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """What the live part of the runs of one kind cost, summed over its executions."""

    delays_ms: list[float] = field(default_factory=list)
    wall: float = 0.0  # seconds from the approval to the last subscriber's last event
    server_cpu: float = 0.0
    clients_cpu: float = 0.0
    p99s: list[float] = field(default_factory=list)  # of each execution

    def describe(self) -> str:
        return (
            f"p50 {percentile(self.delays_ms, 0.5):.1f} ms, "
            f"p99 {percentile(self.delays_ms, 0.99):.1f} ms"
        )

    def load(self) -> str:
        return (
            f"CPU while live: server {100 * self.server_cpu / self.wall:.0f}%, "
            f"clients {100 * self.clients_cpu / self.wall:.0f}% of one core"
        )


def run_one(
    http: httpx.Client, clients: Clients, server_pid: int, subscribers: int, into: Sample
) -> None:
    """One execution followed by ``subscribers`` sockets; adds the delays of its live
    events (and what they cost) to ``into``."""
    created = http.post("/api/agent-executions", json={"command": "fan out", "persona": "admin"})
    created.raise_for_status()
    execution_id = created.json()["executionId"]
    deadline = time.monotonic() + WAIT
    while http.get(f"/api/agent-executions/{execution_id}").json()["status"] != (
        "awaiting_approval"
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"execution {execution_id} never paused for approval")
        time.sleep(0.05)
    wanted = clients.spread(subscribers)
    clients.ask([("subscribe", execution_id, n) for n in wanted])
    time.sleep(0.2)  # the subscriptions are settled; nothing is in flight
    started, server_cpu = time.monotonic(), cpu_seconds(server_pid)
    http.post(f"/api/agent-executions/{execution_id}/approve", json={}).raise_for_status()
    answers = clients.ask([("collect",)] * len(wanted))
    into.wall += time.monotonic() - started
    into.server_cpu += cpu_seconds(server_pid) - server_cpu
    counts: set[int] = set()
    delays: list[float] = []
    for (_, got, sizes, problems, cpu), n in zip(answers, wanted, strict=True):
        if problems:
            raise RuntimeError(f"execution {execution_id}: {problems}")
        if n:
            counts.update(sizes)
        delays.extend(got)
        into.clients_cpu += cpu
    if len(counts) != 1 or 0 in counts:
        raise RuntimeError(f"subscribers received different event counts: {sorted(counts)}")
    if len(delays) != subscribers * counts.pop():
        raise RuntimeError("some subscribers received nothing")
    into.delays_ms.extend(delays)
    into.p99s.append(percentile(delays, 0.99))


def rounded(values: list[float]) -> str:
    return ", ".join(f"{value:.0f}" for value in values) + " ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--executions", type=int, default=5)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--agent-delay-ms", type=int, default=100)
    parser.add_argument(
        "--client",
        choices=("lean", "websockets"),
        default="lean",
        help="lean: a minimal frame reader, so the clients cost little CPU (default); "
        "websockets: the websockets library's client",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="With --client websockets: offer permessage-deflate, as browsers do",
    )
    args = parser.parse_args()
    if args.deflate and args.client != "websockets":
        parser.error("--deflate needs --client websockets")
    processes = max(1, min(args.client_processes, args.subscribers))
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{tmp}/fanout.db"
        token = asyncio.run(prepare_database(database_url, args.agent_delay_ms))
        port = free_port()
        server = start_server(database_url, port)
        context = multiprocessing.get_context("spawn")
        workers, pipes = [], []
        sizes = [
            args.subscribers // processes + (i < args.subscribers % processes)
            for i in range(processes)
        ]
        try:
            ws_url = f"ws://127.0.0.1:{port}/api/agent-executions/ws"
            for size in sizes:
                mine, theirs = context.Pipe()
                worker = context.Process(
                    target=client_process,
                    args=(ws_url, token, size, args.client, args.deflate, theirs),
                    daemon=True,
                )
                worker.start()
                workers.append(worker)
                pipes.append(mine)
            clients = Clients(pipes, sizes)
            for pipe in pipes:
                if not pipe.poll(WAIT) or pipe.recv()[0] != "connected":
                    raise RuntimeError("a client process could not connect its sockets")
            headers = {"Authorization": f"Bearer {token}"}
            base_url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base_url, headers=headers, timeout=WAIT) as http:
                warm_up = Sample()
                run_one(http, clients, server.pid, 1, warm_up)  # not counted
                run_one(http, clients, server.pid, args.subscribers, warm_up)
                baseline, fanout = Sample(), Sample()
                for index in range(args.executions):
                    # Alternated, the order swapped every round, so drift hits both alike.
                    order = [(1, baseline), (args.subscribers, fanout)]
                    for subscribers, into in order if index % 2 == 0 else order[::-1]:
                        run_one(http, clients, server.pid, subscribers, into)
            clients.ask([("stop",)] * len(pipes))
        finally:
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
            server.terminate()
            server.wait()
    per_execution = len(baseline.delays_ms) // max(1, args.executions)
    p99 = percentile(fanout.delays_ms, 0.99)
    ratio = p99 / percentile(baseline.delays_ms, 0.99)
    client = f"{args.client} client" + (", deflate" if args.deflate else "")
    print(
        f"ws_fanout[sqlite, {args.subscribers} subscribers, {args.executions} executions x "
        f"{per_execution} live events, agents {args.agent_delay_ms} ms, {client}]: "
        f"{fanout.describe()} over {len(fanout.delays_ms)} deliveries ({ratio:.1f} x the p99 "
        f"of 1 subscriber: {baseline.describe()}; target p99 <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'})"
    )
    print(f"  {args.subscribers} subscribers: {fanout.load()}; 1 subscriber: {baseline.load()}")
    print(f"  p99 of each execution, {args.subscribers} subscribers: {rounded(fanout.p99s)}")
    print(f"  p99 of each execution, 1 subscriber: {rounded(baseline.p99s)}")


if __name__ == "__main__":
    main()
