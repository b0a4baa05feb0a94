"""``jarvis db upgrade | downgrade | current``."""

from __future__ import annotations

from typing import Annotated

import typer

from jarvis.cli.common import console, database, run, settings
from jarvis.db import migrate

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply migrations (to the latest by default)."""
    url = settings().database_url
    run(lambda: migrate.upgrade(url, revision))
    console.print(f"schema upgraded to [bold]{revision}[/]")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base")],
) -> None:
    """Revert migrations down to a revision."""
    url = settings().database_url
    run(lambda: migrate.downgrade(url, revision))
    console.print(f"schema downgraded to [bold]{revision}[/]")


@app.command()
def current() -> None:
    """Show the schema's revision and whether it is at head."""

    async def body() -> migrate.SchemaState:
        async with database() as db:
            return await migrate.schema_state(db.engine)

    state = run(body)
    marker = "at head" if state.at_head else f"behind head {state.head}"
    console.print(f"{state.current or 'empty (no schema)'} ({marker})")
    if not state.at_head:
        raise typer.Exit(1)
