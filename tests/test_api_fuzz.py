"""Fuzz every operation of the OpenAPI schema with schemathesis, on both backends.

The project rule under test: whatever a client sends (malformed, oversized, unauthorised or
conflicting), the answer is a success or a 4xx problem+json saying what was wrong; never a
5xx, and never a change that leaves stored data unreadable or the audit ledger broken.

How it runs. The schema is the document the application serves at /openapi.json, loaded
with ``schemathesis.openapi.from_dict``. (``from_asgi`` would fetch it, and ``Case.call``
send requests, through Starlette's TestClient, which runs the app and its lifespan on an
event loop of its own in another thread; the database engine belongs to the test's loop,
and asyncpg connections cannot cross loops.) Hypothesis draws cases from each operation's
``as_strategy()`` in a worker thread; each case is serialised as schemathesis would send it
and delivered in-process through ``httpx.ASGITransport`` on the test's loop; the response
goes back through ``Case.validate_response`` with the checks below.

Each operation gets three kinds of input:

* positive: what the schema allows, with agent ids mostly aimed at the seeded agents so
  updates, versions, restores and deletes reach real rows;
* negative: what the schema forbids (wrong types, out-of-range numbers, bad enums, ...);
* hostile: a valid body with one value swapped for something Python's JSON parser accepts
  but no schema generator produces: NaN, Infinity, 1e400, unpaired surrogates, NUL,
  integers past 64 bits, as a field or nested inside a free-form object.

Each case is sent as an admin, most of the time, or as a non-admin, anonymously or with an
unknown token. Failures are collected rather than raised, so one run lists every broken
case with a way to reproduce it; shrinking is off for the same reason (the database keeps
changing, so a replay would not meet the same state).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation

from jarvis.audit.service import verify_ledger
from jarvis.config.rules import RuleSetIn, TemplateIn, save_rule_set, save_template
from jarvis.config.service import ConfigService
from jarvis.config.snapshots import create_snapshot
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.service import seed_demo
from jarvis.orchestration.schemas import ExecutionCreate
from jarvis.orchestration.service import create_execution
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, bearer, create_user, token_for

BASE_URL = "http://testserver"
PROBLEM = "application/problem+json"
# Examples per operation and kind of input. 8 by default, for the suite's 10-minute budget
# on 2 cores (15 took 40-90 s per backend once the API passed 60 operations: the longest
# single tests of the suite). JARVIS_FUZZ_EXAMPLES=300 makes the nightly deeper hunt
# (several minutes per backend; docs/development.md).
MAX_EXAMPLES = int(os.environ.get("JARVIS_FUZZ_EXAMPLES", "8"))
HOSTILE = "hostile"
# The demo has 28 agents; one id past them stays a 404.
DEMO_AGENTS = 28
KNOWN_AGENT_IDS = st.integers(min_value=1, max_value=DEMO_AGENTS + 1)
KNOWN_VERSIONS = st.integers(min_value=1, max_value=4)
# Configuration: built-in keys, the change requests and snapshots seeded below.
KNOWN_KEYS = st.sampled_from(
    ["agent.timeout_seconds", "agent.max_retries", "llm.provider", "persona.colors", "llm.modl"]
)
KNOWN_REQUESTS = st.integers(min_value=1, max_value=24)
# Each decision gets requests of its own: approvals 1-10, rejections 11-20 (all by another
# admin), withdrawals 21-23 (by the fuzzing admin).
DECISION_REQUESTS = {
    "approve": st.integers(min_value=1, max_value=10),
    "reject": st.integers(min_value=11, max_value=20),
    "withdraw": st.integers(min_value=21, max_value=24),
}
KNOWN_SNAPSHOTS = st.integers(min_value=1, max_value=3)
PATH_PINS = {
    "agent_id": KNOWN_AGENT_IDS,
    "version": KNOWN_VERSIONS,
    "key": KNOWN_KEYS,
    "request_id": KNOWN_REQUESTS,
    "snapshot_id": KNOWN_SNAPSHOTS,
    "name": st.sampled_from(["property.appetite", "broker.ack", "no.such.name"]),
    # Replaced by the executions seeded in the test (plus one that does not exist).
    "execution_id": st.just("00000000-0000-0000-0000-000000000000"),
}
# Executions by the action they should meet: paused ones to approve, others to reject,
# finished ones to retry (filled in by _seed_executions).
EXECUTION_PINS: dict[str, st.SearchStrategy[str]] = {}
# Bodies that name stored things (a key's version, an importable document), merged into the
# generated body when pinned, so that these writes reach real rows too.
_VERSION_REF = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["agent.timeout_seconds", "agent.max_retries"]),
        "version": st.integers(min_value=1, max_value=3),
        "scope": st.just({}),
    }
)
BODY_PINS: dict[str, st.SearchStrategy[Any]] = {
    "POST /api/config/setting": st.fixed_dictionaries(
        {
            "key": st.sampled_from(["agent.max_retries", "agent.timeout_seconds"]),
            "value": st.integers(min_value=-1, max_value=11),
            "scope": st.sampled_from([{}, {"persona": "underwriter"}, {"agentId": 1}]),
        }
    ),
    "POST /api/agent-executions": st.fixed_dictionaries(
        {
            "command": st.sampled_from(
                ["Laptop won't connect to VPN, urgent", "Which agents are waiting for approval?"]
            ),
            "persona": st.sampled_from(["admin", "underwriter", "it_support"]),
        }
    ),
    "POST /api/config/revert": _VERSION_REF,
    "POST /api/config/deactivate": _VERSION_REF,
    "POST /api/config/import": st.fixed_dictionaries(
        {
            "format": st.just("jarvis-config"),
            "formatVersion": st.just(1),
            "values": st.lists(
                st.fixed_dictionaries(
                    {
                        "key": st.just("agent.max_retries"),
                        "value": st.integers(min_value=-1, max_value=11),
                    }
                ),
                max_size=2,
            ),
        }
    ),
}
# Reads, then writes; restores after the updates that make versions to restore; deletes
# last, so that everything before them meets the seeded agents.
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 2, "DELETE": 4}
CREDENTIALS = ("admin", "admin", "admin", "underwriter", "anonymous", "unknown-token")
# Operations that must reach a 2xx at least once, or the fuzzing only bounced off the
# edges (a broken token, a schema no valid case can satisfy). Login needs a password the
# fuzzer cannot guess; restores need a stored version of the right agent; revocations need
# the id of a session or token of the right user, which the fuzzer cannot know; a persona's
# permissions need a persona key (the fuzzer generates random ones); sign-in with a
# provider needs one configured (this app has none) and a state the fuzzer cannot forge; a
# password change needs the current password.
MAY_NEVER_SUCCEED = {
    "POST /api/login",
    "POST /api/user/password",
    "GET /api/login/github",
    "GET /api/login/oidc",
    "GET /api/callback",
    "GET /api/callback/oidc",
    "POST /api/agents/{agent_id}/versions/{version}/restore",
    "DELETE /api/user/sessions/{session_id}",
    "DELETE /api/users/{user_id}/sessions",
    "DELETE /api/users/{user_id}/sessions/{session_id}",
    "DELETE /api/users/{user_id}/tokens/{token_id}",
    "PUT /api/personas/{key}/permissions",
}

HOSTILE_VALUES = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "\ud800",  # an unpaired surrogate: JSON may escape one, UTF-8 cannot hold it
        "ok\udfffok",
        "nul\x00byte",
        2**63,
        -(2**63) - 1,
        10**400,
        -0.0,
        5e-324,
        1.7976931348623157e308,
        "\u202e\ufeff\u200b",
    ]
)

SURROGATE = re.compile("[\ud800-\udfff]")

T = TypeVar("T")


def problem_violation(status: int, content_type: str, text: str) -> str | None:
    """What is wrong with an error answer as RFC 9457 problem+json, or None."""
    if status < 400:
        return None
    if not content_type.startswith(PROBLEM):
        return f"a {status} answer has content-type {content_type!r}, not {PROBLEM}"
    try:
        body = json.loads(text)
    except ValueError:
        return f"a {status} answer is not JSON: {text[:200]!r}"
    if not isinstance(body, dict):
        return f"a problem body must be an object, got {body!r}"
    missing = {"type", "title", "status", "detail"} - set(body)
    if missing:
        return f"the problem body lacks {sorted(missing)}: {body}"
    if body["status"] != status:
        return f"problem status {body['status']} differs from the HTTP status {status}"
    for key in ("type", "title", "detail"):
        if not (isinstance(body[key], str) and body[key].strip()):
            return f"problem {key} is empty: {body}"
    return None


def problem_details(ctx: CheckContext, response: schemathesis.Response, case: Case) -> None:
    """Every 4xx/5xx says what was wrong, as problem+json with type/title/status/detail."""
    content_type = (response.headers.get("content-type") or [""])[0]
    violation = problem_violation(response.status_code, content_type, response.text)
    assert violation is None, violation


def schema_conformance(
    ctx: CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """Every body, success or error, matches what the OpenAPI document says.

    Errors are documented as problem+json (``jarvis.openapi``: 422 and ``default``), so
    error bodies are checked against the Problem schema too. ``status_code_conformance``
    stays out (a ``default`` response admits any code), and ``negative_data_rejection``
    too, because unknown query parameters are ignored, not refused.
    """
    return response_schema_conformance(ctx, response, case)


CHECKS = [not_a_server_error, problem_details, schema_conformance]


def _modes(operation: APIOperation) -> list[GenerationMode | str]:
    modes: list[GenerationMode | str] = [GenerationMode.POSITIVE]
    if any(operation.iter_parameters()) or operation.body:
        modes.append(GenerationMode.NEGATIVE)  # only where there is an input to get wrong
    if any(alternative.media_type == "application/json" for alternative in operation.body):
        modes.append(HOSTILE)
    return modes


def _order(operation: APIOperation) -> tuple[int, str]:
    method = operation.method.upper()
    rank = 3 if operation.path.endswith("/restore") else METHOD_ORDER.get(method, 1)
    return rank, operation.path


def _free_form_fields(document: dict[str, Any], operation: APIOperation) -> list[str]:
    """The body's properties that take any JSON object (``config`` and the like)."""
    spec = document["paths"][operation.path][operation.method.lower()]
    model = spec["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in model:
        model = document["components"]["schemas"][model["$ref"].rsplit("/", 1)[1]]
    return sorted(
        name
        for name, prop in model.get("properties", {}).items()
        if any(
            branch.get("type") == "object" and "properties" not in branch
            for branch in [prop, *prop.get("anyOf", [])]
        )
    )


def _unstorable(value: Any) -> bool:
    """A value no backend stores faithfully: accepting it loses or corrupts data."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and ("\x00" in value or bool(SURROGATE.search(value)))


def _with_hostile(body: Any, value: Any, free_form: list[str], data: st.DataObject) -> Any:
    """``body`` with ``value`` in a free-form object, or in place of a field."""
    if not isinstance(body, dict):
        return value
    # An unknown persona would be refused before anything reaches the database.
    body = {key: item for key, item in body.items() if key != "persona"}
    places = ["nested", "list", "key", "field"] if free_form else ["field", "key"]
    if not isinstance(value, str):
        places.remove("key")  # JSON keys are text
    place = data.draw(st.sampled_from(places), label="where")
    if place == "field":
        target = data.draw(st.sampled_from(sorted(body) or ["name"]), label="field")
        return {**body, target: value}
    if not free_form:
        return {**body, value: 1}
    target = data.draw(st.sampled_from(free_form), label="free-form field")
    holder = {"nested": {"k": {"nested": value}}, "list": {"k": [1, value]}, "key": {value: 1}}
    return {**body, target: holder[place]}


_REQUEST_FIELDS = {"method", "url", "headers", "params", "cookies", "json", "data", "files", "auth"}


@dataclass
class FuzzRun:
    """What the worker thread needs to reach the app on the test's loop, and what it saw."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    document: dict[str, Any]
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)

    def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    async def send(self, case: Case, who: str, raw_json: bytes | None) -> httpx.Response:
        # The request schemathesis would send (its serialisers, its negative encodings),
        # prepared by requests, then delivered in-process through httpx.
        kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=self.headers[who])
        kwargs = {k: v for k, v in kwargs.items() if k in _REQUEST_FIELDS}
        if raw_json is not None:  # requests refuses to encode NaN; send the bytes as they are
            kwargs.pop("json", None)
            kwargs["data"] = raw_json
            kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
        request = requests.Request(**kwargs).prepare()
        assert request.method is not None and request.url is not None
        body = request.body.encode() if isinstance(request.body, str) else request.body
        return await self.client.request(
            request.method, request.url, headers=dict(request.headers), content=body
        )

    def fuzz(self, operation: APIOperation, mode: GenerationMode | str) -> None:
        name = mode.value if isinstance(mode, GenerationMode) else mode
        label = f"{operation.label} [{name}]"
        seen = self.statuses.setdefault(label, {})
        generation = mode if isinstance(mode, GenerationMode) else GenerationMode.POSITIVE
        free_form = _free_form_fields(self.document, operation) if mode == HOSTILE else []
        pinned = {
            param: strategy
            for param, strategy in PATH_PINS.items()
            if f"{{{param}}}" in operation.path
        }
        decision = operation.path.rsplit("/", 1)[-1]
        if "request_id" in pinned and decision in DECISION_REQUESTS:
            pinned["request_id"] = DECISION_REQUESTS[decision]
        if "execution_id" in pinned:
            pinned["execution_id"] = EXECUTION_PINS.get(decision, EXECUTION_PINS["any"])
        body_pin = BODY_PINS.get(operation.label) if generation.is_positive else None

        # derandomize: the same command sends the same cases. (Another selection of test
        # modules can shift them: Hypothesis also draws constants from loaded local modules.)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=generation),
            # Hostile bodies as the admin, so that they can get as far as the database.
            who=st.just("admin") if mode == HOSTILE else st.sampled_from(CREDENTIALS),
            ids=st.fixed_dictionaries(pinned),
            # Pinned three times in four: the rest explores ids and keys that do not exist.
            pin=(
                st.sampled_from([True, True, True, False])
                if (pinned or body_pin is not None) and generation.is_positive
                else st.just(False)
            ),
            data=st.data(),
        )
        def one(case: Case, who: str, ids: dict[str, Any], pin: bool, data: st.DataObject) -> None:
            if pin:
                case.path_parameters = {**(case.path_parameters or {}), **ids}
                if body_pin is not None:
                    pinned_body = data.draw(body_pin, label="pinned body")
                    base = case.body if isinstance(case.body, dict) else {}
                    case.body = {**base, **pinned_body}
            raw_json, value = None, None
            if mode == HOSTILE:
                value = data.draw(HOSTILE_VALUES, label="hostile value")
                raw_json = json.dumps(_with_hostile(case.body, value, free_form, data)).encode()
            try:
                response = self.on_loop(self.send(case, who, raw_json))
            except Exception as exc:  # the request never got an answer
                self.failures.append(f"{label} as {who}: {exc!r}\n{case!r}\n{raw_json!r:.500}")
                return
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if raw_json is not None:
                # The case does not hold the body sent (requests cannot encode it), so
                # the report names that body rather than a curl command.
                violation = problem_violation(
                    response.status_code, response.headers.get("content-type", ""), response.text
                )
                if response.status_code < 300 and _unstorable(value):
                    violation = f"accepted {value!r}, which cannot be stored as sent"
                if response.status_code >= 500 or violation:
                    self.failures.append(
                        f"{label} as {who}: {case.method} {case.formatted_path} with body "
                        f"{raw_json!r:.500} answered {response.status_code}: "
                        f"{violation or response.text[:500]}"
                    )
                return
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:
                self.failures.append(f"{label} as {who}:\n{group}")

        try:
            one()
        except Unsatisfiable:
            # Negative mode on an input with no invalid value the generator can build
            # (e.g. a free-text header): nothing to send, so nothing to check.
            if generation.is_positive:
                raise
            del self.statuses[label]

    def summary(self) -> str:
        return "\n".join(
            f"  {label}: {dict(sorted(counts.items()))}" for label, counts in self.statuses.items()
        )

    def never_succeeded(self) -> list[str]:
        succeeded = {
            label.rsplit(" [", 1)[0]
            for label, counts in self.statuses.items()
            if any(200 <= status < 300 for status in counts)
        }
        tried = {label.rsplit(" [", 1)[0] for label in self.statuses}
        return sorted(tried - succeeded - MAY_NEVER_SUCCEED)


async def _assert_data_intact(client: httpx.AsyncClient, db: Database) -> None:
    """After the fuzzing, every stored record still reads back, and the ledger verifies."""
    async with unit_of_work(db, write=False) as session:
        ledger = await verify_ledger(session)
    assert ledger.status == "intact", ledger
    offset, seen, total = 0, 0, 1
    while offset < total:
        page = await client.get("/api/agents", params={"limit": 100, "offset": offset})
        assert page.status_code == 200, page.text
        total = page.json()["total"]
        for agent in page.json()["items"]:
            one = await client.get(f"/api/agents/{agent['id']}")
            assert one.status_code == 200, one.text
            assert one.json() == agent
            versions = await client.get(f"/api/agents/{agent['id']}/versions")
            assert versions.status_code == 200, versions.text
            seen += 1
        offset += 100
    assert seen == total
    for path in ("/api/layers", "/api/personas/all?limit=100"):
        response = await client.get(path)
        assert response.status_code == 200, response.text


async def _seed_configuration(config: ConfigService, db: Database, admin: Any) -> None:
    """Versions to revert and deactivate, snapshots, and change requests 1-23 (twenty by
    another admin, for the fuzzing admin to approve or reject; three by the fuzzing admin,
    to withdraw)."""
    other = await create_user(db, persona="admin")
    async with unit_of_work(db) as session:
        for key, values in (
            ("agent.timeout_seconds", (10, 20, 30)),
            ("agent.max_retries", (1, 2, 3)),
        ):
            for value in values:
                await config.set_value(session, key, value, actor=TEST_ACTOR)
        for name in ("before", "middle", "after"):
            await create_snapshot(session, name=name, description=None, actor=TEST_ACTOR)
        await save_rule_set(
            session,
            RuleSetIn.model_validate(
                {
                    "name": "property.appetite",
                    "definition": {
                        "rules": [
                            {
                                "when": [{"field": "tiv", "op": "gt", "value": 5e7}],
                                "outcome": "refer",
                                "reasonCode": "tiv_over_authority",
                            }
                        ]
                    },
                }
            ),
            actor=TEST_ACTOR,
        )
        await save_template(
            session,
            TemplateIn(name="broker.ack", body="Dear {{ broker }}, thank you."),
            actor=TEST_ACTOR,
        )
        for who, provider in ((other, "openai"),) * 20 + ((admin, "rules"),) * 3:
            actor = Actor(label=who.email, user_id=who.id)
            await config.set_value(session, "llm.provider", provider, actor=actor)


async def _seed_executions(app: FastAPI, db: Database, admin: Any) -> None:
    """Executions in every state the routes act on: paused ones (the demo's broker e-mail
    awaits approval) to approve and others to reject, finished ones to retry."""
    actor = Actor(label=admin.email, user_id=admin.id)
    review = ExecutionCreate(
        command="Review the new submission from Acme Logistics", persona="underwriter"
    )
    incident = ExecutionCreate(command="Laptop won't connect to VPN, urgent", persona="it_support")
    ids: dict[str, list[str]] = {"paused": [], "finished": []}
    for data, kind in ((review, "paused"),) * 8 + ((incident, "finished"),) * 2:
        async with unit_of_work(db) as session:
            execution = await create_execution(session, data, actor=actor)
        status = await app.state.engine.run(execution.execution_id)
        assert status == ("awaiting_approval" if kind == "paused" else "completed"), status
        ids[kind].append(execution.execution_id)
    unknown = "00000000-0000-0000-0000-000000000000"
    EXECUTION_PINS.update(
        approve=st.sampled_from(ids["paused"][:4]),
        reject=st.sampled_from(ids["paused"][4:]),
        retry=st.sampled_from(ids["finished"]),
        any=st.sampled_from([*ids["paused"], *ids["finished"], unknown]),
    )


async def test_fuzz_the_whole_api(app: FastAPI, db: Database) -> None:
    async with unit_of_work(db) as session:
        seeded = await seed_demo(session, config=config_service(db, poll_seconds=0))
    assert seeded.agents_created == DEMO_AGENTS
    admin = await create_user(db, persona="admin")
    await _seed_configuration(app.state.config, db, admin)
    await _seed_executions(app, db, admin)
    underwriter = await create_user(db, persona="underwriter")
    headers = {
        "admin": bearer(await token_for(db, admin)),
        "underwriter": bearer(await token_for(db, underwriter)),
        "anonymous": {},
        "unknown-token": bearer("jv_" + "0" * 40),
    }
    # raise_app_exceptions=False: an unhandled error reaches the checks as the 500 a client
    # would get (its traceback is in the captured log) instead of ending the run.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        served = await client.get("/openapi.json")
        assert served.status_code == 200
        document = served.json()
        schema = schemathesis.openapi.from_dict(document)
        operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
        assert len(operations) >= 24, [op.label for op in operations]

        run = FuzzRun(asyncio.get_running_loop(), client, headers, document)
        started = time.monotonic()
        for operation in operations:
            for mode in _modes(operation):
                await asyncio.to_thread(run.fuzz, operation, mode)
        elapsed = time.monotonic() - started

        report = f"fuzzed for {elapsed:.0f} s; statuses seen:\n{run.summary()}"
        failures = run.failures
        assert not failures, (
            f"{len(failures)} failing cases (first 20):\n\n"
            + "\n\n".join(failures[:20])
            + f"\n\n{report}"
        )
        assert not run.never_succeeded(), f"never a 2xx: {run.never_succeeded()}\n{report}"
        await _assert_data_intact(client, db)
