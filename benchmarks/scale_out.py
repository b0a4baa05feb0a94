"""Scale-out: executions per second with 1 worker and with 2 workers, in the same run.

PostgreSQL + Redis, real processes: one ``jarvis serve`` (it only queues: with
``JARVIS_REDIS_URL`` set the API does not run executions) and ``jarvis worker
--concurrency C`` processes reading one Taskiq stream. Every execution runs the ``admin``
persona's agents: one ``echo`` agent per layer sleeping ``--delay-ms`` (50 ms), so an
execution spends most of its time waiting, as agents that call models or services do.

For each worker count (1, then 2; ``--rounds`` repeats the pair in alternating order, so
drift hits both alike) the workers are started and warmed up with a few untimed
executions; then ``--executions`` commands are POSTed (over 16 connections) and the rate is
the count divided by the time from the first POST to the last execution's ``completed_at``
(the database is polled until all have ended). Prints both rates and the ratio
2 workers / 1 worker (target >= 1.7), and for each measurement what explains it: CPU
milliseconds per execution of the workers, the API and the PostgreSQL backends (local
server), how busy the whole machine was (it is shared), the median time an execution ran
and waited in the queue, and how many executions each worker ran.

    python benchmarks/scale_out.py [--executions 200] [--concurrency 4] [--delay-ms 50]
        [--rounds 1] [--warmup 8]

PostgreSQL: ``JARVIS_BENCH_POSTGRES_URL`` (else ``JARVIS_TEST_POSTGRES_URL``, else the local
default) is an admin URL; the benchmark creates and drops its database there. Redis:
``JARVIS_BENCH_REDIS_URL`` (else ``JARVIS_TEST_REDIS_URL``, else redis://127.0.0.1:6379/0);
the benchmark uses a stream of its own and deletes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.auth.tokens.service import create_api_token
from jarvis.auth.users.service import create_user
from jarvis.core.identity import Actor
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import as_utc
from jarvis.orchestration.lifecycle import FINAL
from jarvis.orchestration.models import executions_table
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona
from jarvis.wiring import config_service

PG_ADMIN_URL = os.environ.get(
    "JARVIS_BENCH_POSTGRES_URL",
    os.environ.get(
        "JARVIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ),
)
REDIS_URL = os.environ.get(
    "JARVIS_BENCH_REDIS_URL", os.environ.get("JARVIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
)
BENCH_DB = "jarvis_bench_scale_out"
ADMIN_EMAIL = "bench@scale-out.local"
TARGET_RATIO = 1.7
POST_CONNECTIONS = 16
WAIT = 600.0  # a hang guard
ACTOR = Actor.system("benchmark")


def jarvis_command() -> list[str]:
    script = Path(sys.executable).parent / "jarvis"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jarvis.cli.app import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the database ------------------------------------------------------------------------


async def admin_sql(*statements: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def prepare(url: str, delay_ms: int) -> str:
    """The admin, one echo agent per layer for the admin persona; the admin's API token."""
    db = Database.from_url(url)
    try:
        config = config_service(db, poll_seconds=0)
        async with unit_of_work(db) as session:
            await ensure_persona(session, ADMIN_PERSONA, actor=ACTOR, config=config)
            await create_user(
                session, email=ADMIN_EMAIL, persona="admin", password=None, actor=ACTOR
            )
            for layer in LAYER_ORDER:
                await create_agent(
                    session,
                    AgentCreate.model_validate(
                        {
                            "name": f"Bench {layer.value}",
                            "layer": layer.value,
                            "persona": "admin",
                            "kind": "echo",
                            "config": {"delayMs": delay_ms},
                            "governanceStatus": "approved",
                        }
                    ),
                    actor=ACTOR,
                )
        async with unit_of_work(db) as session:
            _, token = await create_api_token(session, email=ADMIN_EMAIL, name="bench", actor=ACTOR)
        return token
    finally:
        await db.dispose()


# --- processes ---------------------------------------------------------------------------


class Processes:
    """The children of this run, each in its own process group, logging to files."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def cli(self, *args: str) -> None:
        done = subprocess.run(
            [*jarvis_command(), *args], env=self.env, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"jarvis {' '.join(args)} failed:\n{done.stderr.decode()}")

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            child = subprocess.Popen(
                [*jarvis_command(), *args],
                env={**self.env, **(env or {})},
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append((name, child))
        return child

    def log_of(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    async def wait_for_line(self, name: str, child: subprocess.Popen[bytes], line: str) -> None:
        deadline = time.monotonic() + 120
        while line not in self.log_of(name):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log_of(name)[-4000:]}")
            await asyncio.sleep(0.1)

    @staticmethod
    def stop(child: subprocess.Popen[bytes]) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    def stop_all(self) -> None:
        for _, child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child in self.children:
            self.stop(child)


async def wait_healthy(url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get("/api/health")
                if response.status_code == 200 and response.json().get("status") == "ok":
                    return
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not become healthy")
            await asyncio.sleep(0.1)


# --- CPU accounting (Linux /proc): is a measurement bound by the machine's two cores? ---


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_of(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` on this machine
    (a local server; empty when PostgreSQL runs elsewhere)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if command.startswith("postgres: ") and f" {database} " in command:
            found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# --- one measurement ---------------------------------------------------------------------


async def all_ended(db: Database, ids: set[str]) -> float:
    """Wait until every execution in ``ids`` has ended, completed; the wall-clock time of
    the last ``completed_at`` (read from the database, so polling costs no precision)."""
    table = executions_table
    query = select(func.count(), func.max(table.c.completed_at)).where(
        table.c.execution_id.in_(list(ids)), table.c.status.in_(sorted(FINAL))
    )
    async with asyncio.timeout(WAIT):
        while True:
            async with unit_of_work(db, write=False) as session:
                ended, last = (await session.execute(query)).one()
            if ended == len(ids):
                break
            await asyncio.sleep(0.1)
    async with unit_of_work(db, write=False) as session:
        failed = await session.scalar(
            select(func.count()).where(
                table.c.execution_id.in_(list(ids)), table.c.status != "completed"
            )
        )
    if failed:
        raise RuntimeError(f"{failed} of {len(ids)} executions did not complete")
    return float(as_utc(last).timestamp())


async def timings(db: Database, ids: set[str]) -> tuple[float, float]:
    """Median milliseconds the executions ran (started -> completed) and waited (created
    -> started)."""
    table = executions_table
    async with unit_of_work(db, write=False) as session:
        rows = (
            await session.execute(
                select(table.c.created_at, table.c.started_at, table.c.completed_at).where(
                    table.c.execution_id.in_(list(ids))
                )
            )
        ).all()
    ran = [(as_utc(r.completed_at) - as_utc(r.started_at)).total_seconds() for r in rows]
    waited = [(as_utc(r.started_at) - as_utc(r.created_at)).total_seconds() for r in rows]
    return statistics.median(ran) * 1000, statistics.median(waited) * 1000


async def post_many(client: httpx.AsyncClient, count: int) -> tuple[set[str], float]:
    """POST ``count`` commands (16 at a time); their ids and the time of the first POST."""
    gate = asyncio.Semaphore(POST_CONNECTIONS)
    first = time.time()  # wall clock: compared with the workers' completed_at

    async def one(i: int) -> str:
        async with gate:
            response = await client.post(
                "/api/agent-executions", json={"command": f"scale out {i}", "persona": "admin"}
            )
        if response.status_code != 202:
            raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
        return str(response.json()["executionId"])

    ids = await asyncio.gather(*(one(i) for i in range(count)))
    return set(ids), first


async def measure(
    processes: Processes,
    db: Database,
    api_pid: int,
    api_url: str,
    token: str,
    *,
    workers: int,
    executions: int,
    concurrency: int,
    warmup: int,
    label: str,
) -> float:
    """Executions per second with ``workers`` workers."""
    # INFO: a worker logs a line per execution it ran, which says how the work was shared.
    info = {"JARVIS_LOG_LEVEL": "INFO"}
    names = [f"{label}-worker{i}" for i in range(workers)]
    started = [(name, processes.spawn(name, *worker_args(concurrency), env=info)) for name in names]
    try:
        for name, child in started:
            await processes.wait_for_line(name, child, " ready: queue ")
        limits = httpx.Limits(max_connections=POST_CONNECTIONS)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=api_url, headers=headers, limits=limits, timeout=60
        ) as client:
            if warmup:
                ids, _ = await post_many(client, warmup)
                await all_ended(db, ids)
            pids = [child.pid for _, child in started]
            cpu_before = [cpu_seconds(pid) for pid in (*pids, api_pid)]
            busy_before, total_before = machine_ticks()
            backends_before = backends_of(BENCH_DB)
            ids, first = await post_many(client, executions)
            last = await all_ended(db, ids)
            busy_after, total_after = machine_ticks()
            backends = backends_of(BENCH_DB)
            ran_ms, waited_ms = await timings(db, ids)
            cpu = [
                cpu_seconds(pid) - b for pid, b in zip((*pids, api_pid), cpu_before, strict=True)
            ]
    finally:
        for _, child in started:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child in started:
            processes.stop(child)
    rate = executions / (last - first)
    busy = (busy_after - busy_before) / max(total_after - total_before, 1)
    database = sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends.items())

    # How the queue shared the work out (the workers log one line per execution they ran).
    shares = "/".join(str(processes.log_of(name).count("execution_ran")) for name, _ in started)

    def per_execution(seconds: float) -> str:
        return f"{seconds / executions * 1000:.0f} ms"

    print(
        f"  {workers} worker(s): {rate:.1f} executions/s; CPU per execution: workers "
        f"{per_execution(sum(cpu[:-1]))}, API {per_execution(cpu[-1])}, PostgreSQL "
        f"{per_execution(database)}; machine {busy:.0%} busy (everything running on it); "
        f"median run {ran_ms:.0f} ms, median wait in the queue {waited_ms:.0f} ms; "
        f"executions per worker (warm-up included) {shares}"
    )
    return rate


def worker_args(concurrency: int) -> list[str]:
    return ["worker", "--concurrency", str(concurrency)]


async def run(
    args: argparse.Namespace, processes: Processes, url: str, api_url: str, token: str
) -> None:
    api = processes.spawn("api", "serve", "--host", "127.0.0.1", "--port", api_url.rsplit(":")[-1])
    await wait_healthy(api_url, api)
    db = Database.from_url(url)
    try:
        await measure_all(args, processes, db, api.pid, api_url, token)
    finally:
        await db.dispose()


async def measure_all(
    args: argparse.Namespace,
    processes: Processes,
    db: Database,
    api_pid: int,
    api_url: str,
    token: str,
) -> None:
    rates: dict[int, list[float]] = {1: [], 2: []}
    order = [1, 2]
    for round_ in range(args.rounds):
        for workers in order if round_ % 2 == 0 else order[::-1]:
            rate = await measure(
                processes,
                db,
                api_pid,
                api_url,
                token,
                workers=workers,
                executions=args.executions,
                concurrency=args.concurrency,
                warmup=args.warmup,
                label=f"r{round_}-{workers}w",
            )
            rates[workers].append(rate)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"scale_out[postgresql]: 1 worker {one:.1f} executions/s, 2 workers {two:.1f} "
        f"executions/s, ratio {two / one:.2f} (target >= {TARGET_RATIO}; "
        f"{args.executions} executions, --concurrency {args.concurrency}, "
        f"{len(LAYER_ORDER)} layers x 1 echo agent of {args.delay_ms} ms, "
        f"{args.rounds} round(s), {os.cpu_count()} CPUs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=200, help="timed per worker count")
    parser.add_argument("--concurrency", type=int, default=4, help="jarvis worker --concurrency")
    parser.add_argument("--delay-ms", type=int, default=50, help="each echo agent's delayMs")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each count")
    parser.add_argument("--warmup", type=int, default=8, help="untimed executions first")
    args = parser.parse_args()

    try:
        asyncio.run(asyncio.wait_for(admin_sql("SELECT 1"), timeout=10))
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as exc:
        sys.exit(f"scale_out: needs PostgreSQL ({PG_ADMIN_URL}) and Redis ({REDIS_URL}): {exc}")
    drop = f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'
    asyncio.run(admin_sql(drop, f'CREATE DATABASE "{BENCH_DB}"'))
    url = make_url(PG_ADMIN_URL).set(database=BENCH_DB).render_as_string(hide_password=False)
    queue = f"jarvis:bench:scale_out:{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JARVIS_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "JARVIS_DATABASE_URL": url,
        "JARVIS_REDIS_URL": REDIS_URL,
        "JARVIS_TASKIQ_QUEUE": queue,
        "JARVIS_SECRET_KEY": "benchmark-" + "k" * 40,
        "JARVIS_ADMIN_EMAIL": ADMIN_EMAIL,
        "JARVIS_LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory() as tmp:
        processes = Processes(env, Path(tmp))
        try:
            processes.cli("db", "upgrade")
            token = asyncio.run(prepare(url, args.delay_ms))
            api_url = f"http://127.0.0.1:{free_port()}"
            asyncio.run(run(args, processes, url, api_url, token))
        except BaseException:
            for name, _ in processes.children:
                print(f"----- {name}\n{processes.log_of(name)[-3000:]}")
            raise
        finally:
            processes.stop_all()
            with contextlib.suppress(Exception):
                redis.Redis.from_url(REDIS_URL).delete(queue)
            asyncio.run(admin_sql(drop))


if __name__ == "__main__":
    main()
