"""GET /api/agents?limit=50 throughput: JARVIS versus a bare FastAPI route.

Both run under uvicorn (one worker) in their own process and are driven in turn by `wrk`
in another process, for the same duration and connection count, on SQLite and on
PostgreSQL. Prints requests per second and the ratio to the bare route measured in the
same run. Target: a ratio of at least 0.5.

    python benchmarks/agents_list.py [--duration 8] [--connections 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.demo.service import SEED_ACTOR, seed_demo
from jarvis.wiring import config_service

HERE = Path(__file__).resolve().parent
PATH = "/api/agents?limit=50"
PG_ADMIN_URL = os.environ.get(
    "JARVIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PG_BENCH_DB = "jarvis_bench"
EXTRA_AGENTS = 60
LAYERS = ("Experience", "Meta Brain", "Role", "Process", "System", "Interface")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare_database(url: str) -> None:
    await upgrade(url)
    db = Database.from_url(url)
    config = config_service(db, poll_seconds=0)
    try:
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
        async with unit_of_work(db) as session:
            await seed_demo(session, config=config)
            for i in range(EXTRA_AGENTS):
                await create_agent(
                    session,
                    AgentCreate.model_validate(
                        {
                            "name": f"Benchmark Agent {i:03d}",
                            "layer": LAYERS[i % len(LAYERS)],
                            "persona": "underwriter",
                            "business_function": "underwriting",
                            "specialization": "Load test",
                            "description": "An agent that exists to fill a page of 50.",
                            "config": {"threshold": 0.8, "labels": ["a", "b", "c"]},
                        }
                    ),
                    actor=SEED_ACTOR,
                )
    finally:
        await db.dispose()


async def recreate_pg_database() -> str:
    engine = create_async_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{PG_BENCH_DB}"'))
    await engine.dispose()
    return make_url(PG_ADMIN_URL).set(database=PG_BENCH_DB).render_as_string(hide_password=False)


def start_server(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(command, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server {args} did not come up")


def wrk(port: int, duration: int, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            f"http://127.0.0.1:{port}{PATH}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers during the run:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(match.group(1))


def measure(url: str, label: str, duration: int, connections: int, rounds: int) -> float:
    env = {
        "JARVIS_DATABASE_URL": url,
        "JARVIS_SECRET_KEY": "benchmark-" + "k" * 40,
        "JARVIS_LOG_LEVEL": "WARNING",
    }
    jarvis_port, bare_port = free_port(), free_port()
    jarvis = start_server(["--factory", "jarvis.main:app"], env, jarvis_port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{jarvis_port}{PATH}") as r:
            payload = json.loads(r.read())
        if len(payload["items"]) != 50:
            raise RuntimeError("the benchmark needs a full page of 50 agents")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(payload, fh)
        bare = start_server(
            ["bare_app:app", "--app-dir", str(HERE)], {"BARE_PAYLOAD_FILE": fh.name}, bare_port
        )
        try:
            wrk(jarvis_port, 2, connections)  # warm-up
            wrk(bare_port, 2, connections)
            jarvis_rps, bare_rps = [], []
            for _ in range(rounds):  # interleaved, so drift hits both alike
                bare_rps.append(wrk(bare_port, duration, connections))
                jarvis_rps.append(wrk(jarvis_port, duration, connections))
        finally:
            bare.terminate()
            bare.wait()
            os.unlink(fh.name)
    finally:
        jarvis.terminate()
        jarvis.wait()
    j, b = statistics.median(jarvis_rps), statistics.median(bare_rps)
    print(
        f"agents_list[{label}]: {j:.0f} req/s ({j / b:.2f} x bare FastAPI route at {b:.0f} "
        f"req/s; target >= 0.5)"
    )
    return j / b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            asyncio.run(prepare_database(url))
            measure(url, "sqlite", args.duration, args.connections, args.rounds)
        if "postgresql" in backends:
            url = asyncio.run(recreate_pg_database())
            asyncio.run(prepare_database(url))
            measure(url, "postgresql", args.duration, args.connections, args.rounds)


if __name__ == "__main__":
    main()
