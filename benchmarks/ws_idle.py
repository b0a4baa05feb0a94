"""Idle WebSocket connections: the memory one API process needs to hold 10,000 of them.

A real API process (uvicorn, ``jarvis.main:app``) on a SQLite file with one user and an
API token. ``--client-processes`` separate processes open ``--connections`` WebSockets in
all (the ``websockets`` client, offering permessage-deflate as browsers do unless
``--no-deflate``), authenticate each with its first message, then stay idle for
``--hold`` seconds, answering the server's heartbeats with ``pong``; the default hold is
longer than the server's dead-peer limit (3 heartbeat intervals of 15 s), so a client
that did not answer would be closed before the end. No connection may be closed.

Reads the server's RSS (``VmRSS`` in ``/proc/<pid>/status``) once it is up and has served
one authenticated WebSocket (so the one-off imports are paid), and again after the hold
(and its peak in between). Prints the RSS before and after, RSS per connection, and the
ratio RSS after / 1 GiB. Target: < 1.

    python benchmarks/ws_idle.py [--connections 10000] [--client-processes 4] [--hold 50]
        [--no-deflate]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wsserver import free_port, prepare_database, raise_fd_limit, start_server

EMAIL = "idle@bench.local"
GIB = 2**30
CONNECT_CONCURRENCY = 64  # handshakes in flight per client process
WAIT = 300.0  # a hang guard


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def open_authenticated(url: str, token: str, deflate: bool) -> ClientConnection:
    sock = await connect(
        url, compression="deflate" if deflate else None, open_timeout=120, proxy=None
    )
    await sock.send(json.dumps({"type": "auth", "token": token}))
    while json.loads(await sock.recv()).get("type") != "connection-established":
        pass
    return sock


async def stay_idle(sock: ClientConnection, answered: list[int]) -> None:
    """Answer heartbeats until the socket closes (which the benchmark counts as a failure)."""
    try:
        async for raw in sock:
            if json.loads(raw).get("type") == "heartbeat":
                await sock.send('{"type":"pong"}')
                answered[0] += 1
    except ConnectionClosed:
        pass


async def client_main(url: str, token: str, count: int, deflate: bool, pipe: Connection) -> None:
    raise_fd_limit()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> ClientConnection:
        async with gate:
            return await open_authenticated(url, token, deflate)

    sockets = list(await asyncio.gather(*(one() for _ in range(count))))
    answered = [0]
    idlers = [asyncio.create_task(stay_idle(s, answered)) for s in sockets]
    pipe.send(("connected", len(sockets)))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "report"
    closed = [s.close_code for s in sockets if s.close_code is not None]
    pipe.send(("report", len(sockets) - len(closed), closed[:10], answered[0]))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
    for task in idlers:
        task.cancel()
    await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


def client_process(url: str, token: str, count: int, deflate: bool, pipe: Connection) -> None:
    asyncio.run(client_main(url, token, count, deflate, pipe))


async def warm_up(url: str, token: str) -> None:
    sock = await open_authenticated(url, token, deflate=True)
    await sock.close()


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--hold", type=float, default=50.0, help="Idle seconds before reading")
    parser.add_argument("--no-deflate", action="store_true")
    args = parser.parse_args()
    raise_fd_limit()
    processes = max(1, min(args.client_processes, args.connections))
    sizes = [
        args.connections // processes + (i < args.connections % processes) for i in range(processes)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{tmp}/idle.db"
        token = asyncio.run(prepare_database(database_url, EMAIL))
        port = free_port()
        server = start_server(database_url, port)
        ws_url = f"ws://127.0.0.1:{port}/api/agent-executions/ws"
        context = multiprocessing.get_context("spawn")
        workers, pipes = [], []
        try:
            asyncio.run(warm_up(ws_url, token))
            time.sleep(1)
            before = rss_bytes(server.pid)
            started = time.monotonic()
            for size in sizes:
                mine, theirs = context.Pipe()
                worker = context.Process(
                    target=client_process,
                    args=(ws_url, token, size, not args.no_deflate, theirs),
                    daemon=True,
                )
                worker.start()
                workers.append(worker)
                pipes.append(mine)
            peak = before
            for pipe in pipes:
                while not pipe.poll(1):
                    peak = max(peak, rss_bytes(server.pid))
                    if time.monotonic() - started > WAIT:
                        raise RuntimeError("the clients did not connect in time")
                if pipe.recv()[0] != "connected":
                    raise RuntimeError("a client process could not connect its sockets")
            connected_in = time.monotonic() - started
            hold_until = time.monotonic() + args.hold
            while time.monotonic() < hold_until:
                peak = max(peak, rss_bytes(server.pid))
                time.sleep(1)
            after = rss_bytes(server.pid)
            peak = max(peak, after)
            open_now, pongs, closes = 0, 0, []
            for pipe in pipes:
                pipe.send(("report",))
            for pipe in pipes:
                _, alive, closed, answered = pipe.recv()
                open_now += alive
                closes.extend(closed)
                pongs += answered
            for pipe in pipes:
                pipe.send(("stop",))
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.kill()
            server.terminate()
            server.wait()
    if open_now != args.connections:
        raise SystemExit(
            f"only {open_now} of {args.connections} connections were still open after "
            f"{args.hold:g} s idle (close codes: {closes})"
        )
    per_connection = (after - before) / args.connections
    deflate = "off" if args.no_deflate else "on"
    print(
        f"ws_idle[{args.connections} idle authenticated connections, deflate {deflate}, "
        f"held {args.hold:g} s, {pongs} heartbeats answered]: server RSS {mib(before)} -> "
        f"{mib(after)} (peak {mib(peak)}), {per_connection / 1024:.1f} KiB per connection, "
        f"connected in {connected_in:.1f} s; RSS / 1 GiB = {after / GIB:.2f} (target < 1)"
    )


if __name__ == "__main__":
    main()
