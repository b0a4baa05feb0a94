"""The engine through the public surface: layers, parallelism, retries, timeouts, failure
policies, governance, the Meta Brain's plan, and commit-before-publish.

Executions are started with ``POST /api/agent-executions`` on the real app (its in-process
dispatcher and engine) and inspected with ``GET``; on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jarvis.agents.models import Agent
from jarvis.config.rules import TemplateIn, save_template
from jarvis.core.identity import Actor
from jarvis.core.layers import LAYER_ORDER
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import GAP, CapturingBus, MemoryBus, Message
from jarvis.main import create_app
from jarvis.orchestration.events import CONTROL_CHANNEL, EVENT_TYPES, EVENTS_CHANNEL
from jarvis.orchestration.models import AgentExecution, ExecutionEvent
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.orchestration.service import create_execution
from jarvis.settings import Settings
from tests.factories import TEST_ACTOR
from tests.orchestration.conftest import (
    WAIT,
    World,
    make_world,
    names_of,
    step,
    step_events,
    types_of,
)

LAYERS = [layer.value for layer in LAYER_ORDER]

INTENT_LABELS = [
    {"name": "submission", "keywords": ["submission", "underwrite"]},
    {"name": "it_incident", "keywords": ["vpn", "laptop"]},
]


async def save_text(db: Database, name: str, body: str) -> None:
    async with unit_of_work(db) as session:
        await save_template(session, TemplateIn(name=name, body=body), actor=TEST_ACTOR)


# --- six layers ---------------------------------------------------------------------------


async def test_a_command_runs_through_the_six_layers_in_order(world: World) -> None:
    await world.agent("Interface", "Reply", kind="template", config={"template": "test.reply"})
    await world.agent("System", "Sys", config={"input": "persona"})
    await world.agent("Process", "Flow")
    await world.agent("Role", "Desk", config={"input": "outputs.greeter.input"})
    await world.agent("Meta Brain", "Planner")
    await world.agent("Experience", "Greeter")
    await save_text(world.db, "test.reply", "Done: {{ command }} for {{ outputs.sys.input }}")

    execution = await world.run("Review the file")
    events = await world.events(execution["executionId"])

    assert execution["status"] == "completed", execution
    assert execution["error"] is None and execution["errorCode"] is None
    assert execution["layersDone"] == 6
    assert execution["startedAt"] and execution["completedAt"]
    assert execution["durationMs"] is not None and execution["durationMs"] >= 0
    # Events: each layer opens, runs its agent, closes; the layers in the documented order.
    per_layer = ["layer_started", "step_started", "step_completed", "layer_completed"]
    assert types_of(events) == [
        "execution_queued",
        "execution_started",
        *per_layer * 6,
        "execution_completed",
    ]
    assert [e["layer"] for e in events if e["type"] == "layer_started"] == LAYERS
    assert [e["layer"] for e in events if e["type"] == "layer_completed"] == LAYERS
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert set(types_of(events)) <= set(EVENT_TYPES)
    # Every step persisted, in layer order, with its input and output.
    assert names_of(execution) == ["Greeter", "Planner", "Desk", "Flow", "Sys", "Reply"]
    assert [s["layer"] for s in execution["steps"]] == LAYERS
    for s in execution["steps"]:
        assert s["status"] == "completed", s
        assert s["attempt"] == 1
        assert s["error"] is None
        assert s["startedAt"] and s["completedAt"] and s["durationMs"] is not None
        assert s["input"]["command"] == "Review the file"
        assert s["input"]["persona"] == "admin"
    assert [layer["layer"] for layer in execution["layers"]] == LAYERS
    assert [[s["agentName"] for s in layer["steps"]] for layer in execution["layers"]] == [
        ["Greeter"],
        ["Planner"],
        ["Desk"],
        ["Flow"],
        ["Sys"],
        ["Reply"],
    ]
    # Each agent sees the earlier layers' outputs (and only those).
    assert step(execution, "Greeter")["input"]["availableOutputs"] == []
    assert step(execution, "Desk")["input"]["availableOutputs"] == ["greeter", "planner"]
    assert step(execution, "Desk")["output"] == {"input": "Review the file"}
    assert step(execution, "Sys")["output"] == {"input": "admin"}
    assert step(execution, "Reply")["agentKind"] == "template"
    assert step(execution, "Reply")["output"] == {
        "text": "Done: Review the file for admin",
        "template": "test.reply",
        "version": 1,
    }
    # The plan is stored (no Meta Brain agent decided an intent) and the result is the
    # Interface layer's text with every agent's output.
    assert execution["plan"] == {
        "intent": None,
        "confidence": None,
        "decidedBy": None,
        "layers": {
            layer: {
                "agents": [{"agentId": step(execution, name)["agentId"], "name": name}],
                "excluded": [],
            }
            for layer, name in (("Process", "Flow"), ("System", "Sys"), ("Interface", "Reply"))
        },
    }
    assert execution["result"]["response"] == "Done: Review the file for admin"
    assert execution["result"]["intent"] is None
    assert execution["result"]["outputs"] == {
        "greeter": {"input": "Review the file"},
        "planner": {"input": "Review the file"},
        "desk": {"input": "Review the file"},
        "flow": {"input": "Review the file"},
        "sys": {"input": "admin"},
        "reply": step(execution, "Reply")["output"],
    }
    closing = events[-1]
    assert closing["status"] == "completed"
    assert closing["response"] == "Done: Review the file for admin"


async def test_the_response_without_interface_text(world: World) -> None:
    # No agents at all (the underwriter has none yet): every layer opens and closes.
    execution = await world.run("nobody home", "underwriter", world.uw_headers)
    events = await world.events(execution["executionId"])
    assert execution["status"] == "completed"
    assert execution["steps"] == []
    assert execution["result"] == {"response": None, "intent": None, "outputs": {}}
    assert types_of(events) == [
        "execution_queued",
        "execution_started",
        *["layer_started", "layer_completed"] * 6,
        "execution_completed",
    ]

    # Outputs without any text: no response.
    await world.agent("Role", "Desk")
    await world.agent("Interface", "Out")
    execution = await world.run("ping")
    assert execution["status"] == "completed"
    assert execution["result"] == {
        "response": None,
        "intent": None,
        "outputs": {"desk": {"input": "ping"}, "out": {"input": "ping"}},
    }

    # No text from the Interface layer: the last text any layer produced answers.
    await save_text(world.db, "test.role", "Role says {{ command }}")
    await world.agent(
        "Role", "Uw Desk", persona="underwriter", kind="template", config={"template": "test.role"}
    )
    await world.agent("Interface", "Uw Out", persona="underwriter")
    execution = await world.run("hi", "underwriter", world.uw_headers)
    assert execution["result"]["response"] == "Role says hi"


# --- parallelism --------------------------------------------------------------------------


async def test_max_parallel_agents_bounds_the_agents_running_together(world: World) -> None:
    for name in ("A", "B", "C"):
        await world.agent("Process", name, config={"delayMs": 100})

    await world.set("execution.max_parallel_agents", 3)
    execution = await world.run("together")
    assert execution["status"] == "completed", execution
    order = step_events(await world.events(execution["executionId"]), "Process")
    # All three start before any finishes.
    assert [kind for kind, _ in order] == ["step_started"] * 3 + ["step_completed"] * 3
    assert sorted(name for _, name in order[:3]) == ["A", "B", "C"]
    assert sorted(name for _, name in order[3:]) == ["A", "B", "C"]

    await world.set("execution.max_parallel_agents", 1)
    execution = await world.run("one by one")
    assert execution["status"] == "completed", execution
    order = step_events(await world.events(execution["executionId"]), "Process")
    # Each agent starts only when the one before it has finished.
    assert [kind for kind, _ in order] == ["step_started", "step_completed"] * 3, order
    for started, completed in zip(order[::2], order[1::2], strict=True):
        assert started[1] == completed[1]


# --- retries and timeouts -----------------------------------------------------------------


async def test_failed_attempts_are_retried_up_to_max_retries(world: World) -> None:
    await world.set("agent.retry_backoff_seconds", 0)
    await world.set("agent.max_retries", 2)
    await world.agent("Role", "Flaky", config={"failAttempts": 1})
    stubborn = await world.agent("Process", "Stubborn", config={"failAttempts": 5})
    # At agent scope: the global values do not apply to this agent.
    await world.set("agent.max_retries", 3, Scope(agent_id=stubborn.id))
    await world.set("agent.retry_backoff_seconds", 0.01, Scope(agent_id=stubborn.id))

    execution = await world.run("try")
    events = await world.events(execution["executionId"])

    # One failed attempt, then a retry that completes.
    flaky = step(execution, "Flaky")
    assert (flaky["status"], flaky["attempt"], flaky["error"]) == ("completed", 2, None)
    assert flaky["output"] == {"input": "try"}
    role = [e for e in events if e["type"].startswith("step_") and e["layer"] == "Role"]
    assert [(e["type"], e["attempt"]) for e in role] == [
        ("step_started", 1),
        ("step_failed", 1),
        ("step_started", 2),
        ("step_completed", 2),
    ]
    assert role[1]["willRetry"] is True
    assert role[1]["retryInSeconds"] == 0
    assert role[1]["error"] == "echo was told to fail attempt 1"

    # Failing every time: max_retries + 1 attempts, then the step fails.
    assert execution["status"] == "failed"
    assert execution["errorCode"] == "step_failed"
    s = step(execution, "Stubborn")
    assert (s["status"], s["attempt"]) == ("failed", 4)
    assert s["error"] == "echo was told to fail attempt 4"
    assert s["completedAt"] is not None and s["output"] is None
    failures = [e for e in events if e["type"] == "step_failed" and e["layer"] == "Process"]
    assert [(e["attempt"], e["willRetry"]) for e in failures] == [
        (1, True),
        (2, True),
        (3, True),
        (4, False),
    ]
    # The back-off doubles from one retry to the next.
    assert [e["retryInSeconds"] for e in failures[:3]] == [0.01, 0.02, 0.04]
    assert "Stubborn" in execution["error"]
    assert "echo was told to fail attempt 4" in execution["error"]


async def test_a_step_that_runs_too_long_times_out(world: World) -> None:
    # The slow agent's timeout is set for it alone: an earlier agent slower than that
    # timeout but under the global default completes.
    await world.agent("Role", "Patient", config={"delayMs": 300})
    slow = await world.agent("Process", "Slow", config={"delayMs": 5000})
    await world.set("agent.timeout_seconds", 0.2, Scope(agent_id=slow.id))
    await world.set("agent.max_retries", 0, Scope(agent_id=slow.id))

    execution = await world.run("wait")

    assert step(execution, "Patient")["status"] == "completed"
    s = step(execution, "Slow")
    assert s["status"] == "failed"
    assert s["attempt"] == 1
    assert "timed out" in s["error"]
    assert "0.2" in s["error"]
    assert execution["status"] == "failed"
    assert "timed out" in execution["error"]


# --- failure policy -----------------------------------------------------------------------


async def failing_layer(world: World, sibling_delay_ms: int) -> None:
    await world.set("agent.retry_backoff_seconds", 0)
    await world.set("agent.max_retries", 0)
    await world.agent("Role", "Before")
    await world.agent("Process", "Broken", config={"failAttempts": 5})
    await world.agent("Process", "Sibling", config={"delayMs": sibling_delay_ms})
    await world.agent("System", "Later")
    await world.agent("Interface", "Last")


async def test_fail_fast_cancels_the_siblings_and_stops_the_execution(world: World) -> None:
    await failing_layer(world, sibling_delay_ms=10000)

    execution = await world.run("go")
    events = await world.events(execution["executionId"])

    assert execution["status"] == "failed"
    assert execution["errorCode"] == "step_failed"
    assert execution["error"].startswith("Process layer failed: Broken")
    assert step(execution, "Before")["status"] == "completed"
    assert step(execution, "Broken")["status"] == "failed"
    sibling = step(execution, "Sibling")
    assert sibling["status"] == "cancelled"
    assert "another agent of the layer failed" in sibling["error"]
    # Later layers never ran.
    assert names_of(execution, "System") == [] and names_of(execution, "Interface") == []
    assert execution["layersDone"] == 3
    assert "System" not in [e.get("layer") for e in events]
    assert ("step_cancelled", "Sibling") in step_events(events, "Process")
    assert types_of(events)[-1] == "execution_failed"
    assert events[-1]["error"] == execution["error"]

    # Siblings still waiting for a parallelism slot are settled too: nothing is left
    # 'pending' or 'running' in an execution that has ended.
    await world.set("execution.max_parallel_agents", 1)
    await world.agent("Process", "Waiting", config={"delayMs": 10000})
    execution = await world.run("go one by one")
    assert execution["status"] == "failed"
    assert step(execution, "Broken")["status"] == "failed"  # first in registry order
    for name in ("Sibling", "Waiting"):
        s = step(execution, name)
        assert (s["status"], s["output"]) == ("cancelled", None), s
        assert s["error"] == "cancelled: another agent of the layer failed"


async def test_continue_policy_completes_the_layer_with_failures(world: World) -> None:
    await failing_layer(world, sibling_delay_ms=50)
    await world.set("execution.failure_policy", {"Process": "continue"})

    execution = await world.run("go")
    events = await world.events(execution["executionId"])

    assert execution["status"] == "completed", execution
    assert step(execution, "Broken")["status"] == "failed"
    assert step(execution, "Sibling")["status"] == "completed"
    assert step(execution, "Later")["status"] == "completed"
    assert step(execution, "Last")["status"] == "completed"
    process_done = [e for e in events if e["type"] == "layer_completed" and e["layer"] == "Process"]
    assert [(e["status"], e["failed"]) for e in process_done] == [("completed_with_failures", 1)]
    others = [e["status"] for e in events if e["type"] == "layer_completed"]
    assert others.count("completed") == 5
    # The failed agent's output is not in the context; the others' are.
    assert "broken" not in execution["result"]["outputs"]
    assert "sibling" in execution["result"]["outputs"]


# --- governance and personas --------------------------------------------------------------


async def test_governance_status_persona_and_enabled_decide_who_takes_part(world: World) -> None:
    await world.agent("Process", "Blocked One", governance_status="blocked")
    await world.agent("Process", "Rejected One", governance_status="rejected")
    await world.agent("Process", "Pending One", governance_status="pending")
    await world.agent("Process", "Approved One", governance_status="approved")
    await world.agent("Process", "Under Review", governance_status="under_review")
    await world.agent("Process", "Switched Off", enabled=False)
    await world.agent("System", "Underwriting Only", persona="underwriter")
    await world.agent("System", "Everyone", persona="underwriter", serves_all_personas=True)

    execution = await world.run("check")
    events = await world.events(execution["executionId"])

    assert execution["status"] == "completed"
    assert sorted(names_of(execution)) == sorted(
        [
            "Approved One",
            "Blocked One",
            "Pending One",
            "Rejected One",
            "Under Review",
            "Everyone",
        ]
    )
    for name, status in (("Blocked One", "blocked"), ("Rejected One", "rejected")):
        s = step(execution, name)
        assert s["status"] == "skipped"
        assert s["error"] == f"governance status is '{status}': {status} agents never run"
        assert s["input"] is None and s["output"] is None and s["startedAt"] is None
    for name in ("Approved One", "Pending One", "Under Review", "Everyone"):
        assert step(execution, name)["status"] == "completed"
    skipped = [e for e in events if e["type"] == "step_skipped"]
    assert sorted(e["agentName"] for e in skipped) == ["Blocked One", "Rejected One"]
    assert all("never run" in e["reason"] for e in skipped)
    # The plan lists the barred agents as excluded, with the reason.
    excluded = execution["plan"]["layers"]["Process"]["excluded"]
    assert sorted(e["name"] for e in excluded) == ["Blocked One", "Rejected One"]

    # The underwriter's execution sees their own agents and those serving everyone.
    execution = await world.run("check", persona="underwriter", headers=world.uw_headers)
    assert sorted(names_of(execution)) == ["Everyone", "Underwriting Only"]


# --- the Meta Brain's plan ----------------------------------------------------------------


async def planned_world(world: World) -> None:
    await world.agent(
        "Meta Brain",
        "Intent Router",
        kind="classifier",
        config={"outputKey": "intent", "labels": INTENT_LABELS},
    )
    await world.agent("Process", "Intake", config={"intents": ["submission"]})
    await world.agent("Process", "Helpdesk", config={"intents": ["it_incident"]})
    await world.agent("Process", "Generalist", config={"input": "plan.intent"})
    await world.agent("System", "Vpn Check", config={"intents": ["it_incident"]})
    await world.agent(
        "System", "Rating", config={"intents": ["submission", "renewal"], "input": "plan"}
    )
    await world.agent("Role", "Role Desk", config={"intents": ["it_incident"]})
    await world.agent("Interface", "Mailer", config={"intents": ["it_incident"]})


async def test_the_meta_brain_plan_leaves_out_agents_of_other_intents(world: World) -> None:
    await planned_world(world)

    execution = await world.run("Please underwrite the new submission from Acme")
    events = await world.events(execution["executionId"])

    assert execution["status"] == "completed", execution
    router = step(execution, "Intent Router")
    assert router["output"]["intent"] == "submission"
    plan = execution["plan"]
    assert plan["intent"] == "submission"
    assert plan["confidence"] == router["output"]["confidence"]
    assert plan["decidedBy"] == {"agentId": router["agentId"], "name": "Intent Router"}
    assert [a["name"] for a in plan["layers"]["Process"]["agents"]] == ["Generalist", "Intake"]
    assert [a["name"] for a in plan["layers"]["Process"]["excluded"]] == ["Helpdesk"]
    assert [a["name"] for a in plan["layers"]["System"]["agents"]] == ["Rating"]
    assert [a["name"] for a in plan["layers"]["System"]["excluded"]] == ["Vpn Check"]
    for name in ("Helpdesk", "Vpn Check"):
        s = step(execution, name)
        assert s["status"] == "skipped"
        assert s["error"] == (
            "not in the plan: serves intents it_incident; the command's intent is 'submission'"
        )
    for name in ("Intake", "Generalist", "Rating"):
        assert step(execution, name)["status"] == "completed"
    # Intents filter the Process, System and Interface layers, not the earlier ones.
    assert step(execution, "Role Desk")["status"] == "completed"
    assert step(execution, "Mailer")["status"] == "skipped"
    assert [a["name"] for a in plan["layers"]["Interface"]["excluded"]] == ["Mailer"]
    assert set(plan["layers"]) == {"Process", "System", "Interface"}
    # Agents receive the plan: in their input and in the context.
    assert step(execution, "Generalist")["output"] == {"input": "submission"}
    assert step(execution, "Intake")["input"]["intent"] == "submission"
    assert step(execution, "Rating")["output"]["input"]["intent"] == "submission"
    assert execution["result"]["intent"] == "submission"
    meta_done = [e for e in events if e["type"] == "layer_completed" and e["layer"] == "Meta Brain"]
    assert meta_done[0]["plan"] == plan

    # Another command, another plan.
    execution = await world.run("My laptop lost the VPN")
    assert execution["plan"]["intent"] == "it_incident"
    assert step(execution, "Helpdesk")["status"] == "completed"
    assert step(execution, "Vpn Check")["status"] == "completed"
    assert step(execution, "Mailer")["status"] == "completed"
    assert step(execution, "Intake")["status"] == "skipped"
    assert step(execution, "Rating")["error"] == (
        "not in the plan: serves intents submission, renewal; the command's intent is 'it_incident'"
    )

    # No intent decided (no label matches): only agents serving every intent run.
    execution = await world.run("Good morning")
    assert execution["status"] == "completed"
    assert execution["plan"]["intent"] is None
    assert step(execution, "Generalist")["status"] == "completed"
    assert step(execution, "Generalist")["output"] == {"input": None}
    for name in ("Intake", "Helpdesk", "Vpn Check", "Rating", "Mailer"):
        s = step(execution, name)
        assert s["status"] == "skipped"
        assert s["error"].startswith("not in the plan: serves intents")
        assert s["error"].endswith("no intent was decided")


# --- commit before publish ----------------------------------------------------------------


async def stored_type(db: Database, message: Message) -> str | None:
    """The type of the stored event with the message's execution and seq (None: none)."""
    async with unit_of_work(db, write=False) as session:
        found: str | None = await session.scalar(
            select(ExecutionEvent.type).where(
                ExecutionEvent.execution_id == message["executionId"],
                ExecutionEvent.seq == message["seq"],
            )
        )
    return found


END: Message = {"type": "test.end"}


class CheckingBus(CapturingBus):
    """Checks, as each execution event is published, that the database already has it."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.not_stored: list[Message] = []

    async def publish(self, channel: str, message: Message) -> None:
        if channel == EVENTS_CHANNEL and await stored_type(self.db, message) != message["type"]:
            self.not_stored.append(message)
        await super().publish(channel, message)

    def events(self, execution_id: str) -> list[Message]:
        return [
            message
            for channel, message in self.published
            if channel == EVENTS_CHANNEL and message["executionId"] == execution_id
        ]


async def test_every_event_is_stored_before_it_is_published(
    db: Database, settings: Settings
) -> None:
    bus = CheckingBus(db)
    app = create_app(settings, database=db, bus=bus)
    received: list[Message] = []
    unstored: list[Message] = []

    async def subscriber(ready: asyncio.Event) -> None:
        # Another reader of the channel: each event it receives is in the database.
        async with bus.subscribe(EVENTS_CHANNEL) as subscription:
            ready.set()
            async for message in subscription:
                if message is GAP or not isinstance(message, dict):
                    continue
                if message == END:
                    return
                if await stored_type(db, message) != message["type"]:
                    unstored.append(message)
                received.append(message)

    async with app.router.lifespan_context(app):
        ready = asyncio.Event()
        listener = asyncio.create_task(subscriber(ready))
        await ready.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            w = await make_world(app, c, db)
            await w.set("agent.retry_backoff_seconds", 0)
            for name in ("P1", "P2", "P3"):
                await w.agent("Process", name, config={"delayMs": 20})
            await w.agent("Process", "P4", config={"failAttempts": 1})
            await w.agent("Process", "P5", governance_status="blocked")
            await w.agent("Role", "Checker", config={"requiresApproval": True})
            await w.agent("System", "Slowpoke", config={"delayMs": 10000})

            async with w.watch() as watch:
                # Approved, then cancelled while an agent runs.
                first = await w.post("first")
                await watch.until(first, "awaiting_approval")
                approved = await w.action(first, "approve", json={"comment": "fine"})
                assert approved.status_code == 200, approved.text
                await watch.until(first, "step_started", agentName="Slowpoke")
                cancelled = await w.action(first, "cancel")
                assert cancelled.status_code == 202, cancelled.text
                await w.settle()
                # Rejected.
                second = await w.post("second")
                await watch.until(second, "awaiting_approval")
                rejected = await w.action(second, "reject", json={"comment": "no"})
                assert rejected.status_code == 200, rejected.text
                await w.settle()
                stored = {eid: await w.events(eid) for eid in (first, second)}
        # The subscription is first in, first out: once the end marker arrives, the
        # subscriber has checked every event published before it.
        await MemoryBus.publish(bus, EVENTS_CHANNEL, END)
        async with asyncio.timeout(WAIT):
            await listener
    await bus.close()

    assert bus.not_stored == []
    assert unstored == []
    for execution_id, events in stored.items():
        published = bus.events(execution_id)
        # Each stored event published once, in seq order 1..n, exactly as stored.
        assert [m["seq"] for m in published] == list(range(1, len(events) + 1))
        assert published == events
        assert [m["seq"] for m in received if m["executionId"] == execution_id] == [
            m["seq"] for m in published
        ]
    assert types_of(stored[first])[-1] == "execution_cancelled"
    assert types_of(stored[second])[-1] == "execution_rejected"
    assert {"step_approved", "step_skipped", "step_failed", "step_cancelled"} <= set(
        types_of(stored[first])
    )
    assert "step_rejected" in types_of(stored[second])


# --- configuration scopes -----------------------------------------------------------------


async def test_step_policies_resolve_per_workflow_persona_and_agent(world: World) -> None:
    await world.set("agent.retry_backoff_seconds", 0)
    await world.set("agent.max_retries", 1)
    once = await world.agent("Process", "Once", config={"failAttempts": 1})
    # The workflow's value beats the agent's, which beats the persona's and the global one.
    await world.set("agent.max_retries", 0, Scope(workflow_id=7))
    await world.set("agent.max_retries", 3, Scope(agent_id=once.id))
    await world.set("agent.max_retries", 0, Scope(persona="admin"))

    def posted(workflow_id: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"command": "scoped", "persona": "admin"}
        if workflow_id is not None:
            body["workflowId"] = workflow_id
        return body

    results = []
    for workflow_id in (None, 7):
        response = await world.client.post(
            "/api/agent-executions", json=posted(workflow_id), headers=world.admin_headers
        )
        assert response.status_code == 202, response.text
        await world.settle()
        results.append(await world.show(response.json()["executionId"]))

    without, within = results
    assert step(without, "Once")["status"] == "completed"  # the agent's 3 retries
    assert step(within, "Once")["status"] == "failed"  # the workflow's 0 retries
    assert within["workflowId"] == 7
    # The failure policy reads the persona's scope: 'continue' for the admin persona.
    await world.set("execution.failure_policy", {"Process": "continue"}, Scope(persona="admin"))
    response = await world.client.post(
        "/api/agent-executions", json=posted(7), headers=world.admin_headers
    )
    await world.settle()
    again = await world.show(response.json()["executionId"])
    assert step(again, "Once")["status"] == "failed"
    assert again["status"] == "completed"


# --- robustness ---------------------------------------------------------------------------


async def test_an_agent_whose_kind_or_config_went_bad_fails_its_step(world: World) -> None:
    await world.set("agent.max_retries", 0)
    await world.set("execution.failure_policy", {"Process": "continue"})
    ghost = await world.agent("Process", "Ghost")
    garbled = await world.agent("Process", "Garbled")
    # Written behind the API's back (e.g. a plug-in uninstalled, a hand-edited row).
    async with unit_of_work(world.db) as session:
        await session.execute(update(Agent).where(Agent.id == ghost.id).values(kind="ghost"))
        await session.execute(
            update(Agent).where(Agent.id == garbled.id).values(config={"delayMs": "soon"})
        )

    execution = await world.run("robust")

    assert execution["status"] == "completed"
    assert step(execution, "Ghost")["status"] == "failed"
    assert "unknown agent kind 'ghost'" in step(execution, "Ghost")["error"]
    assert step(execution, "Garbled")["status"] == "failed"
    assert "does not fit the 'echo' kind: delayMs" in step(execution, "Garbled")["error"]


async def test_only_one_claim_of_an_execution_runs_it(world: World) -> None:
    await world.agent("Process", "Worker", config={"delayMs": 50})
    async with unit_of_work(world.db) as session:
        created = await create_execution(
            session,
            ExecutionCreate(command="twice", persona="admin"),
            actor=Actor(world.admin.email, user_id=world.admin.id),
        )
    engine = world.app.state.engine

    statuses = await asyncio.gather(
        engine.run(created.execution_id), engine.run(created.execution_id)
    )

    assert "completed" in statuses
    execution = await world.show(created.execution_id)
    assert execution["status"] == "completed"
    events = await world.events(created.execution_id)
    assert types_of(events).count("execution_started") == 1
    assert names_of(execution) == ["Worker"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_a_shut_down_execution_resumes_where_it_stopped(
    db: Database, settings: Settings
) -> None:
    first = create_app(settings, database=db)
    async with first.router.lifespan_context(first):
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            world = await make_world(first, c, db)
            await world.agent("Role", "Early")
            late = await world.agent("Process", "Late", config={"delayMs": 10000})
            await world.agent("System", "Last", config={"input": "outputs.early.input"})
            async with world.watch() as watch:
                execution_id = await world.post("survive a restart")
                await watch.until(execution_id, "step_started", agentName="Late")
        # Leaving the lifespan stops the dispatcher: the run is handed back.
    async with unit_of_work(db) as session:
        row = await session.get(AgentExecution, execution_id)
        assert row is not None
        assert row.status == "queued"
        assert row.layers_done == 3
        # Make the interrupted agent quick for the second run.
        await session.execute(update(Agent).where(Agent.id == late.id).values(config={}))

    second = create_app(settings, database=db)
    async with second.router.lifespan_context(second):  # picks up what is queued
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            world.app, world.client = second, c
            await world.settle()
            execution = await world.show(execution_id)
            events = await world.events(execution_id)

    assert execution["status"] == "completed", execution
    assert names_of(execution) == ["Early", "Late", "Last"]
    # Completed layers were not run again; their outputs were restored into the context.
    assert step(execution, "Early")["attempt"] == 1
    assert [e["agentName"] for e in events if e["type"] == "step_started"] == [
        "Early",
        "Late",
        "Late",
        "Last",
    ]
    assert step(execution, "Last")["output"] == {"input": "survive a restart"}
    assert types_of(events).count("execution_resumed") == 1
    assert [e["layer"] for e in events if e["type"] == "layer_started"] == LAYERS
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


class LosesControlMessages(MemoryBus):
    """A bus on which cancel messages never arrive (a Redis reconnect drops them), and
    that cancels an execution through the API as its agent ``Gate`` starts."""

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.cancelled: list[int] = []

    async def publish(self, channel: str, message: Message) -> None:
        if channel == CONTROL_CHANNEL:
            return
        await super().publish(channel, message)
        if (
            self.world is not None
            and message.get("type") == "step_started"
            and message.get("agentName") == "Gate"
        ):
            # Held here, the layer cannot be recorded complete before the request is.
            response = await self.world.action(message["executionId"], "cancel")
            self.cancelled.append(response.status_code)


@pytest.mark.parametrize("gate_layer", ["Meta Brain", "Process"])
async def test_a_lost_cancel_message_is_noticed_at_the_next_layer(
    db: Database, settings: Settings, gate_layer: str
) -> None:
    bus = LosesControlMessages()
    app = create_app(settings, database=db, bus=bus)
    # Read the database's flag at every layer start (by default at most once a second).
    app.state.engine.cancel_check_seconds = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            world = await make_world(app, c, db)
            bus.world = world
            await world.agent(gate_layer, "Gate", config={"delayMs": 50})
            await world.agent("System", "After", config={"delayMs": 200})
            await world.agent("Interface", "Last")
            execution = await world.run("stop me")

    assert bus.cancelled == [202]
    assert execution["cancelRequestedAt"] is not None
    # The database says so when the layer ends: the execution stops there or soon after
    # (a backstop, not as prompt as the message), and never completes.
    assert execution["status"] == "cancelled", execution
    assert execution["error"] == "cancelled by request"
    assert step(execution, "Gate")["status"] == "completed"
    assert "completed" not in [s["status"] for s in execution["steps"] if s["layer"] == "Interface"]


@asynccontextmanager
async def signal_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A real HTTP server on loopback, in this event loop: POST /seen sets the event."""
    seen = asyncio.Event()

    async def endpoint(request: Request) -> Response:
        seen.set()
        return JSONResponse({"seen": True})

    app = Starlette(routes=[Route("/seen", endpoint, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(WAIT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/seen", seen
    finally:
        server.should_exit = True
        await task


class SlowToPublish(MemoryBus):
    """A bus that takes its time (Redis under load): the publication of the Meta Brain's
    step_started is held until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def publish(self, channel: str, message: Message) -> None:
        await super().publish(channel, message)
        if message.get("type") == "step_started" and message.get("agentName") == "Planner":
            async with asyncio.timeout(WAIT):
                await self.release.wait()


async def test_a_step_records_the_context_it_started_with(db: Database, settings: Settings) -> None:
    bus = SlowToPublish()
    app = create_app(settings, database=db, bus=bus)
    async with signal_server() as (url, seen), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            world = await make_world(app, c, db)
            await world.set("http.allowed_hosts", ["127.0.0.1"])
            await world.agent("Meta Brain", "Planner", config={"delayMs": 20})
            await world.agent("Role", "Desk")
            await world.agent("Process", "Flow", kind="http", config={"url": url})
            execution_id = await world.post("what did you see")
            # The recording lags until the Process agent has been called.
            async with asyncio.timeout(WAIT):
                await seen.wait()
            bus.release.set()
            await world.settle()
            execution = await world.show(execution_id)

    assert execution["status"] == "completed", execution
    assert step(execution, "Flow")["output"] == {"status": 200, "body": {"seen": True}}
    # What each agent had available when it started, however late it was written down.
    assert step(execution, "Desk")["input"]["availableOutputs"] == ["planner"]
    assert step(execution, "Flow")["input"]["availableOutputs"] == ["planner", "desk"]
