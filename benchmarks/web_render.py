"""Server render time of the dashboard, the agent directory and the executions list, and the
CSS + JS each of those pages loads.

A temporary SQLite database holds the demo (`jarvis seed demo`: personas, agents, users, the
first admin) plus 1,000 more agents and 10,000 executions with their steps and commands.
The executions are copies of real ones: the demo's commands are first run through the
engine, then their rows are cloned in bulk with new ids, spread over the last 14 days (a
third in the last 24 hours), with mixed statuses (mostly completed, some failed, cancelled,
rejected, awaiting approval, a few running) and the three demo personas.

In process (httpx.ASGITransport, one app, signed in with session cookies), `/`, `/agents`
and `/executions` as the admin and `/` as the demo underwriter (her persona's dashboard)
are requested in interleaved rounds; the figure is each page's median. Baselines in the
same run: the JSON API's list of the same data (`/api/agents`, `/api/agent-executions`,
25 a page) and `GET /api/health` (for the dashboards); the ratio is page / baseline.
The directory reuses the API's 2-second page cache, so most of its requests are hits; a
second app with `agent_list_cache_seconds=0` measures it (and its API baseline) with
every request a miss. Target (issue 7): median at most 50 ms per page.

CSS + JS per page: every `<link rel=stylesheet>` and `<script src>` of the page, plus the
modules those scripts import (static `import ... from`, `export ... from` and `import()`),
fetched and summed as served (uncompressed). Target: at most 100 KB per page.

`--queries` prints the SQL statements of one render of each page with their time (for a
page that misses the target: which query is slow).

    python benchmarks/web_render.py [--rounds 40] [--agents 1000] [--executions 10000]
                                    [--queries]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from jarvis.agents.models import Agent
from jarvis.auth.bootstrap import ensure_admin
from jarvis.auth.models import User
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.core.layers import LAYER_ORDER
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.demo.data import USERS
from jarvis.demo.service import seed_demo
from jarvis.kit.clock import utcnow
from jarvis.main import create_app
from jarvis.orchestration.models import AgentExecution, Command, ExecutionStep
from jarvis.settings import Settings
from jarvis.wiring import config_service

SECRET_KEY = "benchmark-" + "k" * 40
ADMIN_EMAIL = "admin@jarvis.local"
ADMIN_PASSWORD = "Render-bench-7f3k-pass"  # noqa: S105 - a throwaway database
TARGET_MS = 50.0
TARGET_ASSET_BYTES = 100 * 1024
HTML = {"Accept": "text/html,application/xhtml+xml"}
PAGE_SIZE = 25  # the JSON baselines' page size; the pages use their own default
# The demo's commands (run for real, then cloned) and who runs them.
TEMPLATE_COMMANDS = (
    ("Review the new submission from Acme Logistics", "underwriter"),
    ("Laptop won't connect to VPN, urgent", "it_support"),
    ("Which agents are waiting for approval?", "admin"),
    ("Outlook keeps crashing when I open attachments", "it_support"),
)
# Status shares of the cloned executions (the rest completed).
STATUS_SHARES = (
    ("failed", 0.08),
    ("cancelled", 0.02),
    ("rejected", 0.02),
    ("awaiting_approval", 0.02),
    ("running", 0.005),
)
BUSINESS_FUNCTIONS = ("underwriting", "claims", "it_support", "compliance", "intake")
PERSONAS = ("admin", "underwriter", "it_support")
BATCH = 2000


# --- data -------------------------------------------------------------------------------


async def prepare_database(url: str, agents: int) -> dict[str, str]:
    """Migrate, seed the demo and the admin, and add ``agents`` agents in bulk; return the
    admin's and the demo underwriter's e-mail and password."""
    await upgrade(url)
    db = Database.from_url(url)
    config = config_service(db, poll_seconds=0)
    try:
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
        async with unit_of_work(db) as session:
            demo = await seed_demo(session, config=config)
            await ensure_admin(
                session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD, generate=False, config=config
            )
        rng = random.Random(7)
        now = utcnow()
        rows = [
            {
                "name": f"Benchmark {LAYER_ORDER[i % 6].value} Agent {i:04d}",
                "layer": LAYER_ORDER[i % 6].value,
                "persona": PERSONAS[i % 3],
                "specialization": "Load test",
                "description": "One of the benchmark's thousand agents.",
                "kind": "echo",
                "config": {"threshold": 0.8, "labels": ["a", "b", "c"]},
                # Disabled: they fill the directory without joining the template runs.
                "enabled": False,
                "success_rate": round(rng.uniform(80, 100), 2),
                "avg_response_time": rng.randint(50, 2000),
                "maturity_level": rng.randint(1, 5),
                "governance_status": rng.choice(("pending", "approved", "approved", "blocked")),
                "risk_level": rng.choice(("low", "medium", "high")),
                "business_function": BUSINESS_FUNCTIONS[i % len(BUSINESS_FUNCTIONS)],
                "sla_performance": round(rng.uniform(85, 100), 2),
                "sla_status": rng.choice(("green", "green", "green", "amber", "red")),
                "created_at": now - timedelta(days=rng.uniform(0, 60)),
                "updated_at": now,
            }
            for i in range(agents)
        ]
        async with unit_of_work(db) as session:
            await session.execute(insert(Agent), rows)
    finally:
        await config.close()
        await db.dispose()
    underwriter = next(u.email for u in USERS if u.persona == "underwriter")
    return {ADMIN_EMAIL: ADMIN_PASSWORD, underwriter: dict(demo.users_created)[underwriter]}


async def run_templates(client: httpx.AsyncClient) -> list[str]:
    """Run the demo's commands through the engine; return their execution ids once each
    has stopped moving."""
    ids = []
    for command, persona in TEMPLATE_COMMANDS:
        response = await client.post(
            "/api/agent-executions",
            json={"command": command, "persona": persona},
            headers={"X-CSRF-Token": client.cookies["jarvis_csrf"]},
        )
        check(response, "POST /api/agent-executions", 202)
        ids.append(response.json()["executionId"])
    for execution_id in ids:
        deadline = time.monotonic() + 60
        while True:
            body = (await client.get(f"/api/agent-executions/{execution_id}")).json()
            if body["status"] not in ("queued", "running"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"template execution {execution_id} did not finish")
            await asyncio.sleep(0.05)
    return ids


def _status(rng: random.Random) -> str:
    roll = rng.random()
    for status, share in STATUS_SHARES:
        if roll < share:
            return status
        roll -= share
    return "completed"


def _clone_steps(
    steps: list[dict[str, Any]], execution_id: str, status: str, started: datetime
) -> list[dict[str, Any]]:
    """The template's steps for a clone that ended ``status``: its times, and for a failed
    or stopped one, the step where it stopped and none after."""
    stop_at = {
        "failed": len(steps) * 2 // 3,
        "cancelled": len(steps) // 2,
        "rejected": len(steps) - 1,
        "awaiting_approval": len(steps) - 1,
        "running": len(steps) // 2,
    }.get(status, len(steps))
    rows = []
    for i, step in enumerate(steps[: stop_at + 1]):
        row = {k: v for k, v in step.items() if k != "id"}
        row["execution_id"] = execution_id
        offset = timedelta(milliseconds=12 * i)
        row["started_at"] = started + offset
        row["completed_at"] = started + offset + timedelta(milliseconds=row["duration_ms"] or 5)
        if i == stop_at < len(steps):
            row["status"] = {
                "failed": "failed",
                "cancelled": "cancelled",
                "rejected": "rejected",
                "awaiting_approval": "awaiting_approval",
                "running": "running",
            }[status]
            if status == "failed":
                row["error"] = "TimeoutError: the document service did not answer in 30 s"
                row["attempt"] = 3
            if status in ("running", "awaiting_approval"):
                row["completed_at"] = None
                row["duration_ms"] = None
        rows.append(row)
    return rows


async def clone_executions(url: str, template_ids: list[str], count: int) -> int:
    """Insert ``count`` copies of the template executions (with steps and commands);
    return how many steps were inserted."""
    db = Database.from_url(url)
    rng = random.Random(11)
    now = utcnow()
    try:
        async with unit_of_work(db) as session:
            templates = [
                dict(row._mapping)
                for row in await session.execute(
                    select(AgentExecution.__table__).where(
                        AgentExecution.execution_id.in_(template_ids)
                    )
                )
            ]
            step_rows = (
                await session.execute(
                    select(ExecutionStep.__table__)
                    .where(ExecutionStep.execution_id.in_(template_ids))
                    .order_by(ExecutionStep.id)
                )
            ).all()
            users = dict((await session.execute(select(User.persona, User.id))).all())
            emails = dict((await session.execute(select(User.persona, User.email))).all())
        steps_of: dict[str, list[dict[str, Any]]] = {}
        for step in step_rows:
            steps_of.setdefault(step.execution_id, []).append(dict(step._mapping))
        executions: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []
        commands: list[dict[str, Any]] = []
        total_steps = 0

        async def flush() -> None:
            async with unit_of_work(db) as session:
                await session.execute(insert(AgentExecution), executions)
                if steps:
                    await session.execute(insert(ExecutionStep), steps)
                await session.execute(insert(Command), commands)
            executions.clear()
            steps.clear()
            commands.clear()

        for i in range(count):
            template = templates[i % len(templates)]
            status = _status(rng)
            # A third in the last 24 hours, the rest over the 13 days before.
            age = rng.uniform(0, 24) if i % 3 == 0 else rng.uniform(24, 14 * 24)
            created = now - timedelta(hours=age)
            execution_id = str(uuid.uuid4())
            persona = template["persona"]
            row = dict(template)
            duration = rng.randint(80, 4000)
            row |= {
                "execution_id": execution_id,
                "status": status,
                "created_at": created,
                "started_at": created + timedelta(milliseconds=5),
                "completed_at": created + timedelta(milliseconds=duration),
                "duration_ms": duration,
                "created_by": emails.get(persona, ADMIN_EMAIL),
                "created_by_id": users.get(persona),
                "error": None,
                "error_code": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "retry_of": None,
            }
            if status == "failed":
                row |= {"error": "a step failed after 3 attempts", "error_code": "step_failed"}
            if status in ("running", "awaiting_approval"):
                row |= {"completed_at": None, "duration_ms": None}
            if status == "running":
                # Held by an engine elsewhere: this app's engine leaves it alone.
                row |= {
                    "lease_owner": "benchmark-elsewhere",
                    "lease_expires_at": now + timedelta(days=1),
                }
            if status in ("cancelled", "rejected"):
                row["error_code"] = status
            executions.append(row)
            cloned = _clone_steps(
                steps_of.get(template["execution_id"], []), execution_id, status, created
            )
            steps.extend(cloned)
            total_steps += len(cloned)
            commands.append(
                {
                    "user_id": row["created_by_id"],
                    "issued_by": row["created_by"],
                    "persona": persona,
                    "text": row["command"],
                    "source": rng.choice(("web", "web", "api", "cli")),
                    "execution_id": execution_id,
                    "created_at": created,
                }
            )
            if len(executions) >= BATCH:
                await flush()
        if executions:
            await flush()
        return total_steps
    finally:
        await db.dispose()


# --- measuring --------------------------------------------------------------------------


def check(response: httpx.Response, label: str, status: int = 200) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{label}: {response.status_code} {response.text[:500]}")


class _Assets(HTMLParser):
    """The stylesheets and scripts a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and "stylesheet" in (a.get("rel") or "").split() and a.get("href"):
            self.urls.append(str(a["href"]))
        elif tag == "script" and a.get("src"):
            self.urls.append(str(a["src"]))


# import x from "./a.js"; import "./a.js"; export {x} from "./a.js"; import("./a.js")
_IMPORTS = re.compile(
    r"""(?:\bimport\s*(?:[\w*{}\s,$]+\s*from\s*)?|\bexport\s*[\w*{}\s,$]+\s*from\s*|\bimport\s*\(\s*)["']([^"']+)["']"""
)


async def asset_bytes(client: httpx.AsyncClient, page_html: str, page_url: str) -> dict[str, int]:
    """Bytes of every stylesheet and script ``page_html`` loads (modules followed)."""
    parser = _Assets()
    parser.feed(page_html)
    todo = [urljoin(page_url, u) for u in parser.urls]
    sizes: dict[str, int] = {}
    while todo:
        url = todo.pop()
        key = urlsplit(url).path
        if key in sizes:
            continue
        response = await client.get(url)
        check(response, f"GET {url}")
        sizes[key] = len(response.content)
        if key.endswith(".js"):
            todo.extend(urljoin(url, m) for m in _IMPORTS.findall(response.text))
    return sizes


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[float, str]]]:
    """The statements run on ``engine`` inside the block, with their time in ms."""
    seen: list[tuple[float, str]] = []
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed = (time.perf_counter() - started.pop(id(cursor), time.perf_counter())) * 1000
        seen.append((elapsed, " ".join(statement.split())))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


async def timed_get(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    response = await client.get(path, headers=HTML if not path.startswith("/api") else {})
    elapsed = (time.perf_counter() - started) * 1000
    check(response, f"GET {path}")
    return elapsed


@asynccontextmanager
async def signed_in(
    url: str, users: dict[str, str], **settings: Any
) -> AsyncIterator[tuple[FastAPI, dict[str, httpx.AsyncClient]]]:
    """The app on ``url`` (with extra ``settings``) and a client per user in ``users``
    (e-mail -> password), each signed in with its own session cookie."""
    app = create_app(
        Settings(
            database_url=url,
            secret_key=SecretStr(SECRET_KEY),
            log_level="WARNING",
            rate_limits=False,
            **settings,
        )
    )
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        transport = httpx.ASGITransport(app=app)
        clients = {}
        for email, password in users.items():
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
            )
            response = await client.post("/api/login", json={"email": email, "password": password})
            check(response, f"sign-in of {email}")
            clients[email] = client
        yield app, clients


async def add_executions(url: str, agents: int, executions: int) -> None:
    async with signed_in(url, {ADMIN_EMAIL: ADMIN_PASSWORD}) as (_, clients):
        started = time.perf_counter()
        template_ids = await run_templates(clients[ADMIN_EMAIL])
        steps = await clone_executions(url, template_ids, executions)
    print(
        f"data: demo + {agents} agents, {executions} executions ({steps} steps), "
        f"inserted in {time.perf_counter() - started:.1f} s"
    )


async def run_rounds(
    requests: list[tuple[str, httpx.AsyncClient, str]], rounds: int
) -> dict[str, list[float]]:
    """Times in ms of each (label, client, path), in interleaved rounds after a warm-up."""
    for _, client, path in requests:  # warm-up: caches, template compilation
        for _ in range(3):
            await timed_get(client, path)
    times: dict[str, list[float]] = {label: [] for label, _, _ in requests}
    for _ in range(rounds):  # interleaved: drift on the machine hits all alike
        for label, client, path in requests:
            times[label].append(await timed_get(client, path))
    return times


def _row(
    label: str, page: list[float], baseline_label: str, baseline: list[float], assets: int | None
) -> bool:
    median, base = statistics.median(page), statistics.median(baseline)
    p90 = statistics.quantiles(page, n=10)[-1]
    ok = median <= TARGET_MS and (assets is None or assets <= TARGET_ASSET_BYTES)
    size = f"{assets / 1024:>6.1f} KB" if assets is not None else f"{'':>9}"
    print(
        f"{label:<24} {median:>6.1f} ms {p90:>6.1f} ms   {baseline_label:<34} {base:>6.1f} ms "
        f"{median / base:>6.2f}  {size}  {'ok' if ok else 'MISSED'}"
    )
    return ok


async def measure(url: str, users: dict[str, str], rounds: int, queries: bool) -> None:
    underwriter = next(email for email in users if email != ADMIN_EMAIL)
    agents_api = f"/api/agents?limit={PAGE_SIZE}"
    executions_api = f"/api/agent-executions?limit={PAGE_SIZE}"
    health = "/api/health"
    async with signed_in(url, users) as (app, clients):
        admin = clients[ADMIN_EMAIL]
        requests = [
            ("/", admin, "/"),
            ("/ (underwriter)", clients[underwriter], "/"),
            ("/agents", admin, "/agents"),
            ("/executions", admin, "/executions"),
            (agents_api, admin, agents_api),
            (executions_api, admin, executions_api),
            (health, admin, health),
        ]
        times = await run_rounds(requests, rounds)
        assets: dict[str, dict[str, int]] = {}
        for label, client, path in requests[:4]:
            html = (await client.get(path, headers=HTML)).text
            assets[label] = await asset_bytes(client, html, f"http://127.0.0.1{path}")
        print(
            f"\n{'page':<24} {'median':>9} {'p90':>9}   {'baseline':<34} {'median':>9} "
            f"{'ratio':>6}  {'CSS+JS':>9}  target"
        )
        baselines = {
            "/": health,
            "/ (underwriter)": health,
            "/agents": agents_api,
            "/executions": executions_api,
        }
        failures = []
        for label, baseline in baselines.items():
            total = sum(assets[label].values())
            if not _row(label, times[label], baseline, times[baseline], total):
                failures.append(label)

        # The directory reuses the API's page cache (2 s): a page served from it runs no
        # agent query. The same, every request a miss:
        async with signed_in(url, users, agent_list_cache_seconds=0) as (_, uncached):
            client = uncached[ADMIN_EMAIL]
            cold = await run_rounds(
                [("/agents", client, "/agents"), (agents_api, client, agents_api)], rounds
            )
        if not _row(
            "/agents (cache off)",
            cold["/agents"],
            f"{agents_api} (cache off)",
            cold[agents_api],
            None,
        ):
            failures.append("/agents (cache off)")
        print(
            f"\ntargets: median <= {TARGET_MS:.0f} ms, CSS + JS <= "
            f"{TARGET_ASSET_BYTES // 1024} KB per page; {rounds} rounds; GET {health} median "
            f"{statistics.median(times[health]):.2f} ms"
        )
        for label, sizes in assets.items():
            listing = ", ".join(
                f"{k.rsplit('/', 1)[-1]} {v / 1024:.1f}" for k, v in sorted(sizes.items())
            )
            print(f"  {label}: {listing} (KB)")
        if queries or failures:
            engine = app.state.db.engine.sync_engine
            for label, client, path in requests[:4]:
                if not queries and label not in failures:
                    continue
                with statements(engine) as seen:
                    await timed_get(client, path)
                total_ms = sum(ms for ms, _ in seen)
                print(f"\nSQL of one render of {label}: {len(seen)} statements, {total_ms:.1f} ms")
                for ms, sql in sorted(seen, reverse=True)[:12]:
                    print(f"  {ms:7.2f} ms  {sql[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--executions", type=int, default=10000)
    parser.add_argument("--queries", action="store_true", help="print each page's SQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/web_render.db"
        users = asyncio.run(prepare_database(url, args.agents))
        asyncio.run(add_executions(url, args.agents, args.executions))
        asyncio.run(measure(url, users, args.rounds, args.queries))


if __name__ == "__main__":
    main()
