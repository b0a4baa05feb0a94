"""``jarvis seed demo``."""

from __future__ import annotations

from typing import Annotated

import typer

from jarvis.auth.bootstrap import AdminBootstrap
from jarvis.cli.common import (
    bootstrap_admin,
    configured,
    console,
    database,
    print_admin_login,
    run,
    settings,
)
from jarvis.demo.history import HistoryResult, run_history
from jarvis.demo.service import DemoResult, seed_demo
from jarvis.kit.bus import create_bus
from jarvis.llm.providers import Providers
from jarvis.wiring import config_service

app = typer.Typer(help="Load data.", no_args_is_help=True)


@app.command()
def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Only when the database has no agents yet")
    ] = False,
    with_history: Annotated[
        bool,
        typer.Option(
            "--with-history",
            help="Also run the demo users' first commands through the six layers",
        ),
    ] = False,
) -> None:
    """Load the demo personas, agents and users (idempotent), and the first admin."""

    async def body() -> tuple[DemoResult, AdminBootstrap | None]:
        async with configured() as (session, config):
            result = await seed_demo(session, config=config, only_if_empty=if_empty)
            admin = None if result.skipped else await bootstrap_admin(session, config)
            return result, admin

    result, admin = run(body)
    if admin is not None and admin.created:
        print_admin_login(admin)
    if result.skipped:
        console.print("demo data: skipped (the database already has agents)")
        return
    console.print(
        f"demo data: {result.personas_created} personas, {result.agents_created} agents, "
        f"{len(result.users_created)} users added"
    )
    for email, password in result.users_created:
        console.print(f"  demo user [bold]{email}[/] password: [bold]{password}[/] (shown once)")
    if with_history:
        history = run(_history)
        console.print(
            f"demo history: {sum(history.statuses.values())} commands run ({history.summary()})"
        )


async def _history() -> HistoryResult:
    async with database() as db:
        bus = create_bus(settings().redis_url)
        try:
            config = config_service(db, bus=bus, poll_seconds=0)
            return await run_history(db, config, bus, Providers.from_settings(settings()))
        finally:
            await bus.close()
