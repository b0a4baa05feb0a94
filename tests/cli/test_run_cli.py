"""``jarvis run`` and ``jarvis executions``, through Typer's runner on a migrated SQLite file.

The demo is seeded once per module into a copy of the migrated template (its users'
passwords hashed with cheap argon2 parameters: they are not under test here); every test
works on its own copy of that file. Commands run in-process with the real engine and the
offline rules provider.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from rich.console import Console

import jarvis.cli.run as run_module
from jarvis.auth.users import passwords
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.service import seed_demo
from jarvis.settings import get_settings
from jarvis.wiring import config_service
from tests.cli.invoke import jarvis
from tests.conftest import TEST_SECRET_KEY
from tests.factories import create_agent

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SUBMISSION = "Review the new submission from Acme Logistics"


async def _seed(path: Path) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        config = config_service(db, poll_seconds=0)
        async with unit_of_work(db) as session:
            await ensure_builtin_registry(session)
        async with unit_of_work(db) as session:
            await seed_demo(session, config=config)
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def seeded_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The migrated template with the demo seeded into it, once for the module."""
    path = tmp_path_factory.mktemp("seeded") / "demo.db"
    shutil.copyfile(sqlite_template, path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        asyncio.run(_seed(path))
    return path


@pytest.fixture
def demo_db(
    seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A copy of the seeded demo database that the CLI is configured to use."""
    path = tmp_path / "jarvis.db"
    shutil.copyfile(seeded_template, path)
    for name in list(os.environ):
        if name.startswith("JARVIS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JARVIS_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("JARVIS_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("COLUMNS", "200")  # Rich output wide enough not to wrap lines
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


async def add_agent(path: Path, **values: Any) -> None:
    db = Database.from_url(f"sqlite+aiosqlite:///{path}")
    try:
        await create_agent(db, **values)
    finally:
        await db.dispose()


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def execution_id_in(output: str) -> str:
    found = UUID.search(output)
    assert found, output
    return found.group(0)


def test_run_pauses_for_approval_and_approve_resumes_it(demo_db: Path) -> None:
    result = jarvis("run", SUBMISSION, "--persona", "underwriter")

    assert result.exit_code == 3, result.output
    execution_id = execution_id_in(result.output)
    out = result.output
    # Live progress, layer by layer, in order.
    positions = [out.index(f"{layer} layer:") for layer in ("Experience", "Meta Brain", "Role")]
    assert positions == sorted(positions)
    assert "Intent Router completed" in out
    assert "plan: intent submission_review (confidence 0.86, decided by Intent Router)" in out
    assert "Agent Registry Inspector skipped: not in the plan: serves intents agent_status" in out
    assert "Broker Email Response Agent awaiting_approval" in out
    # Then the plan, the proposal and how to decide on it.
    assert "Plan: intent submission_review" in out
    assert "Proposed by Broker Email Response Agent" in out
    assert "Subject: Acme Logistics - information needed to complete our review" in out
    assert f"Execution {execution_id}: awaiting_approval" in out
    assert f"jarvis executions approve {execution_id}" in out
    assert f"POST /api/agent-executions/{execution_id}/approve" in out
    assert query(demo_db, "SELECT status, created_by FROM agent_executions") == [
        ("awaiting_approval", "cli")
    ]
    assert query(demo_db, "SELECT source, persona FROM commands") == [("cli", "underwriter")]

    listed = jarvis("executions", "list", "--status", "awaiting_approval")
    assert listed.exit_code == 0, listed.output
    assert execution_id in listed.output
    assert "Executions (1 of 1)" in listed.output
    assert "Executions (0 of 0)" in jarvis("executions", "list", "--persona", "admin").output

    shown = jarvis("executions", "show", execution_id)
    assert shown.exit_code == 0, shown.output
    assert "Steps by layer" in shown.output
    assert "request_information (key_data_missing; property-risk-appetite v1)" in shown.output
    assert "insured_name Acme Logistics | missing: year_built" in shown.output
    assert "intent submission_review (0.86)" in shown.output

    # The admin's question finds the waiting execution.
    status = jarvis("run", "Which agents are waiting for approval?", "--persona", "admin")
    assert status.exit_code == 0, status.output
    assert (
        "2 agents await governance approval (Persona Generation Agent, Voice Interface "
        "Agent); 1 execution awaits a human decision."
    ) in status.output
    assert execution_id in status.output

    approved = jarvis("executions", "approve", execution_id, "--comment", "send it")
    assert approved.exit_code == 0, approved.output
    assert "resumed at the Interface layer" in approved.output
    assert "Submission review: Acme Logistics" in approved.output
    assert "Dear colleague," in approved.output
    assert f"Execution {execution_id}: completed" in approved.output
    assert query(
        demo_db,
        "SELECT decided_by, decision_comment FROM agent_execution_steps "
        "WHERE agent_name = 'Broker Email Response Agent'",
    ) == [("cli", "send it")]

    again = jarvis("executions", "approve", execution_id)
    assert again.exit_code == 1
    assert "is completed, not awaiting_approval" in again.output


def test_run_json_answers_like_the_api(demo_db: Path) -> None:
    result = jarvis(
        "run", "Laptop won't connect to VPN, urgent", "--persona", "it_support", "--json"
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["status"] == "completed"
    assert document["plan"]["intent"] == "it_incident"
    assert [group["layer"] for group in document["layers"]] == [
        "Experience",
        "Meta Brain",
        "Role",
        "Process",
        "System",
        "Interface",
    ]
    by_agent = {step["agentName"]: step for step in document["steps"]}
    assert by_agent["IT Incident Triage Workflow"]["output"]["outcome"] == "P3"
    assert by_agent["Agent Registry Inspector"]["status"] == "skipped"
    assert document["result"]["response"].startswith(
        "Incident ticket: Laptop won't connect to VPN, urgent\nPriority P3"
    )

    shown = jarvis("executions", "show", document["executionId"], "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["result"] == document["result"]


def test_run_draws_a_live_layer_table_on_a_terminal(
    demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200, color_system=None)
    monkeypatch.setattr(run_module, "console", terminal)

    result = jarvis("run", "Which agents are waiting for approval?", "--persona", "admin")

    assert result.exit_code == 0, result.output
    drawn = screen.getvalue()
    assert "Layers" in drawn
    assert "Agent Registry Inspector" in drawn
    assert "2 agents await governance approval" in drawn
    assert "Execution " in drawn and ": completed" in drawn


def test_invalid_input_exits_2_and_creates_nothing(demo_db: Path) -> None:
    unknown = jarvis("run", "hello", "--persona", "nobody")
    assert unknown.exit_code == 2
    # Named by the option the user typed, not by a request body's field.
    assert (
        "--persona: unknown persona 'nobody'; registered personas: admin, it_support, underwriter"
        in unknown.output
    )
    assert "body." not in unknown.output and "body:" not in unknown.output
    empty = jarvis("run", "   ", "--persona", "admin")
    assert empty.exit_code == 2
    assert "the command is empty" in empty.output
    too_long = jarvis("run", "x" * 4001, "--persona", "admin")
    assert too_long.exit_code == 2
    assert query(demo_db, "SELECT count(*) FROM agent_executions") == [(0,)]

    missing = jarvis("executions", "show", "00000000-0000-0000-0000-000000000000")
    assert missing.exit_code == 1
    assert "no execution with id 00000000-0000-0000-0000-000000000000" in missing.output
    stranger = jarvis("run", "hello", "--persona", "admin", "--as", "nobody@example.com")
    assert stranger.exit_code == 1
    assert "no user with the e-mail 'nobody@example.com'" in stranger.output


def test_run_as_a_user_records_them_and_keeps_them_to_their_persona(demo_db: Path) -> None:
    rachel = "rachel.thompson@jarvis.local"
    foreign = jarvis("run", "hello", "--persona", "it_support", "--as", rachel)
    assert foreign.exit_code == 1
    assert "acts as 'underwriter' and cannot run commands as 'it_support'" in foreign.output

    own = jarvis("run", SUBMISSION, "--persona", "underwriter", "--as", rachel)
    assert own.exit_code == 3, own.output
    assert query(demo_db, "SELECT created_by FROM agent_executions") == [(rachel,)]

    rejected = jarvis(
        "executions", "reject", execution_id_in(own.output), "--comment", "not now", "--as", rachel
    )
    assert rejected.exit_code == 0, rejected.output
    assert f"rejected (rejected by {rachel}: not now)" in rejected.output


def test_failed_and_cancelled_executions_exit_1(demo_db: Path) -> None:
    # An agent whose template does not exist fails its step, with no retries.
    asyncio.run(
        add_agent(
            demo_db,
            name="Broken Banner Agent",
            layer="Experience",
            persona="admin",
            kind="template",
            config={"template": "no-such-template"},
        )
    )
    assert jarvis("config", "set", "agent.max_retries", "0").exit_code == 0

    failed = jarvis("run", "Which agents are waiting for approval?", "--persona", "admin")
    assert failed.exit_code == 1, failed.output
    assert "Broken Banner Agent failed" in failed.output
    assert "the template 'no-such-template' does not exist" in failed.output
    execution_id = execution_id_in(failed.output)
    assert f"Execution {execution_id}: failed" in failed.output
    assert "Error: Experience layer failed: Broken Banner Agent" in failed.output
    assert jarvis("executions", "show", execution_id).exit_code == 0

    paused = jarvis("run", SUBMISSION, "--persona", "underwriter")
    assert paused.exit_code == 3
    waiting = execution_id_in(paused.output)
    cancelled = jarvis("executions", "cancel", waiting)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Execution {waiting}: cancelled" in cancelled.output
    assert "cancelled" in jarvis("executions", "show", waiting).output
    twice = jarvis("executions", "cancel", waiting)
    assert twice.exit_code == 1
    assert "is already cancelled" in twice.output
