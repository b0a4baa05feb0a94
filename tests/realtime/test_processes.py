"""Scale-out with real processes: two ``jarvis serve`` instances, ``jarvis worker``s, one
PostgreSQL database and the real Redis (tests/realtime/processes.py starts them).

- A command posted to API A runs on a worker; a WebSocket client on API B receives every
  event once, in order, and ends with what the database stored.
- ``kill -9`` of the worker in the middle of a layer: another worker resumes the execution
  after its lease expires; every agent's step exists once, the steps completed before the
  crash are not run again, the event log stays gapless and says ``execution_resumed``.
- A client that subscribes late, one that joins mid-run and one whose connection drops and
  that resubscribes (on the other API) with ``afterSeq`` end with the same list as a
  client connected throughout.
- SIGTERM with ``--grace 0`` hands the execution back (``queued``); another worker
  completes it. SIGTERM with a grace lets the execution finish where it runs, and the
  stopping worker takes no new work.

PostgreSQL and Redis only: skipped (and listed as a skipped suite) without them; with
``CI=true`` a missing service fails the run instead (tests/conftest.py). Nothing here
asserts on time: every wait is a hang guard (``WAIT``), and a test that must act in the
middle of a layer waits for the event that says the layer got there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jarvis.orchestration.lifecycle import TERMINAL_EVENTS
from tests import conftest as suite
from tests.factories import bearer
from tests.realtime.processes import Api, ApiClient, Cluster, Crew, Listener, Process, make_crew

# {layer: [(agent name, delayMs)]}: short steps, two agents in some layers.
QUICK = {
    "Experience": [("Greeter", 20), ("Brand", 10)],
    "Meta Brain": [("Planner", 20)],
    "Role": [("Desk", 20), ("Assistant", 10)],
    "Process": [("Intake", 20)],
    "System": [("Lookup", 20)],
    "Interface": [("Reply", 10)],
}
# The Role layer (third of six) holds a quick agent and one that lasts a few seconds, so a
# test can act while that layer runs, after one of its steps has completed.
SLOW_MIDDLE = {
    "Experience": [("Greeter", 20), ("Brand", 10)],
    "Meta Brain": [("Planner", 20)],
    "Role": [("Quick Desk", 50), ("Slow Desk", 3000)],
    "Process": [("Intake", 20)],
    "System": [("Lookup", 20)],
    "Interface": [("Reply", 10)],
}
# Layers that take a moment each, so clients can come and go while it runs.
PACED = {
    "Experience": [("Greeter", 100)],
    "Meta Brain": [("Planner", 100)],
    "Role": [("Desk A", 400), ("Desk B", 700)],
    "Process": [("Intake", 600)],
    "System": [("Lookup", 300)],
    "Interface": [("Reply", 100)],
}


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(
    postgres_available: bool, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A fresh database (migrated by ``jarvis db upgrade``) and two API servers, A and B."""
    if not postgres_available:
        pytest.skip(suite._skipped_suites["postgresql"])
    cluster = Cluster.create(redis_url=redis_url, workdir=tmp_path_factory.mktemp("processes"))
    try:
        a, b = cluster.start_api("api-a"), cluster.start_api("api-b")
        asyncio.run(cluster.ready(a, b))
        yield cluster
    except BaseException:
        print(cluster.report())  # noqa: T201 - shown when the module's setup fails
        raise
    finally:
        cluster.close()


@pytest.fixture
def apis(cluster: Cluster) -> tuple[Api, Api]:
    a, b = cluster.apis
    for api in (a, b):
        assert api.process.alive, cluster.report()
    return a, b


@pytest.fixture
async def client_a(cluster: Cluster, apis: tuple[Api, Api]) -> AsyncIterator[ApiClient]:
    client = ApiClient(apis[0], cluster.headers)
    yield client
    await client.aclose()


@pytest.fixture
async def client_b(cluster: Cluster, apis: tuple[Api, Api]) -> AsyncIterator[ApiClient]:
    client = ApiClient(apis[1], cluster.headers)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def processes_of_the_test(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[None]:
    """Stop the workers a test started; print every process's logs of the test when it
    failed (pytest shows a passing test's output only with ``-s``)."""
    started = set(map(id, cluster.processes))
    marks = cluster.log_marks()
    failed_before = request.session.testsfailed
    yield
    mine = [p for p in cluster.processes if id(p) not in started]
    for process in mine:
        process.terminate()
    for process in mine:
        process.stop(grace=15)
    if request.session.testsfailed > failed_before:
        print(cluster.report(since=marks))  # noqa: T201 - the processes' side of a failure


# --- helpers -----------------------------------------------------------------------------


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


def assert_complete_log(events: list[dict[str, Any]]) -> None:
    """Numbered 1..n without gap or duplicate, one terminal event, last: completed."""
    assert seqs(events) == list(range(1, len(events) + 1)), seqs(events)
    assert events[0]["type"] == "execution_queued", events[0]
    terminal = [e for e in events if e["type"] in TERMINAL_EVENTS]
    assert [e["type"] for e in terminal] == ["execution_completed"], terminal
    assert events[-1]["type"] == "execution_completed", events[-1]


def assert_steps_once(execution: dict[str, Any], crew: Crew) -> None:
    """One step per agent of the crew (and no other), all completed."""
    steps = execution["steps"]
    assert sorted(s["agentName"] for s in steps) == crew.agents, steps
    assert len({s["id"] for s in steps}) == len(steps)
    assert {s["status"] for s in steps} == {"completed"}, steps


def step_counts(events: list[dict[str, Any]], type_: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        if e["type"] == type_:
            counts[e["agentName"]] = counts.get(e["agentName"], 0) + 1
    return counts


def settled_columns(step: dict[str, Any]) -> tuple[Any, ...]:
    return (
        step["id"],
        step["status"],
        step["attempt"],
        step["startedAt"],
        step["completedAt"],
        step["durationMs"],
        step["output"],
    )


def assert_not_rerun(
    before: dict[str, Any], after: dict[str, Any], events: list[dict[str, Any]]
) -> list[str]:
    """Steps completed before the interruption are untouched after it, and were started
    once; their agents' names."""
    done_before = {s["agentName"]: s for s in before["steps"] if s["status"] == "completed"}
    after_by_name = {s["agentName"]: s for s in after["steps"]}
    for name, step in done_before.items():
        assert settled_columns(after_by_name[name]) == settled_columns(step), name
    started = step_counts(events, "step_started")
    completed = step_counts(events, "step_completed")
    for name in done_before:
        assert started.get(name) == 1 and completed.get(name) == 1, (name, started, completed)
    return sorted(done_before)


async def wait_for_middle_of_role_layer(listener: Listener, execution_id: str, crew: Crew) -> None:
    """Until the Role layer's quick step has completed while its slow one runs."""
    quick, slow = crew.agent("Quick Desk"), crew.agent("Slow Desk")

    def there(_: list[dict[str, Any]]) -> bool:
        events = listener.events(execution_id)
        return any(
            e["type"] == "step_completed" and e["agentName"] == quick for e in events
        ) and any(e["type"] == "step_started" and e["agentName"] == slow for e in events)

    await listener.wait_for(there, "the middle of the Role layer")


def ran_on(workers: list[Process], execution_id: str) -> list[str]:
    """Workers whose logs say they ran ``execution_id``."""
    return [w.name for w in workers if execution_id in w.logs(limit=10**7)]


# --- the scenarios -----------------------------------------------------------------------


async def test_command_on_api_a_runs_on_a_worker_and_streams_once_in_order_on_api_b(
    cluster: Cluster, apis: tuple[Api, Api], client_a: ApiClient
) -> None:
    a, b = apis
    workers = [cluster.start_worker("w-two-apis", concurrency=2) for _ in range(2)]
    await cluster.workers_started(*workers)
    for api in apis:
        health = await cluster.health(api)
        assert health["broker"]["kind"] == "taskiq-redis", health
        assert health["workers"]["live"] >= 2, health
    crew = await make_crew(client_a, QUICK, label="two_apis")
    # A user of the crew's persona (not an admin): subscribe-all shows them their own
    # executions only, which keeps other runs on the shared Redis channel out of the way.
    token = await cluster.user_token(crew.persona)
    user_a = ApiClient(a, bearer(token))

    try:
        async with Listener.open(b, token, admin=False) as socket:
            await socket.send({"type": "subscribe-all"})
            await socket.next_of({"subscribed-all"})
            execution_id = await user_a.post_command(crew.persona)
            # Resume after what subscribe-all delivered so far; from 'subscribed' on, the
            # execution's events come from the replay-then-live follower.
            after = max(seqs(socket.events(execution_id)), default=0)
            at = await socket.subscribe(execution_id, after_seq=after)
            await socket.until_terminal(execution_id)
            await asyncio.sleep(0.5)  # anything after the end (a duplicate) shows up here
            early = [m for m in socket.messages[:at] if m.get("executionId") == execution_id]
            followed = [
                m for m in socket.messages[at + 1 :] if m.get("executionId") == execution_id
            ]
    finally:
        await user_a.aclose()

    stored = await client_a.events(execution_id)
    assert_complete_log(stored)
    # subscribe-all (registered before the POST) delivered a gapless prefix, from seq 1.
    assert seqs(early) == list(range(1, len(early) + 1))
    # The follower delivered everything after `afterSeq`, once, in order, to the end.
    assert seqs(followed) == list(range(after + 1, len(stored) + 1))
    # Together: every stored event, exactly once. Events that were on their way through
    # subscribe-all while subscribe-execution was being sent (seq in (after, len(early)])
    # come again from the follower, identical; the client keeps the first (by seq).
    overlap = [e for e in followed if e["seq"] <= len(early)]
    assert overlap == early[after:]
    assert early + followed[len(overlap) :] == stored
    execution = await client_a.execution(execution_id)
    assert execution["status"] == "completed"
    assert_steps_once(execution, crew)
    assert step_counts(stored, "step_started") == dict.fromkeys(crew.agents, 1)
    assert len(ran_on(workers, execution_id)) == 1, [w.logs() for w in workers]


async def test_kill_9_in_the_middle_of_a_layer_another_worker_resumes_it(
    cluster: Cluster, apis: tuple[Api, Api], client_a: ApiClient
) -> None:
    _, b = apis
    crew = await make_crew(client_a, SLOW_MIDDLE, label="crash")
    first = cluster.start_worker("w-crashes", concurrency=2)
    await cluster.workers_started(first)

    async with Listener.open(b, cluster.admin_token) as socket:
        execution_id = await client_a.post_command(crew.persona)
        await socket.subscribe(execution_id)
        await wait_for_middle_of_role_layer(socket, execution_id, crew)
        first.kill()  # SIGKILL to its process group: no cleanup runs
        # What the dead worker left: nothing can change it until another worker comes.
        before = await client_a.execution(execution_id)
        assert before["status"] == "running", before
        by_name = {s["agentName"]: s for s in before["steps"]}
        assert by_name[crew.agent("Quick Desk")]["status"] == "completed", by_name
        assert by_name[crew.agent("Slow Desk")]["status"] == "running", by_name

        second = cluster.start_worker("w-resumes", concurrency=2)
        after = await client_a.until_status(execution_id)
        followed = await socket.until_terminal(execution_id)

    assert after["status"] == "completed", after
    assert second.alive, second.logs()
    assert_steps_once(after, crew)
    stored = await client_a.events(execution_id)
    assert_complete_log(stored)
    # The socket on API B followed the execution across the crash: the same list.
    assert followed == stored
    types = [e["type"] for e in stored]
    assert types.count("execution_started") == 1 and types.count("execution_resumed") == 1
    resumed_at = types.index("execution_resumed")
    assert stored[resumed_at]["layersDone"] == 2, stored[resumed_at]
    kept = assert_not_rerun(before, after, stored)
    assert kept == sorted(map(crew.agent, ["Greeter", "Brand", "Planner", "Quick Desk"]))
    # The interrupted step ran again, after the resume, and completed once.
    slow_started = [
        i
        for i, e in enumerate(stored)
        if e["type"] == "step_started" and e["agentName"] == crew.agent("Slow Desk")
    ]
    assert len(slow_started) == 2 and slow_started[0] < resumed_at < slow_started[1], types
    assert step_counts(stored, "step_completed")[crew.agent("Slow Desk")] == 1
    # Layers completed before the crash were not started again.
    layer_starts = [e["layer"] for e in stored if e["type"] == "layer_started"]
    assert layer_starts.count("Experience") == 1 and layer_starts.count("Meta Brain") == 1
    assert ran_on([second], execution_id) == ["w-resumes"]


async def test_late_midway_and_reconnecting_clients_end_with_the_same_events(
    cluster: Cluster, apis: tuple[Api, Api], client_a: ApiClient
) -> None:
    a, b = apis
    token = cluster.admin_token
    worker = cluster.start_worker("w-clients", concurrency=2)
    await cluster.workers_started(worker)
    crew = await make_crew(client_a, PACED, label="clients")

    async with Listener.open(a, token) as throughout, Listener.open(b, token) as flaky:
        execution_id = await client_a.post_command(crew.persona)
        await throughout.subscribe(execution_id)
        await flaky.subscribe(execution_id)

        def role_started(_: list[dict[str, Any]]) -> bool:
            return any(
                e["type"] == "step_started" and e.get("layer") == "Role"
                for e in flaky.events(execution_id)
            )

        await flaky.wait_for(role_started, "a Role step")
        flaky.drop()  # the network goes away: no close handshake
        await flaky.close()
        head = flaky.events(execution_id)
        mark = head[-1]["seq"]

        def moved_on(_: list[dict[str, Any]]) -> bool:
            return max(seqs(throughout.events(execution_id))) >= mark + 2

        # The execution moves on while the client is away.
        await throughout.wait_for(moved_on, "events the dropped client misses")
        # It comes back through the other API and resumes after what it has.
        async with Listener.open(a, token) as rejoined, Listener.open(b, token) as midway:
            await rejoined.subscribe(execution_id, after_seq=mark)
            await midway.subscribe(execution_id)  # joins mid-run: replay, then live
            connected = await throughout.until_terminal(execution_id)
            tail = await rejoined.until_terminal(execution_id)
            joined = await midway.until_terminal(execution_id)

    async with Listener.open(b, token) as late:  # after the end
        await late.subscribe(execution_id)
        replayed = await late.until_terminal(execution_id)

    stored = await client_a.events(execution_id)
    assert_complete_log(stored)
    assert not any(e["type"] == "execution_completed" for e in head)
    assert tail[0]["seq"] == mark + 1
    assert connected == stored
    assert head + tail == stored
    assert joined == stored
    assert replayed == stored
    execution = await client_a.execution(execution_id)
    assert_steps_once(execution, crew)


async def test_sigterm_with_no_grace_hands_the_execution_back_to_another_worker(
    cluster: Cluster, apis: tuple[Api, Api], client_a: ApiClient
) -> None:
    _, b = apis
    crew = await make_crew(client_a, SLOW_MIDDLE, label="graceful")
    first = cluster.start_worker("w-stops", concurrency=2, grace=0)
    await cluster.workers_started(first)

    async with Listener.open(b, cluster.admin_token) as socket:
        execution_id = await client_a.post_command(crew.persona)
        await socket.subscribe(execution_id)
        await wait_for_middle_of_role_layer(socket, execution_id, crew)
        first.terminate()
        assert await first.exited() == 0, first.logs()
        # Handed back: queued again, its progress kept, nobody running it.
        before = await client_a.execution(execution_id)
        assert before["status"] == "queued", before

        second = cluster.start_worker("w-takes-over", concurrency=2)
        after = await client_a.until_status(execution_id)
        followed = await socket.until_terminal(execution_id)

    assert after["status"] == "completed", after
    assert_steps_once(after, crew)
    stored = await client_a.events(execution_id)
    assert_complete_log(stored)
    assert followed == stored
    types = [e["type"] for e in stored]
    assert types.count("execution_resumed") == 1, types
    kept = assert_not_rerun(before, after, stored)
    assert kept == sorted(map(crew.agent, ["Greeter", "Brand", "Planner", "Quick Desk"]))
    assert step_counts(stored, "step_completed")[crew.agent("Slow Desk")] == 1
    assert ran_on([second], execution_id) == ["w-takes-over"]


async def test_sigterm_with_grace_finishes_what_it_runs_and_takes_nothing_new(
    cluster: Cluster, apis: tuple[Api, Api], client_a: ApiClient
) -> None:
    _, b = apis
    crew = await make_crew(client_a, SLOW_MIDDLE, label="draining")
    first = cluster.start_worker("w-drains", concurrency=2, grace=60)
    await cluster.workers_started(first)

    async with Listener.open(b, cluster.admin_token) as socket:
        running = await client_a.post_command(crew.persona)
        await socket.subscribe(running)
        await wait_for_middle_of_role_layer(socket, running, crew)
        first.terminate()
        await cluster.until_logged(first, "worker_draining")
        waiting = await client_a.post_command(crew.persona, "queued while it drains")
        assert await first.exited() == 0, first.logs()
        # It finished what it ran (no hand-back, no resume) and took nothing new.
        finished = await client_a.execution(running)
        assert finished["status"] == "completed", finished
        assert (await client_a.execution(waiting))["status"] == "queued"

        second = cluster.start_worker("w-after-drain", concurrency=2)
        done = await client_a.until_status(waiting)

    assert done["status"] == "completed", done
    for execution_id in (running, waiting):
        stored = await client_a.events(execution_id)
        assert_complete_log(stored)
        assert "execution_resumed" not in [e["type"] for e in stored]
    assert ran_on([first, second], running) == ["w-drains"]
    assert ran_on([first, second], waiting) == ["w-after-drain"]
