"""How fast a configuration change on one instance is served by another (Redis bus).

Two separate OS processes share one database and one Redis:

- the writer (instance A) sets an integer key to 1, 2, ... N, one change every
  ``--interval-ms``, each in its own unit of work, and notes when each commit returned;
- the reader (instance B, ``poll_seconds=0``, so only the bus can tell it) calls its own
  cached ``config.get`` in a tight loop (yielding to the event loop between calls) and
  notes when it first serves each new value.

Latency of change i = first served on B (i or a later value) - committed on A
(``time.monotonic``, one clock for every process on the machine). The baseline, measured
in the same run by the same pair of processes: a raw Redis publish on A -> receive on B.
Prints p50/p99 in ms and the ratios.
Target: p99 <= 100 ms.

    python benchmarks/config_propagation.py [--changes 200] [--interval-ms 20] [--quick]
        [--backends sqlite,postgresql] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

PG_ADMIN_URL = os.environ.get(
    "JARVIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PG_BENCH_DB = "jarvis_bench_propagation"
REDIS_URL = os.environ.get("JARVIS_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = "bench.propagation.value"
TARGET_P99_MS = 100.0


# --- the two instances ------------------------------------------------------------------


async def reader(args: argparse.Namespace) -> dict[int, float]:
    """Until value N is served (or the deadline passes): when each value was first seen."""
    deadline = time.monotonic() + args.deadline
    seen: dict[int, float] = {}
    if args.phase == "raw":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(args.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(args.channel)
        print("READY", flush=True)
        while args.changes not in seen and time.monotonic() < deadline:
            item = await pubsub.get_message(timeout=1.0)
            if item is not None and item["type"] == "message":
                seen.setdefault(int(item["data"]), time.monotonic())
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        return seen

    from jarvis.config.service import ConfigService
    from jarvis.db.engine import Database
    from jarvis.kit.bus import RedisBus

    db = Database.from_url(args.database_url)
    bus = RedisBus(args.redis_url)
    config = ConfigService(db, bus=bus, poll_seconds=0)
    await config.start()
    try:
        last = await config.get(KEY)
        print("READY", flush=True)
        while args.changes not in seen and time.monotonic() < deadline:
            value = await config.get(KEY)
            if value != last:
                seen.setdefault(value, time.monotonic())
                last = value
            await asyncio.sleep(0)  # let the bus listener run, as any server would
        return seen
    finally:
        await config.close()
        await bus.close()
        await db.dispose()


async def writer(args: argparse.Namespace) -> dict[int, float]:
    """Make the N changes; when each one was committed (raw: just before publishing)."""
    stamps: dict[int, float] = {}
    interval = args.interval_ms / 1000
    if args.phase == "raw":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(args.redis_url)
        for i in range(1, args.changes + 1):
            stamps[i] = time.monotonic()
            await client.publish(args.channel, str(i))
            await asyncio.sleep(interval)
        await client.aclose()
        return stamps

    from jarvis.config.service import ConfigService
    from jarvis.core.identity import Actor
    from jarvis.db.engine import Database
    from jarvis.db.session import after_commit, unit_of_work
    from jarvis.kit.bus import RedisBus

    db = Database.from_url(args.database_url)
    bus = RedisBus(args.redis_url)
    config = ConfigService(db, bus=bus, poll_seconds=0)
    await config.start()
    actor = Actor.system("benchmark")
    try:
        for i in range(1, args.changes + 1):
            async with unit_of_work(db) as session:
                # Registered first, so it runs right after the commit, before the publish.
                after_commit(session, lambda i=i: stamps.__setitem__(i, time.monotonic()))
                await config.set_value(session, KEY, i, actor=actor)
            await asyncio.sleep(interval)
        return stamps
    finally:
        await config.close()
        await bus.close()
        await db.dispose()


def child(args: argparse.Namespace) -> None:
    role = reader if args.role == "reader" else writer
    result = asyncio.run(role(args))
    print(json.dumps({str(k): v for k, v in result.items()}), flush=True)


# --- the orchestration ------------------------------------------------------------------


async def prepare(url: str) -> None:
    from jarvis.config.service import ConfigService
    from jarvis.core.identity import Actor
    from jarvis.db.engine import Database
    from jarvis.db.migrate import upgrade
    from jarvis.db.session import unit_of_work

    await upgrade(url)
    db = Database.from_url(url)
    try:
        async with unit_of_work(db) as session:
            await ConfigService(db, poll_seconds=0).register_key(
                session,
                key=KEY,
                description="Benchmark key.",
                schema={"type": "integer"},
                default=0,
                scopes=["global"],
                secret=False,
                requires_approval=False,
                actor=Actor.system("benchmark"),
            )
    finally:
        await db.dispose()


def run_phase(phase: str, url: str, args: argparse.Namespace) -> list[float]:
    """Latencies in ms of the changes the reader saw, one phase, two fresh processes."""
    common = [
        "--phase",
        phase,
        "--database-url",
        url,
        "--redis-url",
        args.redis_url,
        "--channel",
        f"bench.propagation.{uuid.uuid4().hex}",
        "--changes",
        str(args.changes),
        "--interval-ms",
        str(args.interval_ms),
    ]
    deadline = 30 + args.changes * (args.interval_ms / 1000 + 0.2)
    me = [sys.executable, __file__]
    reading = subprocess.Popen(
        [*me, "--role", "reader", "--deadline", str(deadline), *common],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reading.stdout is not None  # noqa: S101 - for the type checker
        if reading.stdout.readline().strip() != "READY":
            raise RuntimeError("the reader did not start")
        written = subprocess.run(
            [*me, "--role", "writer", *common], capture_output=True, text=True, check=True
        ).stdout
        out, _ = reading.communicate(timeout=deadline + 10)
    finally:
        if reading.poll() is None:
            reading.kill()
    stamps = {int(i): t for i, t in json.loads(written.strip().splitlines()[-1]).items()}
    seen = {int(v): t for v, t in json.loads(out.strip().splitlines()[-1]).items()}
    # Change i has propagated once B serves i or a later value (a later change may land
    # before B re-reads after i's message); the served values only go up.
    latencies, skipped, lost = [], 0, 0
    for i, stamp in sorted(stamps.items()):
        served = [v for v in seen if v >= i]
        if not served:
            lost += 1
            continue
        skipped += i not in seen
        latencies.append((seen[min(served)] - stamp) * 1000)
    if skipped or lost:
        print(
            f"  {phase}: {skipped} of {len(stamps)} values replaced before B served them, "
            f"{lost} never followed by any served value"
        )
    return sorted(latencies)


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(label: str, raw: list[float], config: list[float]) -> None:
    for name, values in (("raw Redis publish->receive", raw), ("config change->served", config)):
        print(
            f"  {name:<28} p50 {percentile(values, 0.5):7.2f} ms, p99 "
            f"{percentile(values, 0.99):7.2f} ms, max {values[-1]:7.2f} ms ({len(values)} seen)"
        )
    p50, p99 = percentile(config, 0.5), percentile(config, 0.99)
    raw50, raw99 = percentile(raw, 0.5), percentile(raw, 0.99)
    print(
        f"config_propagation[{label}]: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({p50 / raw50:.1f} x "
        f"and {p99 / raw99:.1f} x a raw Redis publish->receive at p50 {raw50:.2f} ms, p99 "
        f"{raw99:.2f} ms; target p99 <= {TARGET_P99_MS:g} ms)"
    )


async def admin(*statements: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    asyncio.run(prepare(url))
    raw = run_phase("raw", url, args)
    config = run_phase("config", url, args)
    if not raw or not config:
        raise RuntimeError(f"nothing was served (raw {len(raw)}, config {len(config)})")
    report(label, raw, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=20)
    parser.add_argument("--quick", action="store_true", help="50 changes")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument(
        "--database-url", help="use this (migrated or empty) database instead of --backends"
    )
    # Internal: how the benchmark starts its two instances.
    parser.add_argument("--role", choices=["reader", "writer"], help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["raw", "config"], help=argparse.SUPPRESS)
    parser.add_argument("--channel", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=60, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        child(args)
        return
    if args.quick:
        args.changes = 50
    if args.database_url:
        measure("given database", args.database_url, args)
        return
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            measure("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args)
    if "postgresql" in backends:
        drop = f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)'
        asyncio.run(admin(drop, f'CREATE DATABASE "{PG_BENCH_DB}"'))
        try:
            url = make_url(PG_ADMIN_URL).set(database=PG_BENCH_DB)
            measure("postgresql", url.render_as_string(hide_password=False), args)
        finally:
            asyncio.run(admin(drop))


if __name__ == "__main__":
    main()
