"""The ``jarvis`` command line, run through Typer's runner against real databases."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from jarvis import __version__
from jarvis.auth.users.passwords import verify_password
from jarvis.db.migrate import head_revision
from jarvis.main import create_app
from jarvis.settings import Settings, get_settings
from tests.cli.invoke import jarvis
from tests.conftest import TEST_SECRET_KEY, create_pg_database, drop_pg_database, worker_suffix

PASSWORD_LINE = re.compile(r"password: (\S+) \(shown once\)")


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A function that points the CLI's settings at a database URL."""
    for name in list(os.environ):
        if name.startswith("JARVIS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JARVIS_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables wide enough not to wrap names

    def point_at(url: str) -> str:
        monkeypatch.setenv("JARVIS_DATABASE_URL", url)
        get_settings.cache_clear()
        return url

    get_settings.cache_clear()
    yield point_at
    get_settings.cache_clear()


@pytest.fixture
def db_file(tmp_path: Path, configure: Any) -> Path:
    """A SQLite file (not yet created) that the CLI is configured to use."""
    path = tmp_path / "cli.db"
    configure(f"sqlite+aiosqlite:///{path}")
    return path


def upgraded(db_file: Path) -> Path:
    result = jarvis("db", "upgrade")
    assert result.exit_code == 0, result.output
    return db_file


def seeded(db_file: Path) -> Result:
    upgraded(db_file)
    result = jarvis("seed", "demo")
    assert result.exit_code == 0, result.output
    return result


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _api(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = create_app(Settings(database_url=url, secret_key=TEST_SECRET_KEY, log_level="WARNING"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.request(method, path, **kwargs)


def api(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return asyncio.run(_api(url, method, path, **kwargs))


# --- db ---------------------------------------------------------------------------------


def test_db_current_on_an_empty_database_exits_1(db_file: Path) -> None:
    db_file.touch()  # `db current` never creates the file (tests/cli/test_cli_startup.py)
    result = jarvis("db", "current")
    assert result.exit_code == 1
    assert "empty" in result.output
    assert f"behind head {head_revision()}" in result.output


def test_db_upgrade_then_current_is_at_head(db_file: Path) -> None:
    result = jarvis("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "upgraded" in result.output

    current = jarvis("db", "current")
    assert current.exit_code == 0, current.output
    assert "at head" in current.output
    assert head_revision() in current.output
    tables = {row[0] for row in query(db_file, "SELECT name FROM sqlite_master")}
    assert {"agents", "users", "audit_trails"} <= tables


def test_db_downgrade_base_removes_the_schema(db_file: Path) -> None:
    upgraded(db_file)

    result = jarvis("db", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert "downgraded to base" in result.output

    tables = {row[0] for row in query(db_file, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert not tables & {"agents", "users", "audit_trails", "role_personas"}
    current = jarvis("db", "current")
    assert current.exit_code == 1
    assert "empty" in current.output


# --- seed -------------------------------------------------------------------------------


def test_seed_demo_adds_agents_once(db_file: Path) -> None:
    first = seeded(db_file)
    match = re.search(r"(\d+) personas, (\d+) agents, (\d+) users added", first.output)
    assert match, first.output
    agents_added = int(match.group(2))
    assert agents_added > 0
    [(stored,)] = query(db_file, "SELECT count(*) FROM agents")
    assert stored == agents_added
    # One password per demo user, plus the first admin's, created with the demo.
    assert len(PASSWORD_LINE.findall(first.output)) == int(match.group(3)) + 1
    assert "admin login: admin@jarvis.local password:" in first.output
    [(admins,)] = query(db_file, "SELECT count(*) FROM users WHERE persona = 'admin'")
    assert admins == 1

    second = jarvis("seed", "demo")
    assert second.exit_code == 0, second.output
    assert "0 personas, 0 agents, 0 users added" in second.output
    assert PASSWORD_LINE.search(second.output) is None
    assert query(db_file, "SELECT count(*) FROM agents") == [(agents_added,)]


def test_seed_demo_if_empty_skips_a_populated_database(db_file: Path) -> None:
    seeded(db_file)
    [(before,)] = query(db_file, "SELECT count(*) FROM audit_trails")

    result = jarvis("seed", "demo", "--if-empty")
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    assert query(db_file, "SELECT count(*) FROM audit_trails") == [(before,)]


def test_seed_demo_with_history_runs_the_demo_users_commands(db_file: Path) -> None:
    upgraded(db_file)
    result = jarvis("seed", "demo", "--if-empty", "--with-history")
    assert result.exit_code == 0, result.output
    assert "demo history: 4 commands run (3 completed, 1 awaiting approval)" in result.output
    rows = query(
        db_file,
        "SELECT created_by, persona, status FROM agent_executions ORDER BY created_at",
    )
    assert [(r[0], r[2]) for r in rows] == [
        ("john.stevens@jarvis.local", "completed"),
        ("john.stevens@jarvis.local", "completed"),
        ("rachel.thompson@jarvis.local", "completed"),
        ("rachel.thompson@jarvis.local", "awaiting_approval"),
    ]
    assert [r[1] for r in rows] == ["it_support"] * 2 + ["underwriter"] * 2
    # A second run on the populated database adds nothing.
    again = jarvis("seed", "demo", "--if-empty", "--with-history")
    assert "skipped" in again.output
    assert len(query(db_file, "SELECT execution_id FROM agent_executions")) == 4


def test_seed_demo_if_empty_seeds_an_empty_database(db_file: Path) -> None:
    upgraded(db_file)
    result = jarvis("seed", "demo", "--if-empty")
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output
    [(agents,)] = query(db_file, "SELECT count(*) FROM agents")
    assert agents > 0


@pytest.mark.parametrize(
    "command",
    [
        ["seed", "demo"],
        ["agents", "list"],
        ["audit", "verify"],
        ["users", "create", "--email", "a@example.com", "--persona", "admin"],
        ["tokens", "create", "--user", "a@example.com", "--name", "ci"],
    ],
)
def test_data_commands_on_an_unmigrated_database_say_to_upgrade(
    db_file: Path, command: list[str]
) -> None:
    result = jarvis(*command)
    assert result.exit_code == 1
    assert "jarvis db upgrade" in result.output
    assert "Traceback" not in result.output
    assert not query(db_file, "SELECT name FROM sqlite_master WHERE name = 'agents'")


# --- agents -----------------------------------------------------------------------------


def _table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def test_agents_list_filters_by_layer(db_file: Path) -> None:
    seeded(db_file)
    role_names = {name for (name,) in query(db_file, "SELECT name FROM agents WHERE layer='Role'")}
    other_names = {
        name for (name,) in query(db_file, "SELECT name FROM agents WHERE layer <> 'Role'")
    }
    assert role_names and other_names

    result = jarvis("agents", "list", "--layer", "Role")
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.output)
    assert {row[1] for row in rows} == {"Role"}
    assert {row[2] for row in rows} == role_names
    assert f"Agents ({len(role_names)} of {len(role_names)})" in result.output


def test_agents_list_without_filter_shows_every_layer(db_file: Path) -> None:
    seeded(db_file)
    layers = {layer for (layer,) in query(db_file, "SELECT DISTINCT layer FROM agents")}
    result = jarvis("agents", "list")
    assert result.exit_code == 0, result.output
    assert {row[1] for row in _table_rows(result.output)} == layers
    assert len(layers) > 1


def test_agents_list_rejects_an_unknown_layer(db_file: Path) -> None:
    upgraded(db_file)
    result = jarvis("agents", "list", "--layer", "Basement")
    assert result.exit_code == 2
    assert "Basement" in result.output


# --- users and tokens -------------------------------------------------------------------


def test_users_create_prints_a_password_that_signs_in(db_file: Path) -> None:
    seeded(db_file)

    result = jarvis(
        "users", "create", "--email", "New.Person@Example.com", "--persona", "underwriter"
    )
    assert result.exit_code == 0, result.output
    passwords = PASSWORD_LINE.findall(result.output)
    assert len(passwords) == 1
    password = passwords[0]
    assert "new.person@example.com" in result.output

    [(stored_hash, persona)] = query(
        db_file,
        "SELECT password_hash, persona FROM users WHERE email = ?",
        "new.person@example.com",
    )
    assert persona == "underwriter"
    assert password not in stored_hash
    assert verify_password(stored_hash, password)

    url = sqlite_url(db_file)
    ok = api(
        url, "POST", "/api/login", json={"email": "new.person@example.com", "password": password}
    )
    assert ok.status_code == 200, ok.text
    wrong = api(
        url, "POST", "/api/login", json={"email": "new.person@example.com", "password": "nope-nope"}
    )
    assert wrong.status_code == 401


def test_users_create_with_a_given_password_prints_none(db_file: Path) -> None:
    seeded(db_file)
    result = jarvis(
        "users",
        "create",
        "--email",
        "x@example.com",
        "--persona",
        "admin",
        "--password",
        "s3cret-pw!",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD_LINE.search(result.output) is None
    assert "s3cret-pw!" not in result.output
    [(stored_hash,)] = query(db_file, "SELECT password_hash FROM users WHERE email='x@example.com'")
    assert verify_password(stored_hash, "s3cret-pw!")


def test_users_create_duplicate_exits_1_with_a_message(db_file: Path) -> None:
    seeded(db_file)
    assert (
        jarvis("users", "create", "--email", "dup@example.com", "--persona", "admin").exit_code == 0
    )

    again = jarvis("users", "create", "--email", "DUP@example.com", "--persona", "admin")
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert "dup@example.com" in again.output
    assert "Traceback" not in again.output
    assert query(db_file, "SELECT count(*) FROM users WHERE email='dup@example.com'") == [(1,)]


def test_users_create_with_unknown_persona_exits_1(db_file: Path) -> None:
    seeded(db_file)
    result = jarvis("users", "create", "--email", "p@example.com", "--persona", "astronaut")
    assert result.exit_code == 1
    assert "persona" in result.output
    assert query(db_file, "SELECT count(*) FROM users WHERE email='p@example.com'") == [(0,)]


@pytest.fixture(params=["sqlite", "postgresql"])
def unseeded_url(request: pytest.FixtureRequest, tmp_path: Path, configure: Any) -> str:
    """A database migrated by `jarvis db upgrade` and never seeded: no personas at all."""
    if request.param == "sqlite":
        url = configure(f"sqlite+aiosqlite:///{tmp_path / 'unseeded.db'}")
    else:
        url = configure(request.getfixturevalue("fresh_pg_url"))
    upgrade = jarvis("db", "upgrade")
    assert upgrade.exit_code == 0, upgrade.output
    return str(url)


def test_users_create_admin_on_a_database_without_personas(unseeded_url: str) -> None:
    """The admin persona is built in: creating the first admin needs no `jarvis seed`."""
    result = jarvis(
        "users", "create", "--email", "first@example.com", "--persona", "admin",
        "--password", "s3cret-pw!x",
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    signed_in = api(
        unseeded_url,
        "POST",
        "/api/login",
        json={"email": "first@example.com", "password": "s3cret-pw!x"},
    )
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["persona"] == "admin"
    # Other personas are data: still refused, naming what exists, and nothing is created.
    other = jarvis("users", "create", "--email", "u@example.com", "--persona", "underwriter")
    assert other.exit_code == 1
    assert "unknown persona 'underwriter'; registered personas: admin" in other.output


def test_tokens_create_prints_a_token_that_authenticates(db_file: Path) -> None:
    seeded(db_file)
    assert (
        jarvis("users", "create", "--email", "bot@example.com", "--persona", "admin").exit_code == 0
    )

    result = jarvis("tokens", "create", "--user", "bot@example.com", "--name", "ci")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1  # the token alone on stdout, for scripts
    token = lines[0]
    assert token.startswith("jv_")
    assert "shown only once" in result.stderr
    assert token not in result.stderr

    response = api(
        sqlite_url(db_file), "GET", "/api/user", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "bot@example.com"
    bad = api(sqlite_url(db_file), "GET", "/api/user", headers={"Authorization": "Bearer jv_nope"})
    assert bad.status_code == 401


def test_tokens_create_for_an_unknown_user_exits_1(db_file: Path) -> None:
    upgraded(db_file)
    result = jarvis("tokens", "create", "--user", "ghost@example.com", "--name", "ci")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "ghost@example.com" in result.output
    assert query(db_file, "SELECT count(*) FROM api_tokens") == [(0,)]


# --- audit ------------------------------------------------------------------------------


def test_audit_verify_intact_then_compromised_after_an_edit(db_file: Path) -> None:
    seeded(db_file)
    [(count,)] = query(db_file, "SELECT count(*) FROM audit_trails")
    assert count > 3

    intact = jarvis("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    assert f"{count} entries verified" in intact.output

    [(victim,)] = query(db_file, "SELECT id FROM audit_trails ORDER BY id LIMIT 1 OFFSET 2")
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE audit_trails SET actor = 'mallory' WHERE id = ?", (victim,))

    broken = jarvis("audit", "verify")
    assert broken.exit_code == 2
    assert "compromised" in broken.output
    assert f"entry {victim} " in broken.output


def test_audit_verify_on_an_empty_ledger(db_file: Path) -> None:
    upgraded(db_file)
    result = jarvis("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "intact: 0 entries verified" in result.output


# --- version and serve ------------------------------------------------------------------


def test_version(configure: Any) -> None:
    result = jarvis("version")
    assert result.exit_code == 0
    assert result.output.strip() == f"jarvis {__version__}"


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stand in for the uvicorn server so ``serve`` never starts one in tests: each entry is
    the server ``serve`` would have run (or uvicorn.run's arguments, with ``--reload``)."""
    calls: list[Any] = []
    monkeypatch.setattr("jarvis.cli.serve.uvicorn.run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(
        "jarvis.cli.serve._Server.run", lambda server, *a, **kw: calls.append(server)
    )
    return calls


def test_serve_refuses_an_unmigrated_database(db_file: Path, uvicorn_calls: list[Any]) -> None:
    result = jarvis("serve")
    assert result.exit_code == 1
    assert "jarvis db upgrade" in result.output
    assert uvicorn_calls == []


def test_serve_on_a_migrated_database_bootstraps_an_admin(
    db_file: Path, uvicorn_calls: list[Any]
) -> None:
    upgraded(db_file)
    result = jarvis("serve", "--port", "8123")
    assert result.exit_code == 0, result.output
    [server] = uvicorn_calls
    assert server.config.port == 8123
    assert server.config.ws_per_message_deflate is False
    assert server.jarvis.title == "JARVIS"  # the app it serves, told first of a shutdown
    assert "http://127.0.0.1:8123" in result.output

    [password] = PASSWORD_LINE.findall(result.output)
    [(stored_hash, persona)] = query(
        db_file, "SELECT password_hash, persona FROM users WHERE email='admin@jarvis.local'"
    )
    assert persona == "admin"
    assert verify_password(stored_hash, password)

    # A second start keeps the existing admin and shows no password.
    again = jarvis("serve")
    assert again.exit_code == 0, again.output
    assert PASSWORD_LINE.search(again.output) is None
    assert query(db_file, "SELECT count(*) FROM users") == [(1,)]


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture
def fresh_pg_url(postgres_available: bool) -> Iterator[str]:
    if not postgres_available:
        pytest.skip("PostgreSQL is unreachable")
    name = f"jarvis_test_cli_{worker_suffix()}"
    url = create_pg_database(name)
    try:
        yield url
    finally:
        drop_pg_database(name)


def test_cli_against_postgres(fresh_pg_url: str, configure: Any) -> None:
    configure(fresh_pg_url)

    assert jarvis("db", "current").exit_code == 1
    upgrade = jarvis("db", "upgrade")
    assert upgrade.exit_code == 0, upgrade.output
    assert "at head" in jarvis("db", "current").output

    seed = jarvis("seed", "demo")
    assert seed.exit_code == 0, seed.output
    match = re.search(r"(\d+) agents", seed.output)
    assert match and int(match.group(1)) > 0
    assert "0 agents" in jarvis("seed", "demo").output

    listed = jarvis("agents", "list", "--layer", "Role")
    assert listed.exit_code == 0, listed.output
    rows = _table_rows(listed.output)
    assert rows and {row[1] for row in rows} == {"Role"}

    created = jarvis("users", "create", "--email", "pg@example.com", "--persona", "underwriter")
    assert created.exit_code == 0, created.output
    token = jarvis("tokens", "create", "--user", "pg@example.com", "--name", "ci").stdout.strip()
    me = api(fresh_pg_url, "GET", "/api/user", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "pg@example.com"

    verify = jarvis("audit", "verify")
    assert verify.exit_code == 0, verify.output
    assert "intact" in verify.output

    down = jarvis("db", "downgrade", "base")
    assert down.exit_code == 0, down.output
    assert "empty" in jarvis("db", "current").output
