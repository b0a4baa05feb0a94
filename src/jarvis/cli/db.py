"""``jarvis db upgrade | downgrade | current``.

``upgrade`` is the command that creates a database (a missing SQLite file); the others
fail on one that does not exist, naming the file, instead of creating an empty one.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from jarvis.cli.common import console, database, read_schema, require_database, run, settings
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db import migrate
from jarvis.db.engine import describe_database
from jarvis.db.session import unit_of_work

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply migrations (to the latest by default)."""
    url = settings().database_url

    async def body() -> list[str]:
        await migrate.upgrade(url, revision)
        async with database() as db:
            if not (await migrate.schema_state(db.engine)).at_head:
                return []
            async with unit_of_work(db) as session:
                return await ensure_builtin_registry(session)

    added = run(body)
    console.print(f"schema upgraded to [bold]{revision}[/] ({escape(describe_database(url))})")
    if added:
        console.print(f"configuration registry: {len(added)} built-in key(s) added")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base")],
) -> None:
    """Revert migrations down to a revision."""
    url = settings().database_url
    require_database()
    run(lambda: migrate.downgrade(url, revision))
    console.print(f"schema downgraded to [bold]{revision}[/]")


@app.command()
def current() -> None:
    """Show the schema's revision and whether it is at head."""

    require_database()

    async def body() -> migrate.SchemaState:
        async with database() as db:
            return await read_schema(db)

    state = run(body)
    marker = "at head" if state.at_head else f"behind head {state.head}"
    console.print(f"{state.current or 'empty (no schema)'} ({marker})")
    if not state.at_head:
        raise typer.Exit(1)
