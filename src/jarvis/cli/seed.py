"""``jarvis seed demo``."""

from __future__ import annotations

from typing import Annotated

import typer

from jarvis.cli.common import console, run, transaction
from jarvis.demo.service import DemoResult, seed_demo

app = typer.Typer(help="Load data.", no_args_is_help=True)


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only when the database has no agents yet")
    ] = False,
) -> None:
    """Load the demo personas, agents and users (idempotent)."""

    async def body() -> DemoResult:
        async with transaction() as session:
            return await seed_demo(session, only_if_empty=if_empty)

    result = run(body)
    if result.skipped:
        console.print("demo data: skipped (the database already has agents)")
        return
    console.print(
        f"demo data: {result.personas_created} personas, {result.agents_created} agents, "
        f"{len(result.users_created)} users added"
    )
    for email, password in result.users_created:
        console.print(f"  demo user [bold]{email}[/] password: [bold]{password}[/] (shown once)")
