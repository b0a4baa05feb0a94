"""Shared plumbing for CLI commands: settings, database, async entry, output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.bootstrap import AdminBootstrap, ensure_admin
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.config.service import ConfigService
from jarvis.db.engine import Database, describe_database, sqlite_file
from jarvis.db.migrate import SchemaState, schema_state
from jarvis.db.session import unit_of_work
from jarvis.errors import JarvisError
from jarvis.kit.bus import create_bus
from jarvis.settings import Settings, SettingsError, get_settings
from jarvis.wiring import config_service

console = Console(soft_wrap=True)
err_console = Console(stderr=True)

T = TypeVar("T")


def settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError names the bad variable
        fail(f"invalid settings: {exc}")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def option_path(loc: Sequence[Any] | None, options: Mapping[str, str]) -> str:
    """Where a service's field error points, in the command's words: the field a command
    takes as an option is named by it (``--persona`` for ``persona``, ``--from`` for
    ``effectiveFrom``); a scope's members are options of their own (``scope.persona`` is
    ``--persona``); deeper parts keep their path (``VALUE.primary``). Empty for no field."""
    parts = [str(p) for p in (loc or ()) if p != "body"]
    if len(parts) > 1 and parts[0] == "scope":
        parts = parts[1:]
    if not parts:
        return ""
    return ".".join([options.get(parts[0], parts[0]), *parts[1:]])


def worded(exc: JarvisError, options: Mapping[str, str] | None = None) -> str:
    """A service's error in the command's words (``option_path``), so the message points
    at what the user typed, never at an HTTP body."""
    if not exc.errors or not options:
        return exc.detail
    parts = []
    for error in exc.errors:
        where = option_path(error.get("loc"), options)
        parts.append(f"{where}: {error.get('msg', 'invalid value')}" if where else exc.detail)
    return "; ".join(parts)


def run(main: Callable[[], Awaitable[T]], options: Mapping[str, str] | None = None) -> T:
    """Run an async command body; domain errors become a clean message and exit 1
    (field errors named by the command's ``options``: field name -> option)."""
    try:
        return asyncio.run(_call(main))
    except JarvisError as exc:
        fail(worded(exc, options))
    except SettingsError as exc:
        fail(str(exc))


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


@asynccontextmanager
async def database() -> AsyncIterator[Database]:
    """The configured database as it is: connecting creates a missing SQLite file, so only
    the commands that create a database (``db upgrade``, ``serve``) open it this way."""
    db = Database.from_url(settings().database_url)
    try:
        yield db
    finally:
        await db.dispose()


def require_database() -> None:
    """Fail, naming the file, when the configured SQLite file does not exist (connecting
    would create an empty one)."""
    url = settings().database_url
    path = sqlite_file(url)
    if path is not None and not path.exists():
        fail(
            f"no database at {path} (database URL {url}): run `jarvis db upgrade` to create "
            "it there, or point JARVIS_DATABASE_URL at the database you mean"
        )


async def read_schema(db: Database) -> SchemaState:
    """The schema's revision; a database that cannot be reached fails, naming it."""
    try:
        return await schema_state(db.engine)
    except (OSError, DBAPIError) as exc:  # server down, unknown database or role, …
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        fail(f"cannot open the database at {describe_database(settings().database_url)}: {reason}")


@asynccontextmanager
async def existing_database() -> AsyncIterator[Database]:
    """The configured database, once it exists with its schema at head; fails naming the
    SQLite file or the URL otherwise, and never creates one."""
    require_database()
    async with database() as db:
        # Without this, a command run before `jarvis db upgrade` dies in a SQL traceback.
        where = describe_database(settings().database_url)
        problem = (await read_schema(db)).problem(where)
        if problem is not None:
            fail(problem)
        yield db


@asynccontextmanager
async def transaction(*, write: bool = True) -> AsyncIterator[AsyncSession]:
    """One unit of work against the configured database, once its schema is at head."""
    async with existing_database() as db, unit_of_work(db, write=write) as session:
        yield session


@asynccontextmanager
async def configured(*, write: bool = True) -> AsyncIterator[tuple[AsyncSession, ConfigService]]:
    """A unit of work and a ConfigService whose changes reach running servers.

    With ``JARVIS_REDIS_URL`` set, changes are published on the bus at commit; servers
    also poll the change log, so they see a change without Redis too (within
    ``JARVIS_CONFIG_POLL_SECONDS``).
    """
    async with existing_database() as db:
        bus = create_bus(settings().redis_url)
        config = config_service(db, bus=bus, poll_seconds=0)
        try:
            if write:
                # Committed first: ConfigService reads the registry on its own connection.
                async with unit_of_work(db) as session:
                    await ensure_builtin_registry(session)
            async with unit_of_work(db, write=write) as session:
                yield session, config
        finally:
            await bus.close()


async def bootstrap_admin(session: AsyncSession, config: ConfigService) -> AdminBootstrap | None:
    """Create the first admin from the settings unless an admin exists."""
    cfg = settings()
    return await ensure_admin(
        session,
        config=config,
        email=cfg.admin_email,
        password=cfg.admin_password.get_secret_value() if cfg.admin_password else None,
        generate=not cfg.is_production,
    )


def print_admin_login(admin: AdminBootstrap | None) -> None:
    if admin is None:
        console.print(
            "no admin account exists: set JARVIS_ADMIN_PASSWORD or run "
            "`jarvis users create --persona admin`"
        )
    elif admin.generated_password:
        console.print(
            f"admin login: [bold]{admin.user.email}[/] password: "
            f"[bold]{admin.generated_password}[/] (shown once)"
        )
    else:
        console.print(
            f"admin login: [bold]{admin.user.email}[/] (password as set; "
            f"`jarvis users set-password --email {admin.user.email}` sets a new one)"
        )
