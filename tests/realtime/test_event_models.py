"""The typed events (``jarvis.orchestration.events``) match what the engine really stores.

The engine builds events as plain dicts; this test runs the demo's commands and a few
more executions that end every way there is (retried, failed, cancelled, rejected,
skipped, resumed), then validates every stored event against its model and requires that
the model names every member the event has. An event type or member added to the engine
without its model fails here. Also: the client messages' parsing and its error codes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from jarvis.auth.users import passwords
from jarvis.db.session import unit_of_work
from jarvis.demo.service import seed_demo
from jarvis.orchestration.events import (
    EVENT_MODELS,
    EVENT_TYPES,
    AwaitingApproval,
    EventModel,
    final_status,
    parse_event,
)
from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from jarvis.orchestration.models import ExecutionEvent
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.orchestration.service import create_execution
from jarvis.realtime.protocol import SubscribeExecution
from jarvis.realtime.ws import BadClientMessage, parse_client_message
from tests.factories import TEST_ACTOR
from tests.orchestration.conftest import World


def test_every_event_type_has_a_model() -> None:
    assert set(EVENT_MODELS) == set(EVENT_TYPES)
    assert set(TERMINAL_EVENTS) < set(EVENT_TYPES)
    assert "awaiting_approval" not in TERMINAL_EVENTS


def undeclared(model: EventModel) -> set[str]:
    """Members of the event (at any depth of typed models) that its model does not name."""
    extra = set(model.model_extra or {})
    if isinstance(model, AwaitingApproval):
        for step in model.steps:
            extra |= {f"steps.{name}" for name in step.model_extra or {}}
    return extra


async def run_everything(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executions that between them store every type of event."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    async with unit_of_work(world.db) as session:
        await seed_demo(session, config=world.config)
    # The demo: a submission paused for approval (skips, awaiting_approval), then
    # approved (step_approved, execution_resumed); another one rejected; the IT incident.
    review = "Review the new submission from Acme Logistics"
    approved = await world.post(review, persona="underwriter")
    rejected = await world.post(review, persona="underwriter")
    await world.post("Laptop won't connect to VPN, urgent", persona="it_support")
    await world.post("Which agents are waiting for approval?")
    await world.settle()
    assert (await world.action(approved, "approve", json={"comment": "ok"})).status_code == 200
    assert (await world.action(rejected, "reject", json={"comment": "no"})).status_code == 200
    await world.settle()

    # Retries and a failure (fail_fast cancels the sibling still running).
    await world.set("agent.retry_backoff_seconds", 0)
    await world.set("agent.max_retries", 1)
    await world.agent("Process", "Broken", config={"failAttempts": 5})
    await world.agent("Process", "Sibling", config={"delayMs": 10_000})
    failed = await world.post("break")
    await world.settle()
    assert (await world.show(failed))["status"] == "failed"

    # Cancelled while queued (nobody dispatches it).
    async with unit_of_work(world.db) as session:
        queued = await create_execution(
            session, ExecutionCreate(command="never run", persona="admin"), actor=TEST_ACTOR
        )
    assert (await world.action(queued.execution_id, "cancel")).status_code == 200


async def test_every_stored_event_fits_its_model(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_everything(world, monkeypatch)
    async with unit_of_work(world.db, write=False) as session:
        rows = (await session.scalars(select(ExecutionEvent))).all()

    seen: set[str] = set()
    for row in rows:
        body: dict[str, Any] = row.payload
        typed = parse_event(body)
        assert isinstance(typed, EVENT_MODELS[row.type]), row.type
        assert undeclared(typed) == set(), (row.type, undeclared(typed))
        # The typed form writes back what was stored (camelCase members, same values).
        dumped = json.loads(typed.model_dump_json(by_alias=True))
        assert set(dumped) >= set(body), (row.type, set(body) - set(dumped))
        assert (typed.seq, typed.execution_id, typed.type) == (row.seq, row.execution_id, row.type)
        assert (final_status(body) is not None) == (row.type in TERMINAL_EVENTS)
        seen.add(row.type)
    assert seen == set(EVENT_TYPES), set(EVENT_TYPES) - seen


def test_a_model_refuses_an_event_that_lost_a_member() -> None:
    body = {
        "type": "step_started",
        "executionId": "e1",
        "seq": 4,
        "at": "2026-01-01T00:00:00+00:00",
        "stepId": 1,
        "agentId": 2,
        "agentName": "A",
        "layer": "Role",
        "kind": "echo",
        "attempt": 1,
    }
    assert parse_event(body).type == "step_started"
    for member in ("attempt", "layer", "seq", "executionId"):
        with pytest.raises(ValueError, match=member):
            parse_event({k: v for k, v in body.items() if k != member})
    with pytest.raises(ValueError, match="layer"):
        parse_event(body | {"layer": "Basement"})
    with pytest.raises(ValueError):
        parse_event(body | {"type": "step_teleported"})


# --- client messages ---------------------------------------------------------------------


def test_client_messages_parse_in_both_spellings() -> None:
    message = parse_client_message('{"type": "subscribe-execution", "executionId": "e1"}')
    assert message == SubscribeExecution(type="subscribe-execution", execution_id="e1")
    assert message.after_seq == 0
    snake = parse_client_message(
        '{"type": "subscribe-execution", "execution_id": "e1", "after_seq": 4}'
    )
    assert snake.after_seq == 4


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("{", "invalid_json", "not valid JSON"),
        ('"ping"', "bad_message", "JSON object"),
        ("{}", "bad_message", "type: Field required"),
        ('{"type": null}', "bad_message", "type: Field required"),
        ('{"type": ["ping"]}', "bad_message", "type: must be a string"),
        ('{"type": "subscribe"}', "unknown_type", "subscribe-execution"),
        ('{"type": "subscribe-execution", "executionId": 7}', "bad_message", "executionId:"),
        ('{"type": "auth", "token": ""}', "bad_message", "token:"),
        ('{"type": "ping", "afterSeq": 1}', "bad_message", "afterSeq:"),
    ],
)
def test_bad_client_messages_say_what_is_wrong(raw: str, code: str, words: str) -> None:
    with pytest.raises(BadClientMessage) as caught:
        parse_client_message(raw)
    error = json.loads(caught.value.text)
    assert (error["type"], error["code"]) == ("error", code)
    assert words in error["message"], error["message"]
