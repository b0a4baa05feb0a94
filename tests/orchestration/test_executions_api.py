"""``/api/agent-executions`` end to end: bad input, who may see and act, listing, events,
retry, human approval and cancellation; commands and the activity feed.

The real app runs the executions (its dispatcher and engine) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from jarvis.analytics.models import Activity
from jarvis.audit.models import AuditTrail
from jarvis.auth.models import User
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import MemoryBus, Message
from jarvis.main import create_app
from jarvis.orchestration.events import EVENTS_CHANNEL
from jarvis.orchestration.models import Command
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.orchestration.service import create_execution
from jarvis.settings import Settings
from tests.orchestration.conftest import WAIT, World, make_world, names_of, step, types_of
from tests.problems import assert_problem

BASE = "/api/agent-executions"


async def queued(world: World, user: User, command: str = "later") -> str:
    """An execution created through the service and never dispatched: it stays queued."""
    async with unit_of_work(world.db) as session:
        execution = await create_execution(
            session,
            ExecutionCreate(command=command, persona=user.persona),
            actor=Actor(user.email, user_id=user.id),
        )
    return execution.execution_id


async def audit_rows(world: World, execution_id: str) -> list[AuditTrail]:
    async with unit_of_work(world.db, write=False) as session:
        rows = await session.scalars(
            select(AuditTrail)
            .where(AuditTrail.entity_type == "agent_execution")
            .where(AuditTrail.entity_id == execution_id)
            .order_by(AuditTrail.id)
        )
        return list(rows.all())


async def activities_of(world: World, execution_id: str) -> list[str]:
    async with unit_of_work(world.db, write=False) as session:
        rows = await session.scalars(
            select(Activity.type).where(Activity.execution_id == execution_id).order_by(Activity.id)
        )
        return list(rows.all())


# --- bad input ----------------------------------------------------------------------------


async def test_bad_commands_and_other_personas_are_refused(world: World) -> None:
    response = await world.client.post(
        BASE, json={"command": "hi", "persona": "nobody"}, headers=world.admin_headers
    )
    body = assert_problem(response, 422, "unknown persona 'nobody'", slug="validation")
    assert "registered personas: admin, underwriter" in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "persona"]

    for command in ("", "   \t\n ", "x" * 4001):
        response = await world.client.post(
            BASE, json={"command": command, "persona": "admin"}, headers=world.admin_headers
        )
        body = assert_problem(response, 422)
        assert ["body", "command"] in [e["loc"] for e in body["errors"]], body
    for body in (
        {"persona": "admin"},
        {"command": "hi"},
        {"command": "hi", "persona": "admin", "extra": 1},
        {"command": "hi", "persona": "admin", "workflowId": 0},
    ):
        response = await world.client.post(BASE, json=body, headers=world.admin_headers)
        assert_problem(response, 422)

    # 4,000 characters is the limit, not over it; surrounding spaces are not counted.
    longest = "y" * 4000
    execution = await world.run(f"  {longest}  ")
    assert execution["command"] == longest
    assert execution["status"] == "completed"
    async with unit_of_work(world.db, write=False) as session:
        total = len((await session.scalars(select(Command))).all())
    assert total == 1  # refused commands are not recorded

    # Only admins run commands as another persona.
    response = await world.client.post(BASE, json={"command": "hi", "persona": "admin"})
    assert_problem(response, 401)
    response = await world.client.post(
        BASE, json={"command": "hi", "persona": "admin"}, headers=world.uw_headers
    )
    assert_problem(response, 403, "only admins may act as another persona")

    own = await world.run("mine", persona="underwriter", headers=world.uw_headers)
    assert own["status"] == "completed"
    assert own["createdBy"] == world.underwriter.email
    by_admin = await world.run("for them", persona="underwriter")
    assert by_admin["persona"] == "underwriter"
    assert by_admin["createdBy"] == world.admin.email


# --- who sees what ------------------------------------------------------------------------


async def test_users_see_and_act_on_their_own_executions_only(world: World) -> None:
    mine = await world.run("mine", persona="underwriter", headers=world.uw_headers)
    execution_id = mine["executionId"]
    colleague = await world.user("underwriter")

    response = await world.client.get(f"{BASE}/{execution_id}", headers=colleague)
    assert_problem(response, 403, "belongs to another user")
    for path in ("events",):
        response = await world.client.get(f"{BASE}/{execution_id}/{path}", headers=colleague)
        assert_problem(response, 403)
    for verb in ("cancel", "retry", "approve", "reject"):
        response = await world.action(execution_id, verb, headers=colleague)
        assert_problem(response, 403)
    # The creator and admins may.
    assert (await world.show(execution_id, world.uw_headers))["executionId"] == execution_id
    assert (await world.show(execution_id))["executionId"] == execution_id

    missing = "00000000-0000-0000-0000-000000000000"
    assert_problem(await world.client.get(f"{BASE}/{missing}", headers=world.admin_headers), 404)
    assert_problem(await world.action(missing, "cancel"), 404)
    assert_problem(await world.client.get(f"{BASE}/{execution_id}"), 401)


async def list_ids(world: World, headers: dict[str, str] | None = None, **params: Any) -> Any:
    response = await world.client.get(BASE, params=params, headers=headers or world.admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_listing_filters_and_pages(world: World) -> None:
    await world.set("agent.max_retries", 0)
    admin_agent = await world.agent("Process", "Admin Worker", config={"input": "command"})
    uw_agent = await world.agent("Process", "Uw Worker", persona="underwriter")
    first = await world.run("one")
    second = await world.run("two")
    # A failing agent, for the status filter.
    failing = await world.agent("System", "Breaker", config={"failAttempts": 9})
    third = await world.run("three")
    assert third["status"] == "failed"
    fourth = await world.run("four", persona="underwriter", headers=world.uw_headers)
    fifth = await world.run("five", persona="underwriter")  # the admin's, as underwriter
    newest_first = [e["executionId"] for e in (fifth, fourth, third, second, first)]

    page = await list_ids(world, limit=100)
    assert [item["executionId"] for item in page["items"]] == newest_first
    assert page["total"] == 5
    item = page["items"][0]
    assert item["status"] == "completed" and item["command"] == "five"
    assert "steps" not in item  # the list is a summary

    # A non-admin sees only the executions they created.
    page = await list_ids(world, world.uw_headers)
    assert [i["executionId"] for i in page["items"]] == [fourth["executionId"]]
    assert page["total"] == 1

    by = await list_ids(world, status="failed")
    assert [i["executionId"] for i in by["items"]] == [third["executionId"]]
    by = await list_ids(world, status="completed")
    assert by["total"] == 4
    by = await list_ids(world, persona="underwriter")
    assert [i["executionId"] for i in by["items"]] == newest_first[:2]
    by = await list_ids(world, agentId=uw_agent.id)
    assert [i["executionId"] for i in by["items"]] == newest_first[:2]
    by = await list_ids(world, agentId=admin_agent.id)
    assert [i["executionId"] for i in by["items"]] == newest_first[2:]
    by = await list_ids(world, agentId=failing.id)
    assert [i["executionId"] for i in by["items"]] == [third["executionId"]]
    by = await list_ids(world, since=third["createdAt"])
    assert [i["executionId"] for i in by["items"]] == newest_first[:3]
    by = await list_ids(world, since=third["createdAt"], persona="admin", status="failed")
    assert [i["executionId"] for i in by["items"]] == [third["executionId"]]
    assert datetime.fromisoformat(third["createdAt"]) > datetime.fromisoformat(second["createdAt"])

    pages = [await list_ids(world, limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [[i["executionId"] for i in p["items"]] for p in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
        [],
    ]
    assert {p["total"] for p in pages} == {5}
    assert [(p["limit"], p["offset"]) for p in pages] == [(2, 0), (2, 2), (2, 4), (2, 6)]

    for params in (
        {"status": "done"},
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"since": "x"},
    ):
        response = await world.client.get(BASE, params=params, headers=world.admin_headers)
        assert_problem(response, 422)


# --- events -------------------------------------------------------------------------------


async def test_events_are_numbered_without_gaps_and_replay_after_a_seq(world: World) -> None:
    await world.agent("Role", "R1")
    await world.agent("Process", "P1")
    await world.agent("Process", "P2")
    execution = await world.run("replay")
    execution_id = execution["executionId"]

    events = await world.events(execution_id)
    n = len(events)
    assert [e["seq"] for e in events] == list(range(1, n + 1))
    assert types_of(events)[0] == "execution_queued"
    assert types_of(events)[-1] == "execution_completed"
    assert all(e["executionId"] == execution_id and e["at"] for e in events)

    later = await world.events(execution_id, after=5)
    assert later == events[5:]
    assert await world.events(execution_id, after=n) == []
    response = await world.client.get(
        f"{BASE}/{execution_id}/events", params={"limit": 3}, headers=world.admin_headers
    )
    assert [item["seq"] for item in response.json()["items"]] == [1, 2, 3]
    response = await world.client.get(
        f"{BASE}/{execution_id}/events", params={"afterSeq": -1}, headers=world.admin_headers
    )
    assert_problem(response, 422)


# --- retry --------------------------------------------------------------------------------


async def test_retry_runs_the_command_again_as_a_new_execution(world: World) -> None:
    await world.set("agent.max_retries", 0)
    await world.agent("Process", "Once Broken", config={"failAttempts": 1})
    original = await world.run("again", persona="underwriter", headers=world.uw_headers)
    # The agent serves the admin persona only; the underwriter's run has no steps.
    assert original["status"] == "completed"
    failed = await world.run("again please")
    assert failed["status"] == "failed"

    response = await world.action(failed["executionId"], "retry")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["executionId"] != failed["executionId"]
    assert response.headers["location"] == f"{BASE}/{accepted['executionId']}"
    await world.settle()
    retried = await world.show(accepted["executionId"])
    assert retried["retryOf"] == failed["executionId"]
    assert (retried["command"], retried["persona"]) == ("again please", "admin")
    # Each execution is a fresh run: attempt counting starts again, so it fails again.
    assert retried["status"] == "failed"
    assert step(retried, "Once Broken")["attempt"] == 1
    first_event = (await world.events(accepted["executionId"]))[0]
    assert first_event["type"] == "execution_queued"
    assert first_event["retryOf"] == failed["executionId"]

    # The creator may retry their own.
    response = await world.action(original["executionId"], "retry", headers=world.uw_headers)
    assert response.status_code == 202, response.text
    await world.settle()
    again = await world.show(response.json()["executionId"], world.uw_headers)
    assert (again["status"], again["createdBy"]) == ("completed", world.underwriter.email)


async def test_retry_waits_for_the_end_of_the_execution(world: World) -> None:
    waiting = await queued(world, world.admin)
    response = await world.action(waiting, "retry")
    assert_problem(response, 409, "is still queued")

    await world.agent("Process", "Slow", config={"delayMs": 10000})
    async with world.watch() as watch:
        running = await world.post("slow")
        await watch.until(running, "step_started", agentName="Slow")
        response = await world.action(running, "retry")
        assert_problem(response, 409, "is still running")
        assert (await world.action(running, "cancel")).status_code == 202
        await world.settle()


# --- human approval -----------------------------------------------------------------------


async def approval_world(world: World) -> None:
    await world.agent("Role", "Checker", persona="underwriter", config={"requiresApproval": True})
    await world.agent(
        "Process", "After", persona="underwriter", config={"input": "outputs.checker.input"}
    )


async def start_awaiting(world: World, headers: dict[str, str] | None = None) -> str:
    async with world.watch() as watch:
        execution_id = await world.post("quote it", "underwriter", headers or world.uw_headers)
        await watch.until(execution_id, "awaiting_approval")
    await world.settle()
    return execution_id


async def test_an_agent_needing_approval_pauses_until_its_creator_approves(world: World) -> None:
    await approval_world(world)
    execution_id = await start_awaiting(world)

    paused = await world.show(execution_id, world.uw_headers)
    assert paused["status"] == "awaiting_approval"
    assert paused["completedAt"] is None
    checker = step(paused, "Checker")
    assert checker["status"] == "awaiting_approval"
    assert checker["output"] == {"input": "quote it"}  # the proposed output
    assert checker["decidedBy"] is None
    assert names_of(paused, "Process") == []  # nothing after it ran yet
    events = await world.events(execution_id, headers=world.uw_headers)
    assert events[-1]["type"] == "awaiting_approval"
    assert events[-1]["layer"] == "Role"
    [proposed] = events[-1]["steps"]
    assert proposed["agentName"] == "Checker"
    assert proposed["stepId"] == checker["id"]
    assert proposed["outputPreview"] == '{"input": "quote it"}'
    assert "execution.awaiting_approval" in await activities_of(world, execution_id)

    response = await world.action(
        execution_id, "approve", headers=world.uw_headers, json={"comment": "Looks right"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    await world.settle()

    done = await world.show(execution_id, world.uw_headers)
    assert done["status"] == "completed", done
    checker = step(done, "Checker")
    assert checker["status"] == "completed"
    assert checker["decidedBy"] == world.underwriter.email
    assert checker["decisionComment"] == "Looks right"
    assert checker["decidedAt"] is not None
    # The approved output joined the context; later layers ran, once.
    assert step(done, "After")["output"] == {"input": "quote it"}
    assert done["result"]["outputs"]["checker"] == {"input": "quote it"}
    events = await world.events(execution_id)
    assert [e["layer"] for e in events if e["type"] == "layer_started"] == [
        "Experience",
        "Meta Brain",
        "Role",
        "Process",
        "System",
        "Interface",
    ]
    assert [e["layer"] for e in events if e["type"] == "layer_completed"].count("Role") == 1
    assert [e["agentName"] for e in events if e["type"] == "step_started"] == [
        "Checker",
        "After",
    ]
    approved = [e for e in events if e["type"] == "step_approved"]
    assert [(e["agentName"], e["decidedBy"], e["comment"]) for e in approved] == [
        ("Checker", world.underwriter.email, "Looks right")
    ]
    assert "execution_resumed" in types_of(events)
    [audit] = [a for a in await audit_rows(world, execution_id) if a.action == "execution.approve"]
    assert audit.actor == world.underwriter.email
    assert audit.actor_id == world.underwriter.id
    assert audit.after is not None and audit.after["comment"] == "Looks right"
    assert [s["agentName"] for s in audit.after["steps"]] == ["Checker"]

    # A decided execution cannot be decided again.
    for verb in ("approve", "reject"):
        assert_problem(await world.action(execution_id, verb), 409, "not awaiting_approval")


async def test_admins_approve_anyones_and_rejections_end_the_execution(world: World) -> None:
    await approval_world(world)
    approved_id = await start_awaiting(world)
    rejected_id = await start_awaiting(world)

    # A colleague may not decide; an admin may (without a comment).
    colleague = await world.user("underwriter")
    assert_problem(await world.action(approved_id, "approve", headers=colleague), 403)
    response = await world.action(approved_id, "approve")  # no body: no comment
    assert response.status_code == 200, response.text
    # The creator rejects the other one.
    response = await world.action(
        rejected_id, "reject", headers=world.uw_headers, json={"comment": "Premium too low"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    await world.settle()

    approved = await world.show(approved_id)
    assert approved["status"] == "completed"
    checker = step(approved, "Checker")
    assert (checker["decidedBy"], checker["decisionComment"]) == (world.admin.email, None)
    [audit] = [a for a in await audit_rows(world, approved_id) if a.action == "execution.approve"]
    assert audit.actor == world.admin.email

    rejected = await world.show(rejected_id)
    assert rejected["status"] == "rejected"
    assert rejected["errorCode"] == "rejected"
    assert "Premium too low" in rejected["error"]
    assert world.underwriter.email in rejected["error"]
    assert rejected["completedAt"] is not None
    checker = step(rejected, "Checker")
    assert checker["status"] == "rejected"
    assert checker["decisionComment"] == "Premium too low"
    assert checker["decidedBy"] == world.underwriter.email
    assert names_of(rejected, "Process") == []  # nothing after the rejected agent ran
    events = await world.events(rejected_id)
    assert types_of(events)[-2:] == ["step_rejected", "execution_rejected"]
    [audit] = [a for a in await audit_rows(world, rejected_id) if a.action == "execution.reject"]
    assert audit.actor == world.underwriter.email
    assert audit.after is not None and audit.after["comment"] == "Premium too low"
    assert "execution.rejected" in await activities_of(world, rejected_id)
    for verb in ("approve", "reject", "cancel"):
        assert_problem(await world.action(rejected_id, verb), 409)


async def test_each_awaiting_step_can_be_decided_on_its_own(world: World) -> None:
    await world.agent("Role", "First Check", config={"requiresApproval": True})
    await world.agent("Role", "Second Check", config={"requiresApproval": True})
    await world.agent("Process", "After")
    async with world.watch() as watch:
        execution_id = await world.post("two checks")
        await watch.until(execution_id, "awaiting_approval")
    await world.settle()
    paused = await world.show(execution_id)
    first, second = step(paused, "First Check"), step(paused, "Second Check")
    assert first["status"] == second["status"] == "awaiting_approval"

    response = await world.action(execution_id, "approve", json={"stepId": first["id"]})
    assert response.json()["status"] == "awaiting_approval"  # one still waits
    assert_problem(
        await world.action(execution_id, "approve", json={"stepId": first["id"]}),
        409,
        "awaits no decision",
    )
    response = await world.action(execution_id, "approve", json={"stepId": second["id"]})
    assert response.json()["status"] == "queued"
    await world.settle()

    done = await world.show(execution_id)
    assert done["status"] == "completed"
    assert step(done, "After")["status"] == "completed"
    assert sorted(done["result"]["outputs"]) == ["after", "first_check", "second_check"]


async def test_actions_in_the_wrong_state_are_conflicts(world: World) -> None:
    completed = await world.run("done")
    for verb in ("approve", "reject"):
        assert_problem(await world.action(completed["executionId"], verb), 409, "is completed")
    response = await world.action(completed["executionId"], "cancel")
    assert_problem(response, 409, "already completed")
    assert (await world.show(completed["executionId"]))["status"] == "completed"
    waiting = await queued(world, world.admin)
    assert_problem(await world.action(waiting, "approve"), 409, "is queued")
    response = await world.action(completed["executionId"], "approve", json={"bogus": 1})
    assert_problem(response, 422)


# --- cancellation -------------------------------------------------------------------------


async def test_cancelling_a_running_execution_stops_its_agents(world: World) -> None:
    await world.agent("Process", "Sleeper", config={"delayMs": 10000})
    await world.agent("Process", "Other Sleeper", config={"delayMs": 10000})
    await world.agent("Interface", "Never")
    async with world.watch() as watch:
        execution_id = await world.post("long job")
        await watch.until(execution_id, "step_started", agentName="Other Sleeper")
        await watch.until(execution_id, "step_started", agentName="Sleeper")
        response = await world.action(execution_id, "cancel")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "running"
        assert response.json()["cancelRequestedAt"] is not None
        await world.settle()  # returns promptly: the agents were stopped

    done = await world.show(execution_id)
    assert done["status"] == "cancelled"
    assert done["errorCode"] == "cancelled"
    assert done["error"] == "cancelled by request"
    for name in ("Sleeper", "Other Sleeper"):
        s = step(done, name)
        assert (s["status"], s["error"]) == ("cancelled", "cancelled by request")
        assert s["output"] is None
    assert names_of(done, "Interface") == []
    events = await world.events(execution_id)
    assert types_of(events)[-1] == "execution_cancelled"
    assert sorted(e["agentName"] for e in events if e["type"] == "step_cancelled") == [
        "Other Sleeper",
        "Sleeper",
    ]
    assert [a.action for a in await audit_rows(world, execution_id)] == ["execution.cancel"]
    assert await activities_of(world, execution_id) == ["command.issued", "execution.cancelled"]
    assert_problem(await world.action(execution_id, "cancel"), 409, "already cancelled")


async def test_cancelling_a_queued_or_paused_execution_ends_it_at_once(world: World) -> None:
    await approval_world(world)
    paused_id = await start_awaiting(world)
    response = await world.action(paused_id, "cancel", headers=world.uw_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    paused = await world.show(paused_id)
    assert step(paused, "Checker")["status"] == "cancelled"
    assert_problem(await world.action(paused_id, "approve"), 409)

    execution_id = await queued(world, world.underwriter)

    response = await world.action(execution_id, "cancel", headers=world.uw_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["error"] == f"cancelled by {world.underwriter.email}"
    # An engine handed the id later does not run it.
    await world.dispatcher.submit(execution_id)
    await world.settle()
    done = await world.show(execution_id)
    assert done["status"] == "cancelled"
    assert done["steps"] == []  # the underwriter's agents never ran for it
    assert types_of(await world.events(execution_id)) == [
        "execution_queued",
        "execution_cancelled",
    ]


async def feed_shows(world: World, execution_id: str, type_: str) -> None:
    """Wait (bounded by WAIT) until the activity feed has ``type_`` for the execution."""
    for _ in range(int(WAIT / 0.02)):
        response = await world.client.get(
            "/api/activities", params={"limit": 100}, headers=world.admin_headers
        )
        if any(
            item["type"] == type_ and item["executionId"] == execution_id
            for item in response.json()["items"]
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {type_} activity for {execution_id}")


class ApproveOnTheSpot(MemoryBus):
    """Approves an execution from inside the publication of its ``awaiting_approval``
    event, and holds that publication until the resumed run has started its next agent:
    the paused run finishes its own bookkeeping only after the resumed run began."""

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.resumed = asyncio.Event()
        self.approved: list[int] = []

    async def publish(self, channel: str, message: Message) -> None:
        await super().publish(channel, message)
        if channel != EVENTS_CHANNEL or self.world is None:
            return
        if message["type"] == "step_started" and message["agentName"] == "Slowpoke":
            self.resumed.set()
        if message["type"] == "awaiting_approval" and not self.approved:
            response = await self.world.action(message["executionId"], "approve")
            self.approved.append(response.status_code)
            async with asyncio.timeout(WAIT):
                await self.resumed.wait()


async def test_an_execution_approved_at_once_can_still_be_cancelled(
    db: Database, settings: Settings
) -> None:
    bus = ApproveOnTheSpot()
    app = create_app(settings, database=db, bus=bus)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            world = await make_world(app, c, db)
            bus.world = world
            await world.agent("Role", "Checker", config={"requiresApproval": True})
            await world.agent("System", "Slowpoke", config={"delayMs": 5000})
            async with world.watch() as watch:
                execution_id = await world.post("approve then stop")
                await watch.until(execution_id, "step_started", agentName="Slowpoke")
                assert bus.approved == [200]
                # The paused run ends right after it records its pause in the feed.
                await feed_shows(world, execution_id, "execution.awaiting_approval")
                response = await world.action(execution_id, "cancel")
                assert response.status_code == 202, response.text
                await world.settle()
            done = await world.show(execution_id)

    assert done["status"] == "cancelled", done
    assert step(done, "Slowpoke")["status"] == "cancelled"


# --- commands and activities --------------------------------------------------------------


async def test_commands_and_the_activity_feed_are_recorded(world: World) -> None:
    await world.agent("Process", "Worker", persona="underwriter")
    mine = await world.run("uw work", persona="underwriter", headers=world.uw_headers)
    admins = await world.run("admin work")

    async with unit_of_work(world.db, write=False) as session:
        commands = (await session.scalars(select(Command).order_by(Command.id))).all()
    assert [
        (c.text, c.persona, c.source, c.execution_id, c.user_id, c.issued_by) for c in commands
    ] == [
        (
            "uw work",
            "underwriter",
            "api",
            mine["executionId"],
            world.underwriter.id,
            world.underwriter.email,
        ),
        ("admin work", "admin", "api", admins["executionId"], world.admin.id, world.admin.email),
    ]
    assert await activities_of(world, mine["executionId"]) == [
        "command.issued",
        "execution.completed",
    ]

    response = await world.client.get("/api/activities", headers=world.uw_headers)
    assert response.status_code == 200, response.text
    feed = response.json()["items"]
    assert {item["persona"] for item in feed} == {"underwriter"}
    assert [(i["type"], i["executionId"]) for i in feed if i["executionId"]] == [
        ("execution.completed", mine["executionId"]),
        ("command.issued", mine["executionId"]),
    ]
    # A non-admin cannot widen the feed to another persona.
    response = await world.client.get(
        "/api/activities", params={"persona": "admin"}, headers=world.uw_headers
    )
    assert {item["persona"] for item in response.json()["items"]} == {"underwriter"}

    response = await world.client.get("/api/activities", headers=world.admin_headers)
    seen = {i["executionId"] for i in response.json()["items"] if i["executionId"]}
    assert seen == {mine["executionId"], admins["executionId"]}
    response = await world.client.get(
        "/api/activities", params={"persona": "admin"}, headers=world.admin_headers
    )
    items = [i for i in response.json()["items"] if i["executionId"]]
    assert {i["executionId"] for i in items} == {admins["executionId"]}
    assert items[0]["title"] == "Completed: admin work"
