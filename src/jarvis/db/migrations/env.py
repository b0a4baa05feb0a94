"""Alembic environment: runs on the connection handed over by ``jarvis.db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from jarvis.db.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=is_sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `jarvis db upgrade|downgrade` (jarvis.db.migrate), "
        "not the bare alembic command"
    )
_run(connection)
