"""Engine creation with per-backend connection set-up.

SQLite: foreign keys on, WAL, a busy timeout, and transactions begun by us so that a
writing unit of work can take the write lock up front (``BEGIN IMMEDIATE``). Two writers
then queue instead of failing on a stale snapshot, and the audit chain cannot fork.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_OPTION = "jarvis_sqlite_begin"


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def sqlite_file(database_url: str) -> Path | None:
    """The absolute path of the file a SQLite URL names (None for another backend or an
    in-memory database); a relative path is taken from the current folder, as SQLite does."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    name = url.database or ""
    if name.startswith("file:"):  # a URI filename (``?uri=true``); its options are the query
        name = name.removeprefix("file:")
    if name in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return Path(name).resolve()


def describe_database(database_url: str) -> str:
    """How messages name a database: a SQLite file by its absolute path, anything else by
    its URL with the password hidden."""
    path = sqlite_file(database_url)
    if path is not None:
        return str(path)
    return make_url(database_url).render_as_string(hide_password=True)


DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 10


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Create an async engine for ``database_url`` with JARVIS's connection set-up.

    The pool keeps enough connections for the server's concurrency: a connection opened
    beyond ``pool_size`` is closed when returned, and opening one (a PostgreSQL session,
    or an aiosqlite thread) costs far more than a query.
    """
    url = make_url(database_url)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", DEFAULT_POOL_SIZE)
        kwargs.setdefault("max_overflow", DEFAULT_MAX_OVERFLOW)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **kwargs)
        _install_sqlite_hooks(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


@dataclass
class Database:
    """An engine and the two session factories: one for reading, one for writing.

    On SQLite the writing factory begins ``IMMEDIATE`` transactions and the reading one
    ``DEFERRED`` (a consistent snapshot); on PostgreSQL readers run in autocommit.
    """

    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession] = field(init=False)
    writer: async_sessionmaker[AsyncSession] = field(init=False)
    # What readers connect through (autocommit on PostgreSQL), for Core-only hot paths.
    read_engine: AsyncEngine = field(init=False)
    _sync_writer: Engine | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.read_engine = self.engine
        self.reader = async_sessionmaker(self.engine, expire_on_commit=False)
        if self.is_sqlite:
            write_engine = self.engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            self.writer = async_sessionmaker(write_engine, expire_on_commit=False)
        else:
            self.writer = self.reader
            # Reads need no transaction on PostgreSQL: under READ COMMITTED every
            # statement sees its own snapshot anyway, and BEGIN/COMMIT are two round trips.
            self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self.reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _sqlite_file_writer(self) -> Engine | None:
        """A synchronous engine on the same SQLite file, for ``run_write`` (None for an
        in-memory database, which another engine could not see)."""
        if not self.is_sqlite:
            return None
        if self._sync_writer is None:
            url = self.engine.url
            if url.database in (None, "", ":memory:") or "mode=memory" in str(url):
                return None
            engine = create_sync_engine(
                url.set(drivername="sqlite+pysqlite"),
                connect_args={"check_same_thread": False},
                pool_size=4,
                max_overflow=4,
            )
            _install_sqlite_hooks(engine)
            self._sync_writer = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        return self._sync_writer

    async def run_write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (synchronous Core statements) in one writing transaction.

        For hot paths that issue many statements: on a SQLite file the whole transaction
        runs in one worker thread on a synchronous connection, one hand-off instead of
        several per statement through aiosqlite; elsewhere it runs on an async connection
        through ``run_sync``. Commits on success, rolls back on error.
        """
        writer = self._sqlite_file_writer()
        if writer is not None:

            def transaction() -> T:
                with writer.begin() as connection:
                    return work(connection)

            return await asyncio.to_thread(transaction)
        async with self.writer() as session:
            connection = await session.connection()
            result = await connection.run_sync(work)
            await session.commit()
            return result

    @classmethod
    def from_url(cls, database_url: str, **kwargs: Any) -> Database:
        return cls(create_engine(database_url, **kwargs))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._sync_writer is not None:
            self._sync_writer.dispose()
            self._sync_writer = None
