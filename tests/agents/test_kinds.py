"""The built-in agent kinds, run directly with real services on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from jarvis.agents.kinds.base import (
    AgentSpec,
    KindServices,
    StepContext,
    StepFailed,
    StepResult,
    agent_handle,
)
from jarvis.agents.kinds.http import MAX_BODY_BYTES, host_allowed
from jarvis.agents.kinds.registry import available_kinds, get_kind, validate_agent_config
from jarvis.config.rules import RuleSetIn, TemplateIn, save_rule_set, save_template
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.llm.base import (
    Classification,
    Extraction,
    FieldSpec,
    Generation,
    GenerationRequest,
    LabelSpec,
    LLMProvider,
    ProviderError,
    Usage,
)
from jarvis.llm.rules import RulesProvider
from jarvis.orchestration.adapters import ExecutionsSeen
from jarvis.orchestration.models import AgentExecution
from jarvis.wiring import config_service
from tests.factories import create_agent, create_personas

ACTOR = Actor.system("tests")
DATA = Path("/work/shared/data")


def record(name: str, record_id: str) -> dict[str, Any]:
    with (DATA / f"{name}.jsonl").open(encoding="utf-8") as lines:
        return next(r for r in map(json.loads, lines) if r["id"] == record_id)


class RecordingProvider:
    """A stand-in for a model provider: records generation requests, answers fixed data."""

    name = "recording"

    def __init__(self, data: Any = None) -> None:
        self.data = data
        self.requests: list[GenerationRequest] = []

    async def classify(
        self, text: str, labels: Sequence[LabelSpec], *, model: str
    ) -> Classification:
        return Classification(label="not_a_label", confidence=0.99)

    async def extract(self, text: str, fields: Sequence[FieldSpec], *, model: str) -> Extraction:
        return Extraction(fields={})

    async def generate(self, request: GenerationRequest) -> Generation:
        self.requests.append(request)
        usage = Usage(self.name, request.model, prompt_tokens=12, completion_tokens=3)
        return Generation(text="model answer", data=self.data, usage=usage)


@dataclass
class Runner:
    """Builds a StepContext for a kind and runs it, as the engine would."""

    db: Database
    config: ConfigService
    http: httpx.AsyncClient
    provider: LLMProvider = field(default_factory=RulesProvider)

    def step(
        self,
        kind: str,
        config: dict[str, Any],
        *,
        command: str = "hello",
        persona: str = "underwriter",
        outputs: dict[str, Any] | None = None,
        name: str = "Test Agent",
    ) -> StepContext:
        async def llm(scope: Scope) -> tuple[LLMProvider, str]:
            return self.provider, "rules-model"

        services = KindServices(
            db=self.db,
            config=self.config,
            llm=llm,
            http=self.http,
            executions=ExecutionsSeen(self.db),
        )
        context = {
            "executionId": "exec-1",
            "command": command,
            "persona": persona,
            "workflowId": None,
            "plan": None,
            "outputs": outputs or {},
            "layers": {},
        }
        spec = AgentSpec(
            id=7,
            name=name,
            handle=agent_handle(name),
            layer="Process",
            persona=persona,
            kind=kind,
            config=config,
        )
        return StepContext(
            execution_id="exec-1",
            agent=spec,
            settings=validate_agent_config(kind, config),
            context=context,
            scope=Scope(persona=persona, agent_id=spec.id),
            services=services,
        )

    async def run(self, kind: str, config: dict[str, Any], **context: Any) -> StepResult:
        handler = get_kind(kind)
        assert handler is not None
        return await handler.run(self.step(kind, config, **context))


@pytest.fixture
async def runner(db: Database) -> AsyncIterator[Runner]:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield Runner(db=db, config=config_service(db, poll_seconds=0), http=http)


@pytest.fixture
async def offline_runner(tmp_path: Path) -> AsyncIterator[Runner]:
    """For kinds that touch no table (classifier, extractor, llm without templates): one
    run, not one per backend. The database is never opened."""
    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    try:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            yield Runner(db=db, config=config_service(db, poll_seconds=0), http=http)
    finally:
        await db.dispose()


def test_every_builtin_kind_is_available() -> None:
    assert set(available_kinds()) >= {
        "echo",
        "classifier",
        "extractor",
        "rules",
        "template",
        "llm",
        "http",
        "agent_status",
    }


# --- classifier ------------------------------------------------------------------------

PRIORITY = {
    "outputKey": "priority",
    "labels": [
        {
            "name": "high",
            "keywords": ["nobody can", "all offices", "everyone", "can't post", "urgent"],
            "patterns": [r"(?i)\b5\d\d error\b"],
            "weight": 1.5,
        },
        {"name": "medium", "keywords": ["today or tomorrow", "next monday", "set up"]},
        {"name": "low", "keywords": ["whenever", "when you get a chance", "work fine"]},
    ],
    "defaultLabel": "medium",
}


@pytest.mark.parametrize(
    ("record_id", "priority"), [("it-v-001", "high"), ("it-v-002", "low"), ("it-v-005", "medium")]
)
async def test_classifier_labels_incident_priority(
    offline_runner: Runner, record_id: str, priority: str
) -> None:
    mail = record("it_incidents", record_id)
    result = await offline_runner.run(
        "classifier", PRIORITY, command=f"{mail['subject']}\n{mail['body']}"
    )
    assert result.output["priority"] == priority
    assert 0 < result.output["confidence"] <= 1
    assert set(result.output["scores"]) == {"high", "medium", "low"}
    assert result.usage is not None and result.usage.provider == "rules"


async def test_classifier_falls_back_to_the_default_label(offline_runner: Runner) -> None:
    nothing = await offline_runner.run("classifier", PRIORITY, command="The printer is beige.")
    assert nothing.output == {
        "priority": "medium",
        "confidence": 0.0,
        "scores": {"high": 0.0, "medium": 0.0, "low": 0.0},
    }
    strict = {**PRIORITY, "minConfidence": 0.9}
    weak = await offline_runner.run("classifier", strict, command="urgent, whenever")
    assert weak.output["priority"] == "medium"  # "high" won, but not confidently enough
    assert weak.output["scores"]["high"] == 1.5
    no_default = {key: value for key, value in PRIORITY.items() if key != "defaultLabel"}
    unknown = await offline_runner.run("classifier", no_default, command="beige")
    assert unknown.output["priority"] is None


async def test_classifier_reads_earlier_outputs_and_ignores_unknown_labels(
    offline_runner: Runner,
) -> None:
    config = {**PRIORITY, "input": "outputs.intake.subject"}
    outputs = {"intake": {"subject": "Nobody can log in - all offices"}}
    result = await offline_runner.run("classifier", config, outputs=outputs)
    assert result.output["priority"] == "high"
    with pytest.raises(StepFailed, match="'outputs.missing.text' is not in the execution context"):
        await offline_runner.run("classifier", {**PRIORITY, "input": "outputs.missing.text"})
    offline_runner.provider = RecordingProvider()  # a model answering with a label it was not given
    odd = await offline_runner.run("classifier", PRIORITY, command="anything")
    assert odd.output["priority"] == "medium"


# --- extractor -------------------------------------------------------------------------

COPE = {
    "input": "outputs.email_intake.body",
    "fields": [
        {"name": "insured_name", "patterns": [r"(?im)^\s*named insured[\s.:]*(.+?)\s*$"]},
        {
            "name": "tiv",
            "type": "number",
            "patterns": [r"(?i)\bTIV\W*(\d[\d,.]*\s*(?:k|mm|m|bn|b)?)\b"],
        },
        {
            "name": "year_built",
            "type": "integer",
            "patterns": [r"(?i)\b(?:year built|yr\.? blt|yr\.? built|built)\W*(\d{4})\b"],
            "required": True,
        },
        {
            "name": "effective_date",
            "type": "date",
            "patterns": [r"(?i)\beff(?:ective)?\b[\s.:]*(\d{1,2}/\d{1,2}/\d{2,4})"],
            "required": True,
        },
        {"name": "amounts", "type": "list", "patterns": [r"\$(\d[\d,.]*[MmKk]?)"]},
    ],
}


async def test_extractor_reads_a_broker_submission(offline_runner: Runner) -> None:
    mail = record("broker_submissions", "bs-v-001")
    result = await offline_runner.run(
        "extractor", COPE, outputs={"email_intake": {"body": mail["body"]}}
    )
    values = result.output["values"]
    expected = mail["expected"]
    assert values["insured_name"] == expected["insured_name"]
    assert values["tiv"] == expected["tiv"] == 3_000_000
    assert values["year_built"] == expected["year_built"]
    assert values["effective_date"] == expected["effective_date"]
    assert values["amounts"] == ["1,900,000", "600,000", "500,000", "3,000,000"]
    assert result.output["fields"]["tiv"] == {"value": 3_000_000, "confidence": 0.95}
    assert result.output["missing"] == []


async def test_extractor_lists_missing_required_fields(offline_runner: Runner) -> None:
    mail = record("broker_submissions", "bs-v-010")  # effective date "to be confirmed"
    result = await offline_runner.run(
        "extractor", COPE, outputs={"email_intake": {"body": mail["body"]}}
    )
    assert result.output["values"]["year_built"] == 1997
    assert result.output["fields"]["effective_date"] == {"value": None, "confidence": 0.0}
    assert result.output["missing"] == ["effective_date"]


# --- rules -----------------------------------------------------------------------------

APPETITE = {
    "rules": [
        {
            "when": [{"field": "outputs.cope.values.year_built", "op": "lt", "value": 1950}],
            "outcome": "decline",
            "reasonCode": "building_too_old",
        },
        {
            "when": [
                {"field": "outputs.cope.values.tiv", "op": "gt", "value": 10_000_000},
                {"field": "persona", "op": "ne", "value": "admin"},
            ],
            "outcome": "refer",
            "reasonCode": "tiv_over_authority",
        },
    ],
    "defaultOutcome": "quote",
    "defaultReasonCode": "within_appetite",
}


async def save_rules(db: Database, definition: dict[str, Any], name: str = "uw.appetite") -> None:
    async with unit_of_work(db) as session:
        await save_rule_set(
            session, RuleSetIn.model_validate({"name": name, "definition": definition}), actor=ACTOR
        )


async def test_rules_kind_decides_and_records_the_version(runner: Runner, db: Database) -> None:
    await save_rules(runner.db, APPETITE)
    outputs = {"cope": {"values": {"year_built": 1981, "tiv": 16_300_000}}}
    refer = await runner.run("rules", {"ruleSet": "uw.appetite"}, outputs=outputs)
    assert refer.output == {
        "outcome": "refer",
        "reasonCode": "tiv_over_authority",
        "ruleSet": "uw.appetite",
        "version": 1,
        "matchedRule": 1,
    }
    quote = await runner.run("rules", {"ruleSet": "uw.appetite"}, outputs=outputs, persona="admin")
    assert (quote.output["outcome"], quote.output["matchedRule"]) == ("quote", None)

    stricter = {**APPETITE, "defaultOutcome": "refer", "defaultReasonCode": "manual_review"}
    await save_rules(runner.db, stricter)
    newest = await runner.run("rules", {"ruleSet": "uw.appetite"}, persona="admin")
    assert (newest.output["outcome"], newest.output["version"]) == ("refer", 2)
    pinned = await runner.run("rules", {"ruleSet": "uw.appetite", "version": 1}, persona="admin")
    assert (pinned.output["outcome"], pinned.output["version"]) == ("quote", 1)


async def test_rules_kind_names_a_missing_rule_set(runner: Runner) -> None:
    with pytest.raises(StepFailed, match="rule table 'uw.nothing' does not exist"):
        await runner.run("rules", {"ruleSet": "uw.nothing"})
    await save_rules(runner.db, APPETITE)
    with pytest.raises(StepFailed, match="'uw.appetite' version 9 does not exist"):
        await runner.run("rules", {"ruleSet": "uw.appetite", "version": 9})


# --- template --------------------------------------------------------------------------


async def save_text(db: Database, name: str, body: str) -> None:
    async with unit_of_work(db) as session:
        await save_template(session, TemplateIn(name=name, body=body), actor=ACTOR)


async def test_template_kind_renders_over_the_context(runner: Runner) -> None:
    await save_text(
        runner.db,
        "uw.reply",
        "Dear broker,\n{% set v = outputs.cope.values %}"
        "{% if v.tiv %}TIV {{ '{:,}'.format(v.tiv) }}{% else %}No TIV{% endif %} "
        "for {{ v.insured_name | default('?') }}.",
    )
    outputs = {"cope": {"values": {"tiv": 3_000_000, "insured_name": "Seagrape Family Dental"}}}
    result = await runner.run("template", {"template": "uw.reply"}, outputs=outputs)
    assert result.output == {
        "text": "Dear broker,\nTIV 3,000,000 for Seagrape Family Dental.",
        "template": "uw.reply",
        "version": 1,
    }


async def test_template_kind_failures_name_the_template(runner: Runner) -> None:
    with pytest.raises(StepFailed, match="template 'uw.none' does not exist"):
        await runner.run("template", {"template": "uw.none"})
    await save_text(runner.db, "uw.broken", "{{ outputs.cope.values.tiv / 0 }}")
    with pytest.raises(StepFailed, match="'uw.broken' version 1 could not be rendered.*Zero"):
        await runner.run(
            "template", {"template": "uw.broken"}, outputs={"cope": {"values": {"tiv": 1}}}
        )
    await save_text(runner.db, "uw.sneaky", "{{ command.__class__.__mro__ }}")
    with pytest.raises(StepFailed, match="sandbox forbids"):
        await runner.run("template", {"template": "uw.sneaky"})


# --- llm -------------------------------------------------------------------------------


async def test_llm_kind_offline_renders_the_offline_template(runner: Runner) -> None:
    await save_text(runner.db, "it.triage.offline", '{"priority": "{{ outputs.triage.priority }}"}')
    config = {
        "prompt": "Triage: {{ command }}",
        "offlineTemplate": "it.triage.offline",
        "outputSchema": {
            "type": "object",
            "required": ["priority"],
            "properties": {"priority": {"enum": ["high", "medium", "low"]}},
        },
    }
    result = await runner.run("llm", config, outputs={"triage": {"priority": "high"}})
    assert result.output == {"text": '{"priority": "high"}', "data": {"priority": "high"}}
    assert result.usage is not None and result.usage.provider == "rules"
    with pytest.raises(ProviderError, match="breaks the output schema"):
        await runner.run("llm", config, outputs={"triage": {"priority": "whenever"}})


async def test_llm_kind_sends_the_rendered_prompt_to_the_provider(offline_runner: Runner) -> None:
    provider = RecordingProvider(data={"priority": "P9"})
    offline_runner.provider = provider
    config = {
        "prompt": "Classify: {{ command }} ({{ persona }})",
        "system": "You are the help desk of {{ persona | upper }}.",
        "maxTokens": 50,
        "temperature": 0.2,
    }
    result = await offline_runner.run("llm", config, command="VPN down")
    assert result.output == {"text": "model answer"}  # no schema: no data
    assert result.usage is not None and result.usage.total_tokens == 15
    (request,) = provider.requests
    assert (request.prompt, request.system) == (
        "Classify: VPN down (underwriter)",
        "You are the help desk of UNDERWRITER.",
    )
    assert (request.model, request.max_tokens, request.temperature, request.template) == (
        "rules-model",
        50,
        0.2,
        None,
    )
    assert request.context["command"] == "VPN down"
    schema = {"type": "object", "properties": {"priority": {"enum": ["P1", "P2"]}}}
    with pytest.raises(StepFailed, match=r"does not satisfy the output schema at \$.priority"):
        await offline_runner.run("llm", {**config, "outputSchema": schema})


async def test_llm_kind_failures(runner: Runner) -> None:
    with pytest.raises(ProviderError, match="set offlineTemplate"):
        await runner.run("llm", {"prompt": "Hello"})
    with pytest.raises(StepFailed, match="the prompt could not be rendered.*Zero"):
        await runner.run("llm", {"prompt": "{{ 1 / 0 }}"})
    with pytest.raises(StepFailed, match="template 'it.nothing' does not exist"):
        await runner.run("llm", {"prompt": "x", "offlineTemplate": "it.nothing"})


# --- http ------------------------------------------------------------------------------


@dataclass
class Hook:
    base: str
    port: int
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@asynccontextmanager
async def hook_server() -> AsyncIterator[Hook]:
    """A real HTTP server on loopback with the endpoints the tests call."""
    release = asyncio.Event()
    hook = Hook(base="", port=0)

    async def remember(request: Request) -> None:
        hook.received.append((request.url.path, await request.json()))

    async def ok(request: Request) -> Response:
        await remember(request)
        body = hook.received[-1][1]
        return JSONResponse(
            {
                "accepted": True,
                "agent": body["agent"]["name"],
                "command": body["context"]["command"],
            }
        )

    async def text(request: Request) -> Response:
        await remember(request)
        return PlainTextResponse("queued")

    async def redirect(request: Request) -> Response:
        await remember(request)
        return RedirectResponse("/ok", status_code=302)

    async def slow(request: Request) -> Response:
        await remember(request)
        await release.wait()
        return JSONResponse({})

    async def error(request: Request) -> Response:
        await remember(request)
        return PlainTextResponse("database exploded", status_code=500)

    async def big(request: Request) -> Response:
        await remember(request)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(32):  # 2 MiB, then nothing until the test ends: a client that
                yield b"x" * 65536  # tried to read the whole body would time out instead
            await release.wait()

        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(
        routes=[
            Route(f"/{endpoint.__name__}", endpoint, methods=["POST"])
            for endpoint in (ok, text, redirect, slow, error, big)
        ]
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    hook.port = server.servers[0].sockets[0].getsockname()[1]
    hook.base = f"http://127.0.0.1:{hook.port}"
    try:
        yield hook
    finally:
        release.set()
        server.should_exit = True
        await task


async def allow_hosts(config: ConfigService, db: Database, hosts: list[str]) -> None:
    async with unit_of_work(db) as session:
        await config.set_value(session, "http.allowed_hosts", hosts, actor=ACTOR)


async def test_http_kind_posts_the_context_to_an_allowed_host(runner: Runner) -> None:
    await allow_hosts(runner.config, runner.db, ["127.0.0.1"])
    async with hook_server() as hook:
        config = {"url": f"{hook.base}/ok", "headers": {"X-Jarvis-Test": "yes"}}
        result = await runner.run("http", config, command="Check Acme", name="Policy Sync")
        assert result.output == {
            "status": 200,
            "body": {"accepted": True, "agent": "Policy Sync", "command": "Check Acme"},
        }
        path, sent = hook.received[0]
        assert path == "/ok"
        assert sent["executionId"] == "exec-1"
        assert sent["agent"] == {
            "id": 7,
            "name": "Policy Sync",
            "handle": "policy_sync",
            "layer": "Process",
        }
        assert sent["context"]["persona"] == "underwriter"
        text = await runner.run("http", {"url": f"{hook.base}/text"})
        assert text.output == {"status": 200, "body": "queued"}


async def test_http_kind_refuses_hosts_not_on_the_list(runner: Runner) -> None:
    async with hook_server() as hook:
        with pytest.raises(
            StepFailed, match=r"'127.0.0.1' is not on the allow-list.*http.allowed_hosts"
        ):
            await runner.run("http", {"url": f"{hook.base}/ok"})  # the list is empty by default
        await allow_hosts(runner.config, runner.db, ["127.0.0.1"])
        with pytest.raises(StepFailed, match="'localhost' is not on the allow-list"):
            await runner.run("http", {"url": f"http://localhost:{hook.port}/ok"})
        assert hook.received == []  # nothing was sent


async def test_http_kind_fails_on_redirects_errors_timeouts_and_big_bodies(runner: Runner) -> None:
    await allow_hosts(runner.config, runner.db, ["127.0.0.1"])
    async with hook_server() as hook:
        with pytest.raises(StepFailed, match="answered 302.*redirects are not followed"):
            await runner.run("http", {"url": f"{hook.base}/redirect"})
        assert [path for path, _ in hook.received] == ["/redirect"]  # /ok never reached
        with pytest.raises(
            StepFailed, match="answered 500 Internal Server Error: database exploded"
        ):
            await runner.run("http", {"url": f"{hook.base}/error"})
        with pytest.raises(StepFailed, match="did not complete within 0.2 s"):
            await runner.run("http", {"url": f"{hook.base}/slow", "timeoutSeconds": 0.2})
        with pytest.raises(StepFailed, match=f"larger than {MAX_BODY_BYTES} bytes"):
            await runner.run("http", {"url": f"{hook.base}/big", "timeoutSeconds": 60})


def test_allow_list_matching() -> None:
    allowed = ["api.example.com", "*.corvale.example.org", "10.0.0.5"]
    assert host_allowed("api.example.com", allowed)
    assert host_allowed("API.Example.COM.", allowed)
    assert host_allowed("hooks.corvale.example.org", allowed)
    assert host_allowed("a.b.corvale.example.org", allowed)
    assert not host_allowed("corvale.example.org", allowed)  # "*." means subdomains
    assert not host_allowed("evilcorvale.example.org", allowed)
    assert not host_allowed("api.example.com.evil.net", allowed)
    assert not host_allowed("10.0.0.50", allowed)
    assert not host_allowed("anything", ["*"])
    assert host_allowed("::1", ["[::1]"])


# --- agent_status ----------------------------------------------------------------------


async def add_execution(
    db: Database, execution_id: str, persona: str, status: str, minutes: int
) -> None:
    async with unit_of_work(db) as session:
        session.add(
            AgentExecution(
                execution_id=execution_id,
                persona=persona,
                command=f"command {execution_id}",
                status=status,
                created_by="tests",
                created_at=utcnow() - timedelta(minutes=minutes),
            )
        )


async def test_agent_status_reports_pending_agents_and_waiting_executions(
    runner: Runner,
) -> None:
    await create_personas(runner.db)
    await create_agent(runner.db, name="Persona Generation Agent", governance_status="pending")
    await create_agent(
        runner.db, name="Voice Interface Agent", governance_status="under_review", layer="Interface"
    )
    await create_agent(runner.db, name="Approved Agent", governance_status="approved")
    await create_agent(runner.db, name="Blocked Agent", governance_status="blocked")
    await add_execution(runner.db, "e-uw-1", "underwriter", "awaiting_approval", 5)
    await add_execution(runner.db, "e-uw-2", "underwriter", "completed", 4)
    await add_execution(runner.db, "e-admin", "admin", "awaiting_approval", 3)

    result = await runner.run("agent_status", {})
    output = result.output
    assert [a["name"] for a in output["agents"]] == [
        "Persona Generation Agent",
        "Voice Interface Agent",
    ]
    assert output["agents"][1]["layer"] == "Interface"
    assert output["agents"][1]["governanceStatus"] == "under_review"
    assert [e["executionId"] for e in output["executions"]] == ["e-uw-1"]  # own persona only
    assert output["executions"][0]["command"] == "command e-uw-1"
    assert output["summary"] == (
        "2 agents await governance approval (Persona Generation Agent, Voice Interface Agent); "
        "1 execution awaits a human decision."
    )

    admin = await runner.run("agent_status", {"limit": 1}, persona="admin")
    assert [e["executionId"] for e in admin.output["executions"]] == ["e-uw-1"]  # oldest first
    assert admin.output["summary"] == (
        "2 agents await governance approval (Persona Generation Agent and 1 more); "
        "2 executions await a human decision."
    )

    blocked = await runner.run(
        "agent_status", {"governanceStatuses": ["blocked"], "includeExecutions": False}
    )
    assert blocked.output["executions"] == []
    assert blocked.output["summary"] == "1 agent has governance status blocked (Blocked Agent)."


async def test_agent_status_with_nothing_waiting(runner: Runner) -> None:
    result = await runner.run("agent_status", {})
    assert result.output == {
        "agents": [],
        "executions": [],
        "summary": "No agent awaits governance approval; no execution awaits a human decision.",
    }
