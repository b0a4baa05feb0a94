"""How the CLI starts: a command's module is imported only when that command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from jarvis import __version__
from jarvis.cli.app import JarvisGroup, cli, version
from jarvis.cli.lazy import Lazy, LazyCommand

runner = CliRunner()
# What `jarvis --help`, `jarvis version` and `import jarvis.cli` must not load.
WEB_STACK = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "openai",
    "uvicorn",
    "jinja2",
    "taskiq",
    "redis",
)
ENTRIES = (*JarvisGroup.commands_table, *JarvisGroup.groups_table)


def fresh_python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter; its last stderr line lists the web-stack packages
    it loaded (as JSON)."""
    report = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted("
        f"{{m.partition('.')[0] for m in sys.modules}} & {set(WEB_STACK)!r}"
        ")), file=sys.stderr))\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", report + code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def loaded(process: subprocess.CompletedProcess[str]) -> list[str]:
    names: list[str] = json.loads(process.stderr.strip().splitlines()[-1])
    return names


# --- imports ----------------------------------------------------------------------------


def test_importing_the_cli_loads_no_web_stack(tmp_path: Path) -> None:
    process = fresh_python("import jarvis.cli\nimport jarvis.cli.app", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    assert loaded(process) == []


@pytest.mark.parametrize("args", [["--help"], ["version"]], ids=["help", "version"])
def test_help_and_version_load_no_web_stack(tmp_path: Path, args: list[str]) -> None:
    process = fresh_python(
        "sys.argv = ['jarvis', *sys.argv[1:]]\nfrom jarvis.cli.app import main\nmain()",
        *args,
        cwd=tmp_path,
    )
    assert process.returncode == 0, process.stderr
    assert loaded(process) == []
    if args == ["version"]:
        assert process.stdout == f"jarvis {__version__}\n"
    else:
        for name in [entry.name for entry in ENTRIES] + ["version"]:
            assert f" {name} " in process.stdout, name


# --- the lazy registration --------------------------------------------------------------


def eager_cli() -> typer.Typer:
    """The root as it was built before registration went lazy: every module imported and
    added the ordinary Typer way."""
    app = typer.Typer(
        name="jarvis", help=cli.info.help, no_args_is_help=True, pretty_exceptions_enable=False
    )
    for entry in JarvisGroup.commands_table:
        target = entry.resolve()
        assert not isinstance(target, typer.Typer)
        app.command(entry.name)(target)
    app.command()(version)
    for entry in JarvisGroup.groups_table:
        group = entry.resolve()
        assert isinstance(group, typer.Typer)
        app.add_typer(group, name=entry.name)
    return app


def test_the_root_help_is_what_eager_registration_shows() -> None:
    lazy = runner.invoke(cli, ["--help"], env={"COLUMNS": "120"})
    eager = runner.invoke(eager_cli(), ["--help"], env={"COLUMNS": "120"})
    assert lazy.exit_code == eager.exit_code == 0, lazy.output
    assert lazy.output == eager.output
    for entry in ENTRIES:
        assert f" {entry.name} " in lazy.output
        assert entry.help in lazy.output


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
def test_each_lazy_command_is_defined_by_its_module(entry: Lazy) -> None:
    root = typer.main.get_command(cli)
    assert isinstance(root, JarvisGroup)
    stand_in = root.commands[entry.name]
    assert isinstance(stand_in, LazyCommand)
    command = stand_in.load()
    assert command.name == entry.name
    assert not isinstance(command, LazyCommand)
    if entry in JarvisGroup.groups_table:
        assert isinstance(command, TyperGroup) and command.commands
    else:
        assert command.callback is not None
    # The help line the root shows is the first paragraph of the command's own help.
    first = (command.help or "").split("\n\n")[0].replace("\n", " ").strip()
    assert entry.help == first


def test_a_lazy_group_shows_its_own_help_and_commands_still_suggest() -> None:
    result = runner.invoke(cli, ["db", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for name in ("upgrade", "downgrade", "current"):
        assert name in result.output
    typo = runner.invoke(cli, ["confg", "keys"])
    assert typo.exit_code == 2
    assert "Did you mean 'config'?" in typo.output
