"""Engine overhead: JARVIS against LangGraph running the same shape on the same database.

The shape: 6 sequential stages of 3 parallel no-op nodes, every step persisted.

- JARVIS: 18 agents of kind ``echo`` with config ``{}`` (3 in each of the six layers,
  persona ``admin``, governance ``approved``). One execution is ``queue_execution`` (its
  own transaction, as ``POST /api/agent-executions`` does it) followed by ``Engine.run``,
  which records every step and event.
- LangGraph (the baseline): a ``StateGraph`` of 6 stages x 3 async no-op nodes, each node of
  stage k wired to each node of stage k+1, a list reducer merging the parallel writes,
  compiled with its own checkpointer on the same backend: ``AsyncSqliteSaver`` on a SQLite
  file next to JARVIS's, ``AsyncPostgresSaver`` (psycopg 3) on a database of the same
  PostgreSQL server. Every invocation uses a new ``thread_id``, so it writes its
  checkpoints as a fresh run does; durability is LangGraph's default (``async``: each
  superstep's checkpoint is written while the next one runs, all of them before the
  invocation returns) unless ``--durability`` says otherwise. LangGraph's SQLite
  connection gets JARVIS's ``PRAGMA synchronous=NORMAL`` (WAL either way), so both sides
  pay the same for a commit; ``--synchronous FULL`` keeps SQLite's default (an fsync a
  commit) instead.

Both are warmed up, then run alternately (the order swapped every round, so machine noise
hits both alike). Prints median and p90 milliseconds per execution, the ratio
JARVIS / LangGraph (target <= 1.0), and JARVIS's commits and statements per execution.

    python benchmarks/engine_overhead.py [--backend sqlite|postgresql|both]
        [--executions 200] [--warmup 20] [--durability async|sync|exit]
        [--synchronous NORMAL|FULL] [--profile [--profile-executions 100]]

PostgreSQL: ``JARVIS_BENCH_POSTGRES_URL`` (else ``JARVIS_TEST_POSTGRES_URL``, else the local
default) is an admin URL; the benchmark creates and drops its two databases there.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import operator
import os
import pstats
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.core.identity import Actor
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import MemoryBus
from jarvis.orchestration import service as executions
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.models import ExecutionStep
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.personas.service import ADMIN_PERSONA, ensure_persona
from jarvis.wiring import config_service

PG_ADMIN_URL = os.environ.get(
    "JARVIS_BENCH_POSTGRES_URL",
    os.environ.get(
        "JARVIS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    ),
)
PG_JARVIS_DB = "jarvis_bench_engine"
PG_LANGGRAPH_DB = "jarvis_bench_langgraph"
STAGES = 6
WIDTH = 3
TARGET_RATIO = 1.0
ACTOR = Actor.system("benchmark")

Durability = Literal["async", "sync", "exit"]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- JARVIS ------------------------------------------------------------------------------


@dataclass
class Counters:
    """Commits and statements on JARVIS's engine, counted by SQLAlchemy events."""

    commits: int = 0
    statements: int = 0


def count_database_work(db: Database) -> Counters:
    """Count every commit and statement (SQLite's BEGIN included) on ``db``'s engine."""
    counters = Counters()

    def on_commit(_connection: Any) -> None:
        counters.commits += 1

    def on_statement(*_args: Any) -> None:
        counters.statements += 1

    event.listen(db.engine.sync_engine, "commit", on_commit)
    event.listen(db.engine.sync_engine, "before_cursor_execute", on_statement)
    return counters


@dataclass
class Jarvis:
    db: Database
    engine: Engine
    counters: Counters
    # Milliseconds of each part of every execution: create_execution, then Engine.run.
    created_ms: list[float] = field(default_factory=list)
    run_ms: list[float] = field(default_factory=list)

    async def execute(self) -> str:
        """One execution, as the API starts one: create it, then run it to the end."""
        started = time.perf_counter()
        execution = await executions.queue_execution(
            self.db,
            ExecutionCreate(command="benchmark", persona="admin"),
            actor=ACTOR,
            principal=None,
            bus=self.engine.bus,
        )
        created = time.perf_counter()
        status = await self.engine.run(execution.execution_id)
        self.created_ms.append((created - started) * 1000)
        self.run_ms.append((time.perf_counter() - created) * 1000)
        if status != "completed":
            raise RuntimeError(f"execution {execution.execution_id} ended {status}")
        return execution.execution_id

    async def check(self, execution_id: str) -> None:
        """The execution recorded one completed step per agent."""
        async with unit_of_work(self.db, write=False) as session:
            completed = await session.scalar(
                select(func.count())
                .select_from(ExecutionStep)
                .where(
                    ExecutionStep.execution_id == execution_id,
                    ExecutionStep.status == "completed",
                )
            )
        if completed != STAGES * WIDTH:
            raise RuntimeError(f"{completed} completed steps, expected {STAGES * WIDTH}")


@asynccontextmanager
async def jarvis(url: str) -> AsyncIterator[Jarvis]:
    """A migrated database with the 18 echo agents, and a started engine on it."""
    await upgrade(url)
    db = Database.from_url(url)
    bus = MemoryBus()
    config = config_service(db, bus=bus, poll_seconds=0)
    try:
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
            await ensure_persona(session, ADMIN_PERSONA, actor=ACTOR, config=config)
            for layer in LAYER_ORDER:
                for n in range(1, WIDTH + 1):
                    data = AgentCreate(
                        name=f"Bench {layer.value} {n}",
                        layer=layer,
                        persona="admin",
                        kind="echo",
                        config={},
                        governance_status="approved",
                    )
                    await create_agent(session, data, actor=ACTOR)
        await config.start()
        engine = Engine(db=db, config=config, bus=bus)
        await engine.start()
        try:
            yield Jarvis(db, engine, count_database_work(db))
        finally:
            await engine.close()
            await config.close()
    finally:
        await db.dispose()


# --- LangGraph ---------------------------------------------------------------------------


class StageState(TypedDict):
    # The reducer merges what the parallel nodes of a stage write in the same superstep.
    done: Annotated[list[str], operator.add]


def stage_node(name: str) -> Callable[[StageState], Awaitable[dict[str, list[str]]]]:
    async def node(state: StageState) -> dict[str, list[str]]:
        return {"done": [name]}

    return node


def build_graph() -> StateGraph[StageState]:
    """6 stages of 3 parallel no-op nodes; every node of stage k feeds every node of k+1."""
    graph = StateGraph(StageState)
    stages = [[f"stage{s}_node{n}" for n in range(WIDTH)] for s in range(STAGES)]
    for stage in stages:
        for name in stage:
            graph.add_node(name, stage_node(name))
    for name in stages[0]:
        graph.add_edge(START, name)
    for earlier, later in zip(stages, stages[1:], strict=False):
        for target in later:
            for source in earlier:
                graph.add_edge(source, target)
    for name in stages[-1]:
        graph.add_edge(name, END)
    return graph


@dataclass
class LangGraph:
    checkpointer: BaseCheckpointSaver[Any]
    durability: Durability
    app: Any = field(init=False)

    def __post_init__(self) -> None:
        self.app = build_graph().compile(checkpointer=self.checkpointer)

    async def execute(self) -> str:
        """One invocation on a new thread, so it writes its checkpoints from scratch."""
        thread_id = uuid.uuid4().hex
        out = await self.app.ainvoke(
            {"done": []},
            {"configurable": {"thread_id": thread_id}},
            durability=self.durability,
        )
        if len(out["done"]) != STAGES * WIDTH:
            raise RuntimeError(f"LangGraph ran {len(out['done'])} nodes, not {STAGES * WIDTH}")
        return thread_id

    async def check(self, thread_id: str) -> None:
        """The invocation left its checkpoints: one per superstep, the input's included."""
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        checkpoints = [c async for c in self.checkpointer.alist(config)]
        if len(checkpoints) < STAGES + 1:
            raise RuntimeError(f"{len(checkpoints)} checkpoints stored for one invocation")


@asynccontextmanager
async def langgraph_sqlite(
    path: str, durability: Durability, synchronous: str
) -> AsyncIterator[LangGraph]:
    async with AsyncSqliteSaver.from_conn_string(path) as checkpointer:
        await checkpointer.setup()  # also turns WAL on
        # JARVIS runs SQLite in WAL with synchronous=NORMAL (no fsync per commit); the
        # same setting here compares the engines rather than the two fsync policies.
        await checkpointer.conn.execute(f"PRAGMA synchronous={synchronous}")
        yield LangGraph(checkpointer, durability)


@asynccontextmanager
async def langgraph_postgres(conninfo: str, durability: Durability) -> AsyncIterator[LangGraph]:
    async with AsyncPostgresSaver.from_conn_string(conninfo) as checkpointer:
        await checkpointer.setup()
        yield LangGraph(checkpointer, durability)


# --- the run -----------------------------------------------------------------------------


async def measure(
    label: str,
    jarvis_cm: AbstractAsyncContextManager[Jarvis],
    langgraph_cm: AbstractAsyncContextManager[LangGraph],
    saver: str,
    args: argparse.Namespace,
) -> None:
    async with AsyncExitStack() as stack:
        ours = await stack.enter_async_context(jarvis_cm)
        theirs = await stack.enter_async_context(langgraph_cm)
        for _ in range(args.warmup):
            await ours.check(await ours.execute())
            await theirs.check(await theirs.execute())
        ours.created_ms.clear()
        ours.run_ms.clear()
        timings: dict[str, list[float]] = {"JARVIS": [], "LangGraph": []}
        # CPU time of the whole process (the aiosqlite threads included) per execution.
        cpu: dict[str, list[float]] = {"JARVIS": [], "LangGraph": []}
        runners = {"JARVIS": ours.execute, "LangGraph": theirs.execute}
        commits = statements = 0
        for n in range(args.executions):
            order = ["JARVIS", "LangGraph"] if n % 2 == 0 else ["LangGraph", "JARVIS"]
            for name in order:
                before = (ours.counters.commits, ours.counters.statements)
                started, cpu_started = time.perf_counter(), time.process_time()
                await runners[name]()
                timings[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - cpu_started) * 1000)
                if name == "JARVIS":
                    commits += ours.counters.commits - before[0]
                    statements += ours.counters.statements - before[1]
        for name, values in timings.items():
            print(
                f"  {name:<10} median {statistics.median(values):7.2f} ms, "
                f"p90 {percentile(values, 0.9):7.2f} ms, min {min(values):7.2f} ms; "
                f"process CPU median {statistics.median(cpu[name]):7.2f} ms"
            )
        print(
            f"  JARVIS parts: create_execution median {statistics.median(ours.created_ms):.2f} ms"
            f", Engine.run median {statistics.median(ours.run_ms):.2f} ms"
        )
        print(
            f"  JARVIS database work per execution: {commits / args.executions:.1f} commits, "
            f"{statements / args.executions:.1f} statements (BEGIN included on SQLite)"
        )
        ours_median = statistics.median(timings["JARVIS"])
        theirs_median = statistics.median(timings["LangGraph"])
        print(
            f"engine_overhead[{label}]: median {ours_median:.2f} ms, p90 "
            f"{percentile(timings['JARVIS'], 0.9):.2f} ms per execution "
            f"({ours_median / theirs_median:.2f} x LangGraph {version('langgraph')} with "
            f"{saver}, durability {args.durability} at median {theirs_median:.2f} ms, p90 "
            f"{percentile(timings['LangGraph'], 0.9):.2f} ms; {STAGES} x {WIDTH} steps, "
            f"{args.executions} executions each; target <= {TARGET_RATIO:g})"
        )
        if args.profile:
            await profile(ours, args.profile_executions)


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/jarvis/" in filename:
        return "jarvis." + filename.rsplit("/jarvis/", 1)[1].removesuffix(".py").replace("/", ".")
    return "stdlib" if filename.startswith("/") else "built-in"


async def profile(ours: Jarvis, count: int) -> None:
    """cProfile ``count`` JARVIS executions: self time by package, then the top functions.

    Only the event loop's thread is profiled; time waiting for the database shows as
    ``select.epoll.poll`` (and the aiosqlite hand-offs as ``SimpleQueue.put_nowait``).
    """
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        await ours.execute()
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = {}
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        package = _package(filename)
        by_package[package] = by_package.get(package, 0.0) + row[2]
    print(f"\ncProfile of {count} JARVIS executions, self time per execution by package:")
    for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:15]:
        print(f"  {seconds / count * 1000:8.2f} ms  {package}")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats("tottime").print_stats(30)
    print(f"\ncProfile of {count} JARVIS executions, by self time:\n{out.getvalue()}")


async def admin(*statements: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def postgres_reachable() -> str | None:
    """None when the admin URL answers, else why not."""
    try:
        await asyncio.wait_for(admin("SELECT 1"), timeout=10)
    except Exception as exc:  # any failure means: skip PostgreSQL, saying why
        return f"{type(exc).__name__}: {exc}"
    return None


def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(
            measure(
                "sqlite",
                jarvis(f"sqlite+aiosqlite:///{tmp}/jarvis.db"),
                langgraph_sqlite(f"{tmp}/langgraph.db", args.durability, args.synchronous),
                f"AsyncSqliteSaver, synchronous={args.synchronous}",
                args,
            )
        )


def run_postgresql(args: argparse.Namespace) -> None:
    problem = asyncio.run(postgres_reachable())
    if problem is not None:
        print(f"engine_overhead[postgresql]: skipped, {PG_ADMIN_URL} unreachable ({problem})")
        return
    databases = (PG_JARVIS_DB, PG_LANGGRAPH_DB)
    drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in databases]
    asyncio.run(admin(*drops, *(f'CREATE DATABASE "{name}"' for name in databases)))
    try:
        admin_url = make_url(PG_ADMIN_URL)
        ours = admin_url.set(database=PG_JARVIS_DB).render_as_string(hide_password=False)
        theirs = admin_url.set(drivername="postgresql", database=PG_LANGGRAPH_DB)
        asyncio.run(
            measure(
                "postgresql",
                jarvis(ours),
                langgraph_postgres(theirs.render_as_string(hide_password=False), args.durability),
                "AsyncPostgresSaver",
                args,
            )
        )
    finally:
        asyncio.run(admin(*drops))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--executions", type=int, default=200, help="timed runs of each")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs of each first")
    parser.add_argument(
        "--durability",
        choices=["async", "sync", "exit"],
        default="async",
        help="LangGraph's checkpoint durability (default: its own default, async)",
    )
    parser.add_argument(
        "--synchronous",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="PRAGMA synchronous of LangGraph's SQLite connection (default NORMAL, as JARVIS; "
        "FULL is SQLite's default, an fsync per commit)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="then cProfile JARVIS executions and print"
    )
    parser.add_argument("--profile-executions", type=int, default=100)
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        run_sqlite(args)
    if args.backend in ("postgresql", "both"):
        run_postgresql(args)


if __name__ == "__main__":
    main()
