"""What the WebSocket benchmarks share: one API process under test, served the way
`jarvis serve` serves it, on a free loopback port."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    """The API process under test (uvicorn, one worker), once it answers /api/health."""
    env = {
        **os.environ,
        "JARVIS_DATABASE_URL": database_url,
        "JARVIS_SECRET_KEY": "benchmark-" + "k" * 40,
        "JARVIS_LOG_LEVEL": "WARNING",
    }
    command = [
        *(sys.executable, "-m", "uvicorn", "--factory", "jarvis.main:app"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--no-access-log", "--log-level", "warning"),
        # as `jarvis serve` runs it (jarvis.realtime.ws.UVICORN_WS_OPTIONS)
        *("--ws", "websockets-sansio", "--ws-per-message-deflate", "false"),
    ]
    proc = subprocess.Popen(command, env=env, preexec_fn=raise_fd_limit)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API process did not come up")
