"""Test harness: every database test runs on SQLite and on PostgreSQL.

The schema is migrated once per session per backend. Each test then gets its own copy:
on SQLite a copy of the migrated file, on PostgreSQL the shared test database emptied
after the test (DELETE of the tables the test used, with triggers bypassed, since the
audit ledger refuses it otherwise).

``make pytest`` runs the suite on pytest-xdist workers (``-n auto --dist loadgroup``). Every
worker has its own SQLite template and its own PostgreSQL database (``worker_suffix``).
Tests that touch Redis share one worker (xdist group ``redis``): the bus's channels
(``jarvis.events``, ``jarvis.config``, ...) are global to the server, so two workers'
tests would hear each other's messages. The browser tests share one (group ``browser``),
with the one browser and live servers their session fixtures start.

PostgreSQL comes from ``JARVIS_TEST_POSTGRES_URL`` (default: the local server's
``postgres`` database, used only to create and drop ``jarvis_test_*`` databases). When
it is unreachable the PostgreSQL variants are skipped and the run says so at the end; with
``CI=true`` the run fails instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

# pytest-xdist gives its workers COLUMNS=80 and LINES=24; Rich consoles made at import
# (jarvis.cli.common) would then keep 80 columns for good, where the CLI tests set COLUMNS
# to read unwrapped output. Without them a worker's consoles behave as in a plain run.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from jarvis.auth.users import passwords
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.engine import Database
from jarvis.db.migrate import upgrade
from jarvis.db.models import metadata
from jarvis.db.session import unit_of_work
from jarvis.main import create_app
from jarvis.personas.grants import ensure_catalogue
from jarvis.settings import Settings
from tests.factories import bearer, create_user, token_for

BACKENDS = ("sqlite", "postgresql")
TEST_SECRET_KEY = "test-secret-key-" + "x" * 40
DEFAULT_PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# argon2 at the production cost (passwords.DEFAULT_HASHER) spends ~0.15 s a hash, and
# nearly every test creates a user: the suite hashes with the cheapest parameters instead
# (tests/auth/test_password_hashing.py pins the production default).
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

_skipped_suites: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    passwords.use_hasher(TEST_HASHER)


# --- pytest-xdist -----------------------------------------------------------------------


def _uses_redis(item: pytest.Item) -> bool:
    """The test asks for ``redis_url``, directly or through a fixture parametrised
    ``"redis"`` (a bus or a rate-limit storage of either kind)."""
    if "redis_url" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "redis" in callspec.params.values()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Pin the Redis tests and the browser tests to one worker each (see the module's
    docstring). On xdist workers, put those groups first, so they are handed out first:
    they are the longest units of work, and one handed out last would leave the other
    workers idle at the end. (Without xdist the order stays as collected.)"""
    browser_dir = Path(__file__).parent / "e2e"
    first: list[pytest.Item] = []
    rest: list[pytest.Item] = []
    for item in items:
        if browser_dir in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))
            first.append(item)
        elif _uses_redis(item):
            item.add_marker(pytest.mark.xdist_group("redis"))
            first.append(item)
        else:
            rest.append(item)
    if hasattr(config, "workerinput"):
        items[:] = first + rest


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand the suites it skipped to the controller, which prints the
    summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["jarvis_skipped_suites"] = dict(_skipped_suites)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """On the xdist controller: collect the suites a worker skipped."""
    output = getattr(node, "workeroutput", None) or {}
    _skipped_suites.update(output.get("jarvis_skipped_suites", {}))


# --- PostgreSQL availability ------------------------------------------------------------


def pg_admin_url() -> str:
    return os.environ.get("JARVIS_TEST_POSTGRES_URL", DEFAULT_PG_ADMIN_URL)


async def _pg_execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        asyncio.run(asyncio.wait_for(_pg_execute(pg_admin_url(), "SELECT 1"), timeout=10))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def pg_database_url(name: str) -> str:
    return make_url(pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def create_pg_database(name: str) -> str:
    """Create (or re-create) an empty PostgreSQL database; return its URL."""
    asyncio.run(
        _pg_execute(
            pg_admin_url(),
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
        )
    )
    return pg_database_url(name)


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_execute(pg_admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def worker_suffix() -> str:
    """Unique per test process, so parallel runs never share a database."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def redis_test_url() -> str:
    return os.environ.get("JARVIS_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def _redis_reachable() -> str | None:
    """None when Redis answers PING, else why not."""
    import redis

    try:
        client = redis.Redis.from_url(redis_test_url(), socket_connect_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """With CI=true a missing PostgreSQL or Redis fails the run before any test."""
    if IN_CI:
        reason = _pg_reachable()
        if reason is not None:
            pytest.exit(f"CI=true but PostgreSQL is unreachable at {pg_admin_url()}: {reason}", 3)
        reason = _redis_reachable()
        if reason is not None:
            pytest.exit(f"CI=true but Redis is unreachable at {redis_test_url()}: {reason}", 3)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (``JARVIS_TEST_REDIS_URL``); the suite is skipped, and says so, without
    it. Tests isolate themselves by channel/key names, not by database."""
    reason = _redis_reachable()
    if reason is not None:
        _skipped_suites["redis"] = f"Redis unreachable at {redis_test_url()} ({reason})"
        pytest.skip(_skipped_suites["redis"])
    return redis_test_url()


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    reason = _pg_reachable()
    if reason is None:
        return True
    _skipped_suites["postgresql"] = f"PostgreSQL unreachable at {pg_admin_url()} ({reason})"
    return False


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for suite, reason in _skipped_suites.items():
        terminalreporter.write_line(f"SKIPPED SUITE {suite}: {reason}", yellow=True, bold=True)


# --- migrated templates -----------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url(postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip(_skipped_suites["postgresql"])
    name = f"jarvis_test_{worker_suffix()}"
    url = create_pg_database(name)
    asyncio.run(upgrade(url))
    yield url
    drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "jarvis.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# One statement that names the tables holding rows (most tests touch a handful).
_USED_TABLES = " UNION ALL ".join(
    f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in metadata.sorted_tables
)


async def _empty_postgres(db: Database) -> None:
    """Back to the freshly migrated state: every table emptied, every sequence back at 1,
    then what the migrations seed (the permission catalogue) put back.

    DELETE of the few tables a test used, not TRUNCATE of all of them: TRUNCATE makes new
    files for every table and took some 200 ms per test, a fifth of the suite's time."""
    async with db.engine.begin() as conn:
        used = (await conn.execute(text(_USED_TABLES))).scalars().all()
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for name in used:
            await conn.execute(text(f'DELETE FROM "{name}"'))
        await conn.execute(
            text("SELECT setval(c.oid, 1, false) FROM pg_class c WHERE c.relkind = 'S'")
        )
    async with unit_of_work(db) as session:
        await ensure_catalogue(session)


@pytest.fixture
async def db(database_url: str, backend: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url)
    try:
        # The built-in registry keys every database has after `jarvis db upgrade`.
        async with unit_of_work(database) as s:
            await ensure_builtin_registry(s)
        yield database
    finally:
        if backend == "postgresql":
            await _empty_postgres(database)
        await database.dispose()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    """A unit of work for arranging data directly; committed when the test ends."""
    async with unit_of_work(db) as s:
        yield s


# --- the application --------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Rate limits are off for the suite at large (it sends far more requests a minute than
    # any user); tests/auth/test_rate_limits.py turns them on.
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        log_level="WARNING",
        rate_limits=False,
    )


@pytest.fixture
async def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    application = create_app(settings, database=db)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def admin_headers(db: Database) -> dict[str, str]:
    """Bearer headers of a fresh admin user."""
    user = await create_user(db, persona="admin")
    return bearer(await token_for(db, user))
