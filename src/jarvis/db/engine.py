"""Engine creation with per-backend connection set-up.

SQLite: foreign keys on, WAL, a busy timeout, and transactions begun by us so that a
writing unit of work can take the write lock up front (``BEGIN IMMEDIATE``). Two writers
then queue instead of failing on a stale snapshot, and the audit chain cannot fork.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_OPTION = "jarvis_sqlite_begin"


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


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
        _install_sqlite_hooks(engine)
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

    @classmethod
    def from_url(cls, database_url: str, **kwargs: Any) -> Database:
        return cls(create_engine(database_url, **kwargs))

    async def dispose(self) -> None:
        await self.engine.dispose()
