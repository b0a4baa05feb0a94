"""Running the ``jarvis`` command in process, as the CLI tests do."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from jarvis.cli.app import cli

runner = CliRunner()


def jarvis(*args: str) -> Result:
    """``jarvis ARGS...``; a failure must be a clean exit with a message, never a stray
    exception."""
    result = runner.invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    return result
