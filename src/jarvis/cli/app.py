"""The root ``jarvis`` command."""

from __future__ import annotations

import typer

from jarvis import __version__
from jarvis.cli import agents, audit, config, db, executions, seed, tokens, users
from jarvis.cli.common import console
from jarvis.cli.run import run_command
from jarvis.cli.serve import serve
from jarvis.cli.worker import worker

cli = typer.Typer(
    name="jarvis",
    help="JARVIS: governed AI agents for insurance operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.command()(serve)
cli.command()(worker)
cli.add_typer(db.app, name="db")
cli.add_typer(seed.app, name="seed")
cli.add_typer(agents.app, name="agents")
cli.add_typer(users.app, name="users")
cli.add_typer(tokens.app, name="tokens")
cli.add_typer(audit.app, name="audit")
cli.add_typer(config.app, name="config")
cli.command("run")(run_command)
cli.add_typer(executions.app, name="executions")


@cli.command()
def version() -> None:
    """Print the JARVIS version."""
    console.print(f"jarvis {__version__}")


def main() -> None:
    cli()
