"""Alembic, driven from code: upgrade, downgrade, current revision, head check."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.db.engine import create_engine


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(files("jarvis.db") / "migrations"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration shipped with this code (read once: parsing the scripts is slow)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no migrations found")
    return head


def _with_connection(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def _run(engine: AsyncEngine, action: str, revision: str) -> None:
    async with engine.connect() as conn:
        await conn.run_sync(_with_connection, action, revision)
        await conn.commit()


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    engine = create_engine(database_url)
    try:
        await _run(engine, "upgrade", revision)
    finally:
        await engine.dispose()


async def downgrade(database_url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` for an empty schema)."""
    engine = create_engine(database_url)
    try:
        await _run(engine, "downgrade", revision)
    finally:
        await engine.dispose()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def revision_on(connection: AsyncConnection) -> str | None:
    """The schema revision seen through an open connection (a request's own session)."""
    return await connection.run_sync(_current)


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def problem(self, where: str | None = None) -> str | None:
        """Why the server must not start on this schema, or None; ``where`` names the
        database in the message (``describe_database``)."""
        if self.at_head:
            return None
        database = "the database" if where is None else f"the database at {where}"
        if self.current is None:
            return (
                f"{database} has no JARVIS schema yet; run `jarvis db upgrade` "
                "(or `make run`, which applies migrations itself)"
            )
        schema = "the database schema" if where is None else f"the schema of {where}"
        return (
            f"{schema} is at revision {self.current} but this version of JARVIS "
            f"needs {self.head}; run `jarvis db upgrade`"
        )


async def schema_state(engine: AsyncEngine) -> SchemaState:
    return SchemaState(current=await current_revision(engine), head=head_revision())
