"""``jarvis config``, run through Typer's runner against SQLite and PostgreSQL.

Each test points the CLI at the backend's migrated test database (``database_url``),
arranges users, agents and keys through the real services, and checks what the commands
print and what the ConfigService then answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from jarvis.cli.app import cli
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.settings import get_settings
from jarvis.wiring import config_service
from tests.conftest import TEST_SECRET_KEY, _empty_postgres
from tests.factories import TEST_ACTOR, create_agent, create_personas, create_user

runner = CliRunner()
SECRET_KEY_NAME = "test.api_key"
SECRET = "sk-live-0123456789"
# create_personas stores each persona's colours (persona.colors) as live values.
PERSONA_COLOURS = 2


# --- harness ------------------------------------------------------------------------------


async def _prepare(url: str) -> None:
    db = Database.from_url(url)
    try:
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
        await create_personas(db)
    finally:
        await db.dispose()


async def _empty(url: str) -> None:
    db = Database.from_url(url)
    try:
        await _empty_postgres(db)
    finally:
        await db.dispose()


def _point_cli_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for name in list(os.environ):
        if name.startswith("JARVIS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JARVIS_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("COLUMNS", "250")  # Rich tables wide enough not to wrap values
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)
    get_settings.cache_clear()


@pytest.fixture
def url(database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The backend's migrated database (built-in keys, admin and underwriter personas),
    with the CLI configured to use it."""
    _point_cli_at(monkeypatch, database_url)
    try:
        asyncio.run(_prepare(database_url))
        yield database_url
    finally:
        get_settings.cache_clear()
        if backend == "postgresql":
            asyncio.run(_empty(database_url))


def jarvis(*args: str) -> Result:
    result = runner.invoke(cli, ["config", *args])
    # Failures must be clean exits with a message, never a stray exception.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    assert "Traceback" not in result.output
    return result


def ok(*args: str) -> Result:
    result = jarvis(*args)
    assert result.exit_code == 0, result.output
    return result


def failed(*args: str, code: int = 1) -> Result:
    result = jarvis(*args)
    assert result.exit_code == code, result.output
    return result


def rows(output: str) -> list[list[str]]:
    """The body rows of the Rich tables in ``output``."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def request_id(result: Result) -> str:
    """The id in "change request #N awaits approval"."""
    match = re.search(r"change request #(\d+) awaits approval", result.output)
    assert match, result.output
    return match.group(1)


def get_json(key: str, *options: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(ok("get", key, "--json", *options).stdout)
    return out


def resolve_now(url: str, key: str, scope: Scope = GLOBAL) -> Any:
    """What a fresh ConfigService (as a server would) answers."""

    async def read() -> Any:
        db = Database.from_url(url)
        try:
            return await config_service(db, poll_seconds=0).get(key, scope)
        finally:
            await db.dispose()

    return asyncio.run(read())


def admin(url: str, email: str) -> str:
    async def make() -> None:
        db = Database.from_url(url)
        try:
            await create_user(db, persona="admin", email=email)
        finally:
            await db.dispose()

    asyncio.run(make())
    return email


def underwriter(url: str, email: str) -> str:
    async def make() -> None:
        db = Database.from_url(url)
        try:
            await create_user(db, persona="underwriter", email=email)
        finally:
            await db.dispose()

    asyncio.run(make())
    return email


def agent_id(url: str) -> int:
    async def make() -> int:
        db = Database.from_url(url)
        try:
            return (await create_agent(db)).id
        finally:
            await db.dispose()

    return asyncio.run(make())


def register_secret_key(url: str) -> None:
    async def register() -> None:
        db = Database.from_url(url)
        try:
            async with unit_of_work(db) as session:
                await config_service(db, poll_seconds=0).register_key(
                    session,
                    key=SECRET_KEY_NAME,
                    description="An API key",
                    schema={"type": "string"},
                    default="",
                    scopes=["global"],
                    secret=True,
                    requires_approval=False,
                    actor=TEST_ACTOR,
                )
        finally:
            await db.dispose()

    asyncio.run(register())


def iso(delta: timedelta) -> str:
    return (utcnow() + delta).isoformat()


# --- keys ---------------------------------------------------------------------------------


def test_keys_lists_the_registry_and_searches(url: str) -> None:
    every = {row[0]: row for row in rows(ok("keys").output)}
    assert {"llm.model", "llm.provider", "agent.max_retries", "persona.colors"} <= set(every)
    assert every["llm.provider"][1] == "global, persona, agent"
    assert every["llm.provider"][2] == '"rules"'
    assert every["llm.provider"][3] == "required"
    assert every["llm.model"][3] == ""

    found = ok("keys", "--search", "LLM")
    assert {row[0] for row in rows(found.output)} == {
        "llm.model",
        "llm.provider",
        "llm.base_url",
        "llm.timeout_seconds",
    }
    assert "Configuration keys (4)" in found.output


def test_keys_search_takes_wildcard_characters_literally(url: str) -> None:
    found = {row[0] for row in rows(ok("keys", "--search", "_").output)}
    assert "agent.max_retries" in found
    assert "llm.model" not in found


# --- set and get --------------------------------------------------------------------------


def test_set_then_get_round_trip(url: str) -> None:
    first = ok("set", "llm.model", "gpt-4o", "--reason", "faster")
    assert "applied version 1 of llm.model at global scope" in first.output

    shown = ok("get", "llm.model")
    assert 'llm.model = "gpt-4o"' in shown.output
    assert "source: global scope, version 1" in shown.output
    assert resolve_now(url, "llm.model") == "gpt-4o"

    # JSON values, and a second write is the next version.
    assert "applied version 1 " in ok("set", "agent.timeout_seconds", "12.5").output
    assert "applied version 2 " in ok("set", "agent.timeout_seconds", "45").output
    body = get_json("agent.timeout_seconds")
    assert body["value"] == 45
    assert body["source"] == "global"
    assert body["version"] == 2
    assert body["secret"] is False
    assert resolve_now(url, "agent.timeout_seconds") == 45

    # A JSON string that looks like another type stays a string.
    ok("set", "llm.model", '"true"')
    assert get_json("llm.model")["value"] == "true"


def test_unset_key_reads_the_registry_default(url: str) -> None:
    shown = ok("get", "agent.max_retries")
    assert "agent.max_retries = 2" in shown.output
    assert "registry default" in shown.output
    body = get_json("agent.max_retries")
    assert (body["source"], body["version"], body["value"]) == ("default", None, 2)


def test_persona_and_agent_scopes_and_explain(url: str) -> None:
    agent = agent_id(url)
    ok("set", "llm.model", "base-model")
    ok("set", "llm.model", "uw-model", "--persona", "underwriter")
    applied = ok("set", "llm.model", "agent-model", "--agent-id", str(agent))
    assert f"at agentId={agent} scope" in applied.output

    assert get_json("llm.model")["value"] == "base-model"
    assert get_json("llm.model", "--persona", "underwriter")["value"] == "uw-model"
    both = get_json("llm.model", "--persona", "underwriter", "--agent-id", str(agent))
    assert (both["value"], both["source"]) == ("agent-model", "agent")
    assert resolve_now(url, "llm.model", Scope("underwriter", agent)) == "agent-model"

    explained = ok("get", "llm.model", "--persona", "underwriter", "--explain")
    assert "Candidates: persona value version 1 wins" in explained.output
    statuses = {row[1]: row[5] for row in rows(explained.output)}
    assert statuses == {"persona=underwriter": "winner", "global": "outranked"}

    as_json = get_json("llm.model", "--persona", "underwriter", "--explain")
    assert [c["status"] for c in as_json["candidates"]] == ["winner", "outranked"]

    # A scope the key does not allow, and scopes naming nothing real.
    not_allowed = failed("set", "ratelimit.login_attempts_per_minute", "5", "--persona", "admin")
    assert "cannot be set at persona scope" in not_allowed.output
    assert "error: the scope (--persona, --agent-id, --workflow-id): " in not_allowed.output
    no_agent = failed("set", "llm.model", "x", "--agent-id", "999999").output
    assert "error: --agent-id: no agent with id 999999" in no_agent
    assert (
        "unknown persona 'astronaut'"
        in failed("set", "llm.model", "x", "--persona", "astronaut").output
    )
    failed("get", "llm.model", "--agent-id", "0", code=2)


# --- user mistakes ------------------------------------------------------------------------


def test_unknown_key_exits_1_with_the_close_match_hint(url: str) -> None:
    for args in (
        ("get", "llm.modle"),
        ("set", "llm.modle", "x"),
        ("history", "llm.modle"),
        ("revert", "llm.modle", "1"),
    ):
        result = failed(*args)
        assert "no configuration key 'llm.modle'" in result.output
        assert "did you mean 'llm.model'" in result.output
        assert len(result.output.strip().splitlines()) == 1  # one clean line


def test_schema_violation_lists_each_error_with_its_json_path(url: str) -> None:
    colours = {
        "primary": "not-a-colour",
        "secondary": "#000",
        "accent": "#000",
        "background": "#000",
        "glassmorphism": "#000",
        "extra": 1,
    }
    result = failed("set", "persona.colors", json.dumps(colours))
    assert result.stdout == ""
    assert "breaks its schema" in result.stderr
    assert "$.primary" in result.stderr
    assert "rule 'pattern'" in result.stderr
    assert "additionalProperties" in result.stderr
    # Each error on its own line under the message, with where it is.
    assert re.search(r"^\s+- VALUE\.primary: .*\$\.primary", result.stderr, re.MULTILINE)
    assert get_json("persona.colors")["source"] == "default"

    # A number below the minimum, given after "--" so it is not read as an option.
    below = failed("set", "agent.max_retries", "--", "-1")
    assert "-1 is less than the minimum of 0" in below.output
    assert get_json("agent.max_retries")["source"] == "default"


def test_malformed_input_is_a_usage_error_not_a_traceback(url: str) -> None:
    assert "not valid JSON" in failed("set", "persona.colors", '{"primary":', code=2).output
    assert "finite" in failed("set", "agent.timeout_seconds", "NaN", code=2).output
    assert "ISO 8601" in failed("get", "llm.model", "--at", "yesterday", code=2).output
    assert (
        "out of range"
        in failed("get", "llm.model", "--at", "0001-01-01T00:00+01:00", code=2).output
    )
    assert get_json("llm.model", "--at", "0001-01-01T00:00:00Z")["source"] == "default"
    assert get_json("llm.model", "--at", "9999-12-31T23:59:59Z")["source"] == "default"
    assert "ISO 8601" in failed("set", "llm.model", "x", "--from", "soon", code=2).output
    assert "ISO 8601" in failed("set", "llm.model", "x", "--to", "2030-13-01", code=2).output
    assert "persona key" in failed("get", "llm.model", "--persona", "Bad Name", code=2).output
    assert get_json("llm.model")["source"] == "default"


def test_markup_like_text_prints_verbatim(url: str) -> None:
    # Rich would read "[/x]" as a closing tag and crash; values are printed as text.
    refused = failed("set", "llm.provider", "red[/x]")
    assert "red[/x]" in refused.output
    ok("set", "llm.model", "x[bold]y")
    assert 'llm.model = "x[bold]y"' in ok("get", "llm.model").output
    assert '"x[bold]y"' in ok("history", "llm.model").output


def test_as_names_an_existing_active_admin(url: str) -> None:
    ghost = failed("set", "llm.model", "x", "--as", "Ghost@Example.com")
    assert "no user with the e-mail 'ghost@example.com'" in ghost.output
    reader = underwriter(url, "reader@example.com")
    refused = failed("set", "llm.model", "x", "--as", reader)
    assert "not an admin" in refused.output
    assert "History of llm.model (0 of 0)" in ok("history", "llm.model").output

    boss = admin(url, "boss@example.com")
    ok("set", "llm.model", "x", "--as", boss.upper())
    [row] = rows(ok("history", "llm.model").output)
    assert row[6] == boss


# --- effective dating ---------------------------------------------------------------------


def test_scheduled_from_applies_only_from_then(url: str) -> None:
    start = utcnow() + timedelta(days=1)
    applied = ok("set", "agent.max_retries", "5", "--from", start.isoformat())
    assert "applied version 1 of agent.max_retries at global scope, effective from" in (
        applied.output
    )

    now = ok("get", "agent.max_retries")
    assert "agent.max_retries = 2" in now.output
    assert "next scheduled change: " + start.isoformat(timespec="seconds") in now.output
    assert resolve_now(url, "agent.max_retries") == 2

    later = get_json("agent.max_retries", "--at", (start + timedelta(hours=1)).isoformat())
    assert (later["value"], later["version"]) == (5, 1)

    explained = ok("get", "agent.max_retries", "--explain")
    [row] = rows(explained.output)
    assert row[5] == "scheduled"
    assert "no live value applies" in explained.output

    # A bounded window, and windows the service refuses.
    ok("set", "agent.max_retries", "7", "--persona", "admin", "--to", iso(timedelta(hours=2)))
    assert get_json("agent.max_retries", "--persona", "admin")["value"] == 7
    gone = get_json("agent.max_retries", "--persona", "admin", "--at", iso(timedelta(hours=3)))
    assert gone["source"] == "default"
    past = failed("set", "llm.model", "x", "--from", "2020-01-01T00:00:00Z")
    assert "in the past" in past.output
    # The CLI names its own option, not the API's field.
    assert "error: --from: is in the past" in past.output
    assert "effectiveFrom" not in past.output
    backwards = failed(
        "set", "llm.model", "x", "--from", iso(timedelta(days=2)), "--to", iso(timedelta(days=1))
    )
    assert "must be later than effectiveFrom" in backwards.output
    assert "error: --to: must be later" in backwards.output


# --- history, revert, deactivate ----------------------------------------------------------


def test_history_revert_and_deactivate(url: str) -> None:
    ok("set", "llm.model", "first", "--reason", "start")
    ok("set", "llm.model", "second")

    history = ok("history", "llm.model")
    assert "History of llm.model (2 of 2)" in history.output
    newest, oldest = rows(history.output)
    assert (newest[1], newest[3], newest[4], newest[5]) == ("set", "2", '"first"', '"second"')
    assert (oldest[3], oldest[7]) == ("1", "start")
    assert "(1 of 2)" in ok("history", "llm.model", "--limit", "1").output

    reverted = ok("revert", "llm.model", "1", "--reason", "back")
    assert "applied version 3 of llm.model at global scope" in reverted.output
    assert get_json("llm.model")["value"] == "first"

    deactivated = ok("deactivate", "llm.model", "3")
    assert "deactivated version 3 of llm.model" in deactivated.output
    body = get_json("llm.model")
    assert (body["value"], body["version"]) == ("second", 2)
    assert resolve_now(url, "llm.model") == "second"

    assert "is not active" in failed("deactivate", "llm.model", "3").output
    assert "has no version 99" in failed("revert", "llm.model", "99").output
    assert (
        "has no version 1 at persona=underwriter"
        in failed("revert", "llm.model", "1", "--persona", "underwriter").output
    )

    # Scoped history: only that scope's rows.
    ok("set", "llm.model", "uw", "--persona", "underwriter")
    scoped = ok("history", "llm.model", "--persona", "underwriter")
    assert [row[2] for row in rows(scoped.output)] == ["persona=underwriter"]
    assert len(rows(ok("history", "llm.model", "--scoped").output)) == 4


def test_secret_values_are_masked_everywhere(url: str) -> None:
    register_secret_key(url)
    keys = {row[0]: row for row in rows(ok("keys", "--search", "api_key").output)}
    assert keys[SECRET_KEY_NAME][4] == "yes"

    applied = ok("set", SECRET_KEY_NAME, SECRET)
    assert "applied version 1" in applied.output
    assert SECRET not in applied.output
    for result in (
        ok("get", SECRET_KEY_NAME),
        ok("get", SECRET_KEY_NAME, "--json"),
        ok("get", SECRET_KEY_NAME, "--explain"),
        ok("history", SECRET_KEY_NAME),
        ok("export"),
    ):
        assert SECRET not in result.output
        assert "********" in result.output
    assert get_json(SECRET_KEY_NAME)["secret"] is True
    assert resolve_now(url, SECRET_KEY_NAME) == SECRET


# --- snapshots ----------------------------------------------------------------------------


def test_snapshot_list_diff_and_restore(url: str) -> None:
    ok("set", "llm.model", "a")
    taken = ok("snapshot", "base", "--description", "before the change")
    match = re.search(rf"snapshot #(\d+) 'base' taken: {1 + PERSONA_COLOURS} values", taken.output)
    assert match, taken.output
    base_id = match.group(1)
    assert "already exists" in failed("snapshot", "base").output

    ok("set", "llm.model", "b")
    ok("set", "agent.max_retries", "4")
    [listed] = rows(ok("snapshots").output)
    assert listed[:4] == [base_id, "base", listed[2], str(1 + PERSONA_COLOURS)]
    assert listed[5] == "before the change"

    for ref in ("base", base_id):
        diff = ok("diff", ref)
        assert "from snapshot 'base' to the live values" in diff.output
        changes = {row[1]: row for row in rows(diff.output)}
        assert changes["llm.model"][0] == "changed"
        assert (changes["llm.model"][3], changes["llm.model"][4]) == ('"a"', '"b"')
        assert changes["agent.max_retries"][0] == "added"
        assert f"1 added, 0 removed, 1 changed, {PERSONA_COLOURS} unchanged" in diff.output

    ok("snapshot", "after")
    between = ok("diff", "base", "--against", "after")
    assert "to snapshot 'after'" in between.output
    assert "1 added, 0 removed, 1 changed" in between.output
    unchanged = ok("diff", "after").output
    assert f"0 added, 0 removed, 0 changed, {2 + PERSONA_COLOURS} unchanged" in unchanged

    missing = failed("diff", "bsae")
    assert "no snapshot with id or name 'bsae'" in missing.output
    assert "did you mean 'base'" in missing.output
    assert "no snapshot" in failed("restore", "9999").output

    dry = ok("restore", "base", "--dry-run")
    assert "dry run: nothing was changed" in dry.output
    assert "0 added, 1 removed, 1 changed" in dry.output
    assert get_json("llm.model")["value"] == "b"

    restored = ok("restore", "base", "--reason", "roll back")
    assert "restored snapshot 'base'" in restored.output
    assert get_json("llm.model")["value"] == "a"
    assert get_json("agent.max_retries")["source"] == "default"
    assert resolve_now(url, "llm.model") == "a"
    back = ok("diff", "base").output
    assert f"0 added, 0 removed, 0 changed, {1 + PERSONA_COLOURS} unchanged" in back


# --- export / import ----------------------------------------------------------------------


def test_export_import_round_trip_in_yaml(url: str, tmp_path: Path) -> None:
    ok("set", "llm.model", "exported")
    ok("set", "llm.model", "uw-exported", "--persona", "underwriter")
    ok("set", "agent.max_retries", "7")
    target = tmp_path / "config.yaml"

    written = ok("export", "--output", str(target))
    assert f"exported {3 + PERSONA_COLOURS} values to {target}" in written.output
    document = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert document["format"] == "jarvis-config"
    assert {
        (v["key"], json.dumps(v["scope"]), json.dumps(v["value"]))
        for v in document["values"]
        if v["key"] != "persona.colors"
    } == {
        ("llm.model", "{}", '"exported"'),
        ("llm.model", '{"persona": "underwriter"}', '"uw-exported"'),
        ("agent.max_retries", "{}", "7"),
    }
    on_stdout = yaml.safe_load(ok("export", "--format", "yaml").stdout)
    assert on_stdout["values"] == document["values"]

    ok("set", "llm.model", "drifted")
    ok("set", "agent.max_retries", "1")
    ok("set", "agent.timeout_seconds", "99")

    dry = ok("import", str(target), "--dry-run")
    assert "dry run: nothing was changed" in dry.output
    assert {row[1] for row in rows(dry.output) if row[0] == "changed"} == {
        "llm.model",
        "agent.max_retries",
    }
    assert get_json("llm.model")["value"] == "drifted"

    imported = ok("import", str(target), "--prune", "--reason", "back to the export")
    assert f"imported {target}" in imported.output
    assert f"0 added, 1 removed, 2 changed, {1 + PERSONA_COLOURS} unchanged" in imported.output
    assert get_json("llm.model")["value"] == "exported"
    assert get_json("llm.model", "--persona", "underwriter")["value"] == "uw-exported"
    assert get_json("agent.max_retries")["value"] == 7
    assert get_json("agent.timeout_seconds")["source"] == "default"
    assert "0 added, 0 removed, 0 changed" in ok("import", str(target)).output

    # A snapshot exports too, in JSON by default.
    ok("snapshot", "s1")
    exported = json.loads(ok("export", "--snapshot", "s1").stdout)
    assert exported["source"]["snapshot"] == "s1"
    assert len(exported["values"]) == 3 + PERSONA_COLOURS


def test_import_is_all_or_nothing_and_reports_each_problem(url: str, tmp_path: Path) -> None:
    document = {
        "format": "jarvis-config",
        "formatVersion": 1,
        "values": [
            {"key": "llm.model", "value": "would-apply"},
            {"key": "no.such", "value": 1},
            {"key": "agent.max_retries", "value": "many"},
        ],
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document), encoding="utf-8")

    refused = failed("import", str(bad))
    assert "nothing was applied" in refused.stderr
    assert "unknown configuration key 'no.such'" in refused.stderr
    assert re.search(r"- values\.2\.value: 'many' is not of type 'integer'", refused.stderr)
    assert get_json("llm.model")["source"] == "default"

    dry = failed("import", str(bad), "--dry-run")
    assert "keys not in the registry: no.such" in dry.stdout
    assert "2 problem(s):" in dry.stdout
    assert "the import would fail" in dry.stderr

    unreadable = tmp_path / "broken.yaml"
    unreadable.write_text("values: [unclosed", encoding="utf-8")
    assert "cannot be parsed" in failed("import", str(unreadable)).output
    wrong_shape = tmp_path / "list.yml"
    wrong_shape.write_text("- 1\n- 2\n", encoding="utf-8")
    assert "must be a jarvis-config export" in failed("import", str(wrong_shape)).output
    unnamed = tmp_path / "config.txt"
    unnamed.write_text(json.dumps(document), encoding="utf-8")
    assert "--format" in failed("import", str(unnamed)).output
    assert "no.such" in failed("import", str(unnamed), "--format", "json").output
    assert "does not exist" in failed("import", str(tmp_path / "none.json"), code=2).output


# --- change requests ----------------------------------------------------------------------


def test_approval_needs_a_second_admin(url: str) -> None:
    first = admin(url, "first.admin@example.com")
    second = admin(url, "second.admin@example.com")

    opened = ok("set", "llm.provider", "openai", "--as", first, "--reason", "try openai")
    request = request_id(opened)
    assert get_json("llm.provider")["value"] == "rules"

    [pending] = rows(ok("requests", "--status", "pending").output)
    assert pending[:5] == [request, "llm.provider", "set", '"openai" at global', "pending"]
    assert (pending[5], pending[7]) == (first, "try openai")

    own = failed("approve", request, "--as", first)
    assert "cannot approve your own change request" in own.output
    assert "--as" in failed("approve", request, code=2).output
    assert "no user" in failed("approve", request, "--as", "nobody@example.com").output

    approved = ok("approve", request, "--as", second, "--reason", "fine")
    assert f"approved change request #{request} (set llm.provider)" in approved.output
    assert get_json("llm.provider")["value"] == "openai"
    assert resolve_now(url, "llm.provider") == "openai"
    [done] = rows(ok("requests", "--status", "approved").output)
    assert done[6] == f"{second}: fine"
    assert "already approved" in failed("approve", request, "--as", second).output

    # A rejection changes nothing.
    again = ok("set", "llm.provider", "rules", "--as", first)
    rejected_id = request_id(again)
    assert "cannot reject your own" in failed("reject", rejected_id, "--as", first).output
    ok("reject", rejected_id, "--as", second, "--reason", "keep openai")
    assert [r[0] for r in rows(ok("requests", "--status", "rejected").output)] == [rejected_id]
    assert get_json("llm.provider")["value"] == "openai"
    assert "no change request 9999" in failed("approve", "9999", "--as", second).output


def test_restoring_a_key_that_needs_approval_opens_a_request(url: str) -> None:
    ok("snapshot", "rules-era")
    opened = ok("set", "llm.provider", "openai")
    ok("approve", request_id(opened), "--as", admin(url, "a@x.io"))
    assert get_json("llm.provider")["value"] == "openai"

    restored = ok("restore", "rules-era", "--as", admin(url, "b@x.io"))
    match = re.search(r"change requests awaiting approval: #(\d+)", restored.output)
    assert match, restored.output
    assert get_json("llm.provider")["value"] == "openai"  # four eyes hold on a restore too
    [pending] = rows(ok("requests", "--status", "pending").output)
    assert pending[:3] == [match.group(1), "llm.provider", "deactivate"]
    assert "cannot approve your own" in failed("approve", match.group(1), "--as", "b@x.io").output

    ok("approve", match.group(1), "--as", "a@x.io")
    assert get_json("llm.provider")["source"] == "default"


def test_requests_opened_by_the_cli_actor_can_be_withdrawn(url: str) -> None:
    opened = ok("set", "llm.provider", "openai")
    request = request_id(opened)
    [row] = rows(ok("requests").output)
    assert row[5] == "cli"

    other = admin(url, "other@example.com")
    assert "only the requester" in failed("withdraw", request, "--as", other).output
    assert f"withdrew change request #{request}" in ok("withdraw", request).output
    [row] = rows(ok("requests", "--status", "withdrawn").output)
    assert row[0] == request
    assert rows(ok("requests", "--status", "pending").output) == []
    assert failed("requests", "--status", "lost", code=2).exit_code == 2


# --- an unmigrated database ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["keys"], ["get", "llm.model"], ["set", "llm.model", "x"], ["snapshots"]]
)
def test_config_commands_on_an_unmigrated_database_say_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    _point_cli_at(monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        result = failed(*command)
    finally:
        get_settings.cache_clear()
    assert "jarvis db upgrade" in result.output
