"""How the CLI starts: a command's module is imported only when that command runs, and a
data command never creates a database, naming the file or URL it looked at instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy.engine import make_url
from typer.core import TyperGroup
from typer.testing import CliRunner

from jarvis import __version__
from jarvis.cli.app import JarvisGroup, cli, version
from jarvis.cli.lazy import Lazy, LazyCommand
from jarvis.db.engine import describe_database, sqlite_file
from jarvis.db.migrate import head_revision
from jarvis.settings import get_settings
from tests.cli.invoke import jarvis
from tests.conftest import create_pg_database, drop_pg_database, worker_suffix

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
PASSWORD = "s3cret-pw"  # noqa: S105 - put into test URLs to check that it never shows


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


# --- data commands never create a database ----------------------------------------------


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty current folder and the default settings (no JARVIS_* variables)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    for name in list(os.environ):
        if name.startswith("JARVIS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "300")  # error lines unwrapped
    monkeypatch.chdir(folder)
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def flat(output: str) -> str:
    return " ".join(output.split())


DATA_COMMANDS = {
    "run": ["run", "hello", "--persona", "admin"],
    "executions": ["executions", "list"],
    "agents": ["agents", "list"],
    "users": ["users", "create", "--email", "a@example.com", "--persona", "admin"],
    "tokens": ["tokens", "list", "--user", "a@example.com"],
    "config": ["config", "keys"],
    "audit": ["audit", "verify"],
    "seed": ["seed", "demo"],
    "db current": ["db", "current"],
    "db downgrade": ["db", "downgrade", "base"],
    "worker": ["worker"],
}


def test_how_a_database_is_named(empty_folder: Path) -> None:
    here = empty_folder.resolve()
    assert sqlite_file("sqlite+aiosqlite:///./jarvis.db") == here / "jarvis.db"
    assert sqlite_file("sqlite+aiosqlite:////srv/x/j.db") == Path("/srv/x/j.db")
    assert sqlite_file("sqlite+aiosqlite:///file:j.db?mode=rw&uri=true") == here / "j.db"
    for in_memory in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        assert sqlite_file(in_memory) is None
    assert sqlite_file("sqlite+aiosqlite:///file:m?mode=memory&uri=true") is None
    assert sqlite_file("postgresql+asyncpg://u@h/db") is None
    assert describe_database("sqlite+aiosqlite:///./jarvis.db") == str(here / "jarvis.db")
    named = describe_database(f"postgresql+asyncpg://jarvis:{PASSWORD}@db.internal:5432/jarvis")
    assert named == "postgresql+asyncpg://jarvis:***@db.internal:5432/jarvis"


@pytest.mark.parametrize("command", DATA_COMMANDS.values(), ids=DATA_COMMANDS.keys())
def test_data_commands_in_an_empty_folder_create_nothing_and_name_the_file(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("JARVIS_REDIS_URL", "redis://127.0.0.1:1/0")  # the worker needs one
    result = jarvis(*command)
    assert result.exit_code == 1, result.output
    message = flat(result.output)
    assert f"no database at {(empty_folder / 'jarvis.db').resolve()}" in message
    assert "sqlite+aiosqlite:///./jarvis.db" in message
    assert "jarvis db upgrade" in message
    assert list(empty_folder.iterdir()) == []


def test_db_upgrade_creates_the_database_it_names(empty_folder: Path) -> None:
    result = jarvis("db", "upgrade")
    assert result.exit_code == 0, result.output
    path = (empty_folder / "jarvis.db").resolve()
    assert str(path) in flat(result.output)
    assert path.is_file()
    listed = jarvis("agents", "list")
    assert listed.exit_code == 0, listed.output


def test_a_schema_behind_head_is_named(empty_folder: Path) -> None:
    assert jarvis("db", "upgrade").exit_code == 0
    down = jarvis("db", "downgrade", "--", "-1")
    assert down.exit_code == 0, down.output
    result = jarvis("audit", "verify")
    assert result.exit_code == 1
    message = flat(result.output)
    path = (empty_folder / "jarvis.db").resolve()
    assert f"the schema of {path} is at revision" in message
    assert f"needs {head_revision()}" in message


@pytest.fixture(params=["sqlite", "postgresql"])
def schemaless_url(
    request: pytest.FixtureRequest, empty_folder: Path, postgres_available: bool
) -> Iterator[tuple[str, str]]:
    """A database that exists with no schema, and how the CLI must name it."""
    if request.param == "sqlite":
        path = empty_folder / "empty.db"
        path.touch()
        yield f"sqlite+aiosqlite:///{path}", str(path.resolve())
        return
    if not postgres_available:
        pytest.skip("PostgreSQL is unreachable")
    name = f"jarvis_test_schemaless_{worker_suffix()}"
    url = make_url(create_pg_database(name)).set(password=PASSWORD)
    try:
        yield url.render_as_string(hide_password=False), url.render_as_string(hide_password=True)
    finally:
        drop_pg_database(name)


def test_a_database_without_schema_is_named(
    schemaless_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch, empty_folder: Path
) -> None:
    url, named = schemaless_url
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)
    get_settings.cache_clear()
    before = sorted(empty_folder.iterdir())
    for command in (["agents", "list"], ["config", "keys"], ["run", "hi", "--persona", "admin"]):
        result = jarvis(*command)
        assert result.exit_code == 1, result.output
        message = flat(result.output)
        assert f"the database at {named} has no JARVIS schema yet" in message
        assert PASSWORD not in result.output
    current = jarvis("db", "current")
    assert current.exit_code == 1
    assert "empty (no schema)" in current.output
    if url.startswith("sqlite"):
        # No second database beside it (WAL side files may come and go).
        assert [p for p in sorted(empty_folder.iterdir()) if p.suffix == ".db"] == before


def test_an_unreachable_postgres_database_is_named_without_its_password(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch, postgres_available: bool
) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL is unreachable")
    name = f"jarvis_test_absent_{worker_suffix()}"
    drop_pg_database(name)
    url = make_url(create_pg_database(name)).set(password=PASSWORD)
    drop_pg_database(name)
    monkeypatch.setenv("JARVIS_DATABASE_URL", url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    for command in (["audit", "verify"], ["db", "current"]):
        result = jarvis(*command)
        assert result.exit_code == 1, result.output
        message = flat(result.output)
        assert f"cannot open the database at {url.render_as_string(hide_password=True)}" in message
        assert f'database "{name}" does not exist' in message
        assert PASSWORD not in result.output
