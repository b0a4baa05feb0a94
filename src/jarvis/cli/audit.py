"""``jarvis audit verify``."""

from __future__ import annotations

import typer

from jarvis.audit.service import VerifyResult, verify_ledger
from jarvis.cli.common import console, run, transaction

app = typer.Typer(help="The tamper-evident audit ledger.", no_args_is_help=True)


@app.command()
def verify() -> None:
    """Recompute the hash chain: 'intact', or 'compromised' with the first broken entry."""

    async def body() -> VerifyResult:
        async with transaction(write=False) as session:
            return await verify_ledger(session)

    result = run(body)
    if result.status == "intact":
        console.print(f"[bold green]intact[/]: {result.checked} entries verified")
        return
    console.print(
        f"[bold red]compromised[/]: entry {result.broken_entry_id} — {result.reason} "
        f"({result.checked} entries before it verified)"
    )
    raise typer.Exit(2)
