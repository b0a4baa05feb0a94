"""Uncached configuration resolution on PostgreSQL with 100,000 stored values.

Loads 1,000 keys and 100,000 values into a throwaway PostgreSQL database (100 values a
key, spread over global, persona, agent and workflow scopes and several versions; some
expired, scheduled, bounded or deactivated), then resolves random keys for random scopes
with the cache out of the way, each call a fresh reader unit of work as in the service:

- `resolve_query`: the resolution statement alone (`jarvis.config.resolver`);
- `config.get`: a `config_service(cache_size=0)`, so every read goes to the database.

The baseline, measured in the same run and interleaved with them: `SELECT 1` in a reader
unit of work (the same session and pool path with a trivial statement). A raw `SELECT 1`
on one held connection is printed for scale. Prints median and p99 in milliseconds, the
ratios, and `EXPLAIN (ANALYZE, BUFFERS)` of one resolution, which should walk
`idx_config_values_resolve`. Target: median of `config.get` uncached <= 1 ms.

    python benchmarks/config_uncached.py [--samples 3000] [--quick] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jarvis.config import resolver
from jarvis.config.models import ConfigRegistry, ConfigValue
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.wiring import config_service

PG_ADMIN_URL = os.environ.get(
    "JARVIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PG_BENCH_DB = "jarvis_bench_config"
KEYS = 1_000
PERSONAS = ("admin", "underwriter", "claims")
AGENTS = 10
WORKFLOWS = 15
INDEX = "idx_config_values_resolve"
TARGET_MS = 1.0


def key_name(i: int) -> str:
    return f"bench.uncached.k{i:04d}"


def value_scopes() -> list[tuple[Scope, int]]:
    """The 100 (scope, versions) slots of one key: 10 + 15 + 30 + 45 values."""
    slots: list[tuple[Scope, int]] = [(Scope(), 10)]
    slots += [(Scope(persona=p), 5) for p in PERSONAS]
    slots += [
        (Scope(persona="underwriter" if a % 2 == 0 else None, agent_id=a), 3)
        for a in range(1, AGENTS + 1)
    ]
    slots += [
        (
            Scope(
                persona=PERSONAS[w % 3] if w % 3 else None,
                agent_id=(w % AGENTS) + 1 if w % 2 else None,
                workflow_id=w,
            ),
            3,
        )
        for w in range(1, WORKFLOWS + 1)
    ]
    if sum(versions for _, versions in slots) != 100:
        raise RuntimeError("the slots must hold 100 values a key")
    return slots


def value_rows(key: str, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for scope, versions in value_scopes():
        for version in range(1, versions + 1):
            start = now - timedelta(days=rng.randint(30, 400))
            end = None
            kind = rng.random()
            if kind < 0.10:  # expired
                end = now - timedelta(days=rng.randint(1, 29))
            elif kind < 0.20:  # scheduled
                start = now + timedelta(days=rng.randint(1, 60))
            elif kind < 0.30:  # bounded, live now
                end = now + timedelta(days=rng.randint(1, 60))
            inactive = rng.random() < 0.05
            rows.append(
                {
                    "config_key": key,
                    "value": rng.randint(0, 1000),
                    "scope_identifiers": scope.as_json(),
                    "persona": scope.persona,
                    "agent_id": scope.agent_id,
                    "workflow_id": scope.workflow_id,
                    "scope_key": scope.key,
                    "scope_rank": scope.rank,
                    "effective_from": start,
                    "effective_to": end,
                    "version": version,
                    "is_active": not inactive,
                    "deactivated_at": now - timedelta(days=1) if inactive else None,
                    "created_by": "benchmark",
                    "created_at": now,
                }
            )
    return rows


async def load(db: Database, seed: int) -> None:
    async with unit_of_work(db) as session:
        present = await session.scalar(
            select(func.count())
            .select_from(ConfigValue)
            .where(ConfigValue.config_key.like("bench.uncached.%"))
        )
    if present == KEYS * 100:
        print(f"reusing the {present} benchmark values already loaded")
        return
    if present:
        raise SystemExit(f"{present} benchmark values present, expected 0 or {KEYS * 100}")
    rng = random.Random(seed)
    now = utcnow()
    started = time.perf_counter()
    async with unit_of_work(db) as session:
        await session.execute(
            insert(ConfigRegistry),
            [
                {
                    "key": key_name(i),
                    "description": "Benchmark key.",
                    "value_schema": {"type": "integer"},
                    "default_value": 0,
                    "allowed_scopes": ["global", "persona", "agent", "workflow"],
                    "is_secret": False,
                    "requires_approval": False,
                    "revision": 1,
                    "updated_by": "benchmark",
                }
                for i in range(KEYS)
            ],
        )
    for first in range(0, KEYS, 50):  # 5,000 rows a transaction
        rows = [r for i in range(first, first + 50) for r in value_rows(key_name(i), rng, now)]
        async with unit_of_work(db) as session:
            await session.execute(insert(ConfigValue), rows)
    async with db.engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("ANALYZE config_values"))
        await conn.commit()
    print(f"loaded {KEYS} keys, {KEYS * 100} values in {time.perf_counter() - started:.1f} s")


def random_read(rng: random.Random) -> tuple[str, Scope]:
    persona = rng.choice((None, *PERSONAS, "nobody"))
    agent = rng.choice((None, None, *range(1, AGENTS + 3)))
    workflow = rng.choice((None, None, None, *range(1, WORKFLOWS + 5)))
    return key_name(rng.randrange(KEYS)), Scope(persona, agent, workflow)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def explain(db: Database, key: str, scope: Scope) -> str:
    statement, params = resolver.resolve_statement(key, scope, utcnow())
    sql = str(
        statement.params(**params).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    async with db.engine.connect() as conn:
        rows = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in rows)


async def run(url: str, samples: int, seed: int) -> None:
    await upgrade(url)
    db = Database.from_url(url)
    try:
        await load(db, seed)
        config = config_service(db, cache_size=0, poll_seconds=0)
        rng = random.Random(seed + 1)
        reads = [random_read(rng) for _ in range(samples)]

        async def select_one(key: str, scope: Scope) -> Any:
            async with unit_of_work(db, write=False) as session:
                return await session.scalar(text("SELECT 1"))

        async def resolve(key: str, scope: Scope) -> Any:
            async with unit_of_work(db, write=False) as session:
                return await resolver.resolve_query(session, key, scope, utcnow(), 0)

        async def get(key: str, scope: Scope) -> Any:
            return await config.get(key, scope)

        async with db.engine.connect() as raw:
            await raw.execute(text("COMMIT"))

            async def raw_select_one(key: str, scope: Scope) -> Any:
                return (await raw.exec_driver_sql("SELECT 1")).scalar()

            variants: dict[str, Callable[[str, Scope], Awaitable[Any]]] = {
                "SELECT 1, held connection": raw_select_one,
                "SELECT 1, unit of work": select_one,
                "resolve_query": resolve,
                "config.get uncached": get,
            }
            for i in range(KEYS):  # registry entries into config's key cache; warm the pool
                await config.key_info(key_name(i))
            for key, scope in reads[: max(200, samples // 10)]:
                for call in variants.values():
                    await call(key, scope)
            timings: dict[str, list[float]] = {name: [] for name in variants}
            for n, (key, scope) in enumerate(reads):
                names = list(variants)
                names = names[n % len(names) :] + names[: n % len(names)]  # rotate the order
                for name in names:
                    started = time.perf_counter()
                    await variants[name](key, scope)
                    timings[name].append((time.perf_counter() - started) * 1000)
            await raw.rollback()

        sources: dict[str, int] = {}
        for key, scope in reads[:500]:
            source = (await config.resolve(key, scope)).source
            sources[source] = sources.get(source, 0) + 1
        counts = ", ".join(f"{source} {n}" for source, n in sorted(sources.items()))
        print(f"winning sources of 500 reads: {counts}")
        for name, values in timings.items():
            print(
                f"  {name:<28} median {statistics.median(values):6.3f} ms, "
                f"p99 {percentile(values, 0.99):6.3f} ms"
            )
        base = statistics.median(timings["SELECT 1, unit of work"])
        raw_base = statistics.median(timings["SELECT 1, held connection"])
        for name in ("resolve_query", "config.get uncached"):
            median = statistics.median(timings[name])
            print(
                f"config_uncached[{name}]: median {median:.3f} ms, p99 "
                f"{percentile(timings[name], 0.99):.3f} ms ({median / base:.2f} x SELECT 1 in a "
                f"unit of work at {base:.3f} ms; {median / raw_base:.2f} x a raw SELECT 1 at "
                f"{raw_base:.3f} ms; target median <= {TARGET_MS:g} ms)"
            )
        # A specific read (persona and agent), where several scopes compete.
        key, scope = next(((k, s) for k, s in reads if s.persona and s.agent_id), reads[0])
        plan = await explain(db, key, scope)
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of resolving {key} at {scope.describe()}:\n{plan}")
        print(f"\nuses {INDEX}: {'yes' if INDEX in plan else 'NO'}")
    finally:
        await db.dispose()


async def admin(*statements: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="reads per variant")
    parser.add_argument("--quick", action="store_true", help="500 reads per variant")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database to migrate and fill (reused when already filled); "
        f"default: a throwaway {PG_BENCH_DB} on {PG_ADMIN_URL}, dropped afterwards",
    )
    args = parser.parse_args()
    samples = 500 if args.quick else args.samples
    if args.database_url:
        asyncio.run(run(args.database_url, samples, args.seed))
        return
    drop = f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)'
    asyncio.run(admin(drop, f'CREATE DATABASE "{PG_BENCH_DB}"'))
    try:
        url = make_url(PG_ADMIN_URL).set(database=PG_BENCH_DB)
        asyncio.run(run(url.render_as_string(hide_password=False), samples, args.seed))
    finally:
        asyncio.run(admin(drop))


if __name__ == "__main__":
    main()
