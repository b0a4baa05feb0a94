"""The root ``jarvis`` command.

Commands are registered by name (``jarvis.cli.lazy``): a command's module, and with it the
database, the web stack and the domains, is imported only when that command runs or shows
its own ``--help``. ``jarvis --help`` and ``jarvis version`` import none of them.
"""

from __future__ import annotations

import typer

from jarvis import __version__
from jarvis.cli.lazy import Lazy, LazyGroup


class JarvisGroup(LazyGroup):
    """``jarvis``'s commands and groups, each with the help line ``jarvis --help`` shows
    (tests/cli/test_cli_startup.py checks each against its module)."""

    commands_table = (
        Lazy(
            "serve", "jarvis.cli.serve:serve", "Serve the API (and, later, the pages) with uvicorn."
        ),
        Lazy(
            "worker",
            "jarvis.cli.worker:worker",
            "Run executions from the queue (needs JARVIS_REDIS_URL); stop with SIGTERM.",
        ),
        Lazy(
            "run",
            "jarvis.cli.run:run_command",
            "Run a command through the six layers here and now, showing each layer's progress.",
        ),
    )
    groups_table = (
        Lazy("db", "jarvis.cli.db:app", "Database schema migrations."),
        Lazy("seed", "jarvis.cli.seed:app", "Load data."),
        Lazy("agents", "jarvis.cli.agents:app", "The agent registry."),
        Lazy("users", "jarvis.cli.users:app", "User accounts."),
        Lazy("tokens", "jarvis.cli.tokens:app", "API tokens."),
        Lazy("audit", "jarvis.cli.audit:app", "The tamper-evident audit ledger."),
        Lazy(
            "config",
            "jarvis.cli.config:app",
            "Configuration: keys, values, history, snapshots, export/import, approvals.",
        ),
        Lazy(
            "executions",
            "jarvis.cli.executions:app",
            "Executions: list, show, watch live, and decide on those awaiting approval.",
        ),
    )


cli = typer.Typer(
    name="jarvis",
    cls=JarvisGroup,
    help="JARVIS: governed AI agents for insurance operations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@cli.callback()
def root() -> None:
    """Runs before every command; it does nothing, but makes Typer build ``jarvis`` as a
    group even though the only command registered on it directly is ``version``."""


@cli.command()
def version() -> None:
    """Print the JARVIS version."""
    typer.echo(f"jarvis {__version__}")


def main() -> None:
    cli()
