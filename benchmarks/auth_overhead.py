"""What signing in costs a request: GET /api/agents?limit=50 with a session cookie versus
the same request without credentials (the route is public), in the same run.

The embedded SQLite database holds the demo (`jarvis seed demo`: personas, agents, users)
plus 60 more agents, so the page is full. One app, one process: the authenticated side
signs in as the demo underwriter and pays for resolving the session, the permission
check and its own rate-limit counter; the anonymous side pays for its per-IP counter.
Rate limits stay on (the default); `ratelimit.api_requests_per_minute` is raised through
the ConfigService so that neither side is ever refused.

In process (default) the requests go through httpx.ASGITransport, sequentially, in
interleaved rounds; `--live` also serves the app with uvicorn (one worker) and drives it
with `wrk` (`-H "Cookie: ..."` for the authenticated side). Prints both throughputs and
`ratio = authenticated / anonymous` (medians over the rounds). In process, the same
ratio per CPU second of the process is printed too: other processes on a shared machine
disturb it less. Target: at least 0.8.

    python benchmarks/auth_overhead.py [--requests 1000] [--rounds 9] [--live]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from jarvis.agents.schemas import AgentCreate
from jarvis.agents.service import create_agent
from jarvis.auth.sessions.cookies import SESSION_COOKIE
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.session import unit_of_work
from jarvis.demo.data import USERS
from jarvis.demo.service import SEED_ACTOR, seed_demo
from jarvis.main import create_app
from jarvis.settings import Settings
from jarvis.wiring import config_service

PATH = "/api/agents?limit=50"
TARGET = 0.8
EXTRA_AGENTS = 60
LIMIT_KEY = "ratelimit.api_requests_per_minute"
HIGH_LIMIT = 1_000_000  # the key's maximum; no side comes near it in a minute
PERSONA = "underwriter"
SECRET_KEY = "benchmark-" + "k" * 40
LAYERS = ("Experience", "Meta Brain", "Role", "Process", "System", "Interface")


async def prepare_database(url: str) -> tuple[str, str]:
    """Migrate, seed the demo and 60 more agents, raise the API limit; return the demo
    user of PERSONA's e-mail and password."""
    await upgrade(url)
    db = Database.from_url(url)
    config = config_service(db, poll_seconds=0)
    try:
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
        async with unit_of_work(db) as session:
            result = await seed_demo(session, config=config)
            for i in range(EXTRA_AGENTS):
                await create_agent(
                    session,
                    AgentCreate.model_validate(
                        {
                            "name": f"Benchmark Agent {i:03d}",
                            "layer": LAYERS[i % len(LAYERS)],
                            "persona": PERSONA,
                            "business_function": "underwriting",
                            "specialization": "Load test",
                            "description": "An agent that exists to fill a page of 50.",
                            "config": {"threshold": 0.8, "labels": ["a", "b", "c"]},
                        }
                    ),
                    actor=SEED_ACTOR,
                )
        async with unit_of_work(db) as session:
            outcome = await config.set_value(session, LIMIT_KEY, HIGH_LIMIT, actor=SEED_ACTOR)
            if outcome.value is None:
                raise RuntimeError(f"{LIMIT_KEY} needs approval; the benchmark cannot set it")
    finally:
        await config.close()
        await db.dispose()
    emails = {user.email for user in USERS if user.persona == PERSONA}
    for email, password in result.users_created:
        if email in emails:
            return email, password
    raise RuntimeError(f"the demo has no {PERSONA} user")


def check_page(response: httpx.Response, label: str) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{label}: {response.status_code} {response.text[:300]}")
    if len(response.json()["items"]) != 50:
        raise RuntimeError("the benchmark needs a full page of 50 agents")


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Sign ``client`` in; return its session cookie, checked to authenticate."""
    response = await client.post("/api/login", json={"email": email, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:300]}")
    user = await client.get("/api/user")
    if user.status_code != 200 or user.json()["email"] != email:
        raise RuntimeError(f"the session does not authenticate: {user.text[:300]}")
    return client.cookies[SESSION_COOKIE]


async def throughput(client: httpx.AsyncClient, requests: int) -> tuple[float, float]:
    """Requests per second of ``requests`` sequential GETs of PATH: per wall-clock second,
    and per CPU second of this process (which other processes on the machine do not
    disturb)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(requests):
        response = await client.get(PATH)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} during the run: {response.text[:300]}")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return requests / wall, requests / cpu


async def in_process(url: str, email: str, password: str, requests: int, rounds: int) -> None:
    settings = Settings(database_url=url, secret_key=SECRET_KEY, log_level="WARNING")
    if not settings.rate_limits:
        raise RuntimeError("rate limits are off (JARVIS_RATE_LIMITS): they must stay on")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        base = "http://127.0.0.1"
        async with httpx.AsyncClient(transport=transport, base_url=base) as browser:
            cookie = await sign_in(browser, email, password)
        # The cookie goes as a plain header (as wrk sends it): both sides then cost the
        # client the same, and the difference is the server's.
        async with (
            httpx.AsyncClient(transport=transport, base_url=base) as anonymous,
            httpx.AsyncClient(
                transport=transport,
                base_url=base,
                headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
            ) as signed_in,
        ):
            check_page(await anonymous.get(PATH), "anonymous")
            check_page(await signed_in.get(PATH), "authenticated")
            await throughput(anonymous, requests // 2)  # warm-up, both sides
            await throughput(signed_in, requests // 2)
            anon: list[tuple[float, float]] = []
            auth: list[tuple[float, float]] = []
            for i in range(rounds):  # interleaved, alternating who goes first
                order = [(anonymous, anon), (signed_in, auth)]
                for client, figures in order if i % 2 == 0 else reversed(order):
                    figures.append(await throughput(client, requests))
            # Still signed in after the run (and never handed another cookie): the figure
            # is the authenticated one.
            if (await signed_in.get("/api/user")).status_code != 200 or signed_in.cookies:
                raise RuntimeError("the session stopped authenticating during the run")
    report("in-process", median(auth, 0), median(anon, 0))
    cpu_auth, cpu_anon = median(auth, 1), median(anon, 1)
    print(
        f"auth_overhead[in-process, per CPU second]: authenticated {cpu_auth:.0f}, anonymous "
        f"{cpu_anon:.0f}; ratio {cpu_auth / cpu_anon:.2f}"
    )


def median(figures: list[tuple[float, float]], which: int) -> float:
    return statistics.median(figure[which] for figure in figures)


def report(label: str, authenticated: float, anonymous: float) -> None:
    ratio = authenticated / anonymous
    print(
        f"auth_overhead[{label}]: authenticated {authenticated:.0f} req/s, anonymous "
        f"{anonymous:.0f} req/s; ratio = authenticated / anonymous = {ratio:.2f} "
        f"(target >= {TARGET})"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "JARVIS_DATABASE_URL": url,
        "JARVIS_SECRET_KEY": SECRET_KEY,
        "JARVIS_LOG_LEVEL": "WARNING",
    }
    command = [
        *(sys.executable, "-m", "uvicorn", "--factory", "jarvis.main:app"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]
    proc = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not come up")


def wrk(port: int, seconds: int, connections: int, cookie: str | None) -> float:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if cookie is not None:
        command += ["-H", f"Cookie: {SESSION_COOKIE}={cookie}"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{PATH}"], check=True, capture_output=True, text=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers during the run:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    return float(match.group(1))


def live(url: str, email: str, password: str, seconds: int, connections: int, rounds: int) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    port = free_port()
    server = start_server(url, port)
    try:

        async def cookie() -> str:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                return await sign_in(client, email, password)

        session_cookie = asyncio.run(cookie())
        wrk(port, 2, connections, None)  # warm-up
        wrk(port, 2, connections, session_cookie)
        anon_rps, auth_rps = [], []
        for i in range(rounds):
            order = [(None, anon_rps), (session_cookie, auth_rps)]
            for sent, figures in order if i % 2 == 0 else reversed(order):
                figures.append(wrk(port, seconds, connections, sent))
        check = httpx.get(
            f"http://127.0.0.1:{port}/api/user", cookies={SESSION_COOKIE: session_cookie}
        )
        if check.status_code != 200:
            raise RuntimeError("the session stopped authenticating during the run")
    finally:
        server.terminate()
        server.wait()
    report(
        f"uvicorn, wrk -c{connections}", statistics.median(auth_rps), statistics.median(anon_rps)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per round, in process")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--live", action="store_true", help="also under uvicorn, with wrk")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        email, password = asyncio.run(prepare_database(url))
        asyncio.run(in_process(url, email, password, args.requests, args.rounds))
        if args.live:
            live(url, email, password, args.duration, args.connections, args.rounds)


if __name__ == "__main__":
    main()
