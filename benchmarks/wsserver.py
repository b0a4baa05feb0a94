"""What the WebSocket benchmarks share: a seeded database, and one API process under test
served the way `jarvis serve` serves it, on a free loopback port."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.tokens.service import create_api_token
from jarvis.auth.users.service import create_user
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona
from jarvis.wiring import config_service

ACTOR = Actor.system("benchmark")


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
        # as `jarvis serve` runs it (jarvis.realtime.ws.uvicorn_ws_options, default heartbeat)
        *("--ws", "websockets-sansio", "--ws-per-message-deflate", "false"),
        *("--ws-ping-interval", "15", "--ws-ping-timeout", "30"),
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


async def prepare_database(
    url: str, email: str, seed: Callable[[AsyncSession], Awaitable[None]] | None = None
) -> str:
    """Migrate, seed the admin persona and a user with an API token (and whatever ``seed``
    adds in the same transaction); return the token."""
    await upgrade(url)
    db = Database.from_url(url)
    try:
        config = config_service(db, poll_seconds=0)
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
            await ensure_persona(session, ADMIN_PERSONA, actor=ACTOR, config=config)
            await create_user(session, email=email, persona="admin", password=None, actor=ACTOR)
            _, token = await create_api_token(session, email=email, name="bench", actor=ACTOR)
            if seed is not None:
                await seed(session)
        return token
    finally:
        await db.dispose()
