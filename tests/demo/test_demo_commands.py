"""The demo's commands, run offline through the real engine on SQLite and PostgreSQL.

The demo is seeded into the test database with ``seed_demo``; each command is queued
with the orchestration service and run by an ``Engine`` (rules provider, no API key), the
way the dispatcher and ``jarvis run`` do. The pasted e-mails are records of the visible
example set (invented test data: broker_submissions.jsonl and it_incidents.jsonl), with
the expected values those records carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher

from jarvis.agents.kinds.base import agent_handle
from jarvis.agents.kinds.registry import validate_agent_config
from jarvis.auth.users import passwords
from jarvis.config.rules import RuleTable
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.data import AGENTS, RULE_SETS, TEMPLATES
from jarvis.demo.service import seed_demo
from jarvis.kit.bus import CapturingBus
from jarvis.kit.templating import compile_template
from jarvis.orchestration import service
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.events import EVENTS_CHANNEL
from jarvis.orchestration.models import AgentExecution, ExecutionStep
from jarvis.orchestration.schemas import Decision, ExecutionCreate
from jarvis.wiring import config_service

ACTOR = Actor.system("tests")

SAMPLES: dict[str, dict[str, Any]] = {
    "bs-v-001": {
        "from": "Alina Petrosyan <apetrosyan@sandbarbrokerage.example.org>",
        "subject": "New submission - Seagrape Family Dental, P.A. - Naples FL - eff 1/1/2027",
        "body": (
            "Hello Corvale team,\n"
            "\n"
            "Please consider the following new commercial property submission.\n"
            "\n"
            "Named Insured: Seagrape Family Dental, P.A.\n"
            "Location: 1185 Pine Ridge Rd, Naples, FL 34108\n"
            "Operations: General and pediatric dental practice, 8 operatories, digital x-ray,"
            " small\n"
            "in-house lab (no casting). Owner-occupied.\n"
            "\n"
            "Construction: masonry non-combustible - block walls, steel joist and deck roof\n"
            "Year built: 2001\n"
            "Stories: 1\n"
            "Area: 7,800 sf\n"
            "Roof: replaced 2018 (TPO), FBC-compliant\n"
            "Sprinklers: none\n"
            "Alarm: central station fire alarm\n"
            "Protection: PC 2, hydrant 150 ft, fire station 1.0 mi\n"
            "Flood zone: AE (first floor elevation 2 ft above BFE)\n"
            "\n"
            "Building $1,900,000\n"
            "BPP $600,000 (incl. dental equipment)\n"
            "BI $500,000\n"
            "TIV $3,000,000\n"
            "\n"
            "Special form, RC, 5% named storm. Effective 1/1/2027.\n"
            "\n"
            "Best regards,\n"
            "Alina Petrosyan\n"
            "Sandbar Brokerage\n"
        ),
        "expected": {
            "insured_name": "Seagrape Family Dental, P.A.",
            "address": "1185 Pine Ridge Rd, Naples, FL 34108",
            "tiv": 3000000,
            "year_built": 2001,
            "effective_date": "2027-01-01",
            "building_value": 1900000,
            "bpp_value": 600000,
            "bi_value": 500000,
            "ppc": "2",
            "flood_zone": "AE",
            "out_of_appetite": False,
        },
    },
    "bs-v-005": {
        "from": "Tobias Kremer <tkremer@lakeshoreriskgrp.example.org>",
        "subject": "Saginaw Bay Botanical Extracts - Bay City MI - property",
        "body": (
            "Hi Dana,\n"
            "\n"
            "New one for you: Saginaw Bay Botanical Extracts LLC, 2205 Marquette Ave, Bay City,"
            " MI\n"
            "48706.\n"
            "\n"
            "State-licensed marijuana processor - hydrocarbon (butane/propane) extraction in a"
            " C1D1\n"
            "booth, distillation, vape cartridge filling and packaging. No cultivation, no"
            " retail.\n"
            "\n"
            "Non-combustible building, built 1999, 1 story, 9,000 sf. 100% sprinklered, central\n"
            "station alarm, gas detection tied to the alarm panel. PPC 4, hydrant 250 ft, fire\n"
            "station 1.6 mi. Flood zone X. Roof replaced 2020.\n"
            "\n"
            "Bldg $1.2M / BPP $1.6M / BI $750k\n"
            "\n"
            "Effective 1/1/2027, special form.\n"
            "\n"
            "Tobias Kremer\n"
            "Lakeshore Risk Group\n"
        ),
        "expected": {
            "insured_name": "Saginaw Bay Botanical Extracts LLC",
            "address": "2205 Marquette Ave, Bay City, MI 48706",
            "tiv": 3550000,
            "year_built": 1999,
            "effective_date": "2027-01-01",
            "building_value": 1200000,
            "bpp_value": 1600000,
            "bi_value": 750000,
            "ppc": "4",
            "flood_zone": "X",
            "out_of_appetite": True,
        },
    },
    "it-v-001": {
        "from": "Renée Halvorsen <rhalvorsen@corvale.example.org>",
        "subject": "Nobody can send or receive e-mail - all offices",
        "body": (
            "Help desk,\n"
            "\n"
            "Since about 7:50 this morning no one at Corvale can send or receive e-mail. The"
            " mail app\n"
            'on our PCs says "Disconnected" and webmail shows a 503 error. I checked with the'
            " Boise and\n"
            "Spokane offices and it's the same for everyone there - so all ~210 of us.\n"
            "\n"
            "We have three storm claims teams that rely on broker e-mail today. Please call me at\n"
            "555-0187 when you pick this up.\n"
            "\n"
            "Renée Halvorsen\n"
            "Operations Director\n"
        ),
        "expected": {
            "category": "email",
            "impact": "high",
            "urgency": "high",
            "priority": "P1",
            "affected_users": 210,
        },
    },
}


def pasted(record: dict[str, Any]) -> str:
    """An e-mail as a user pastes it into the command bar: headers, blank line, body."""
    return f"From: {record['from']}\nSubject: {record['subject']}\n\n{record['body']}"


@dataclass
class Ran:
    """An execution after the engine left it, with its steps by agent name."""

    execution: AgentExecution
    steps: dict[str, ExecutionStep]

    @property
    def status(self) -> str:
        return self.execution.status

    @property
    def intent(self) -> str | None:
        return (self.execution.plan or {}).get("intent")

    @property
    def response(self) -> str:
        return str((self.execution.result or {}).get("response") or "")

    def with_status(self, status: str) -> set[str]:
        return {name for name, step in self.steps.items() if step.status == status}

    def output(self, agent: str) -> dict[str, Any]:
        output = self.steps[agent].output
        assert output is not None, (agent, self.steps[agent].status, self.steps[agent].error)
        return output


@dataclass
class Demo:
    db: Database
    engine: Engine
    bus: CapturingBus

    async def load(self, execution_id: str) -> Ran:
        async with unit_of_work(self.db, write=False) as session:
            execution = await service.get_execution(session, execution_id)
            steps = await service.steps_of(session, execution_id)
        return Ran(execution, {step.agent_name: step for step in steps})

    async def run(self, persona: str, command: str) -> Ran:
        async with unit_of_work(self.db) as session:
            execution = await service.create_execution(
                session,
                ExecutionCreate(command=command, persona=persona),
                actor=ACTOR,
                bus=self.bus,
                source="cli",
            )
            execution_id = execution.execution_id
        await self.engine.run(execution_id)
        return await self.load(execution_id)

    async def approve(self, execution_id: str, comment: str) -> Ran:
        async with unit_of_work(self.db) as session:
            await service.approve_execution(
                session,
                self.bus,
                execution_id,
                Decision(comment=comment),
                principal=None,
                actor=ACTOR,
            )
        await self.engine.run(execution_id)
        return await self.load(execution_id)

    async def reject(self, execution_id: str, comment: str) -> Ran:
        async with unit_of_work(self.db) as session:
            await service.reject_execution(
                session,
                self.bus,
                execution_id,
                Decision(comment=comment),
                principal=None,
                actor=ACTOR,
            )
        return await self.load(execution_id)

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        return [
            message
            for channel, message in self.bus.published
            if channel == EVENTS_CHANNEL and message.get("executionId") == execution_id
        ]


@pytest.fixture
async def demo(db: Database, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Demo]:
    """The demo seeded into ``db`` and an engine running on it (offline provider)."""
    # The demo users' passwords are not under test here: hash them cheaply (still argon2).
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    config = config_service(db, poll_seconds=0)
    async with unit_of_work(db) as session:
        await seed_demo(session, config=config)
    bus = CapturingBus()
    engine = Engine(db, config, bus)
    await engine.start()
    try:
        yield Demo(db, engine, bus)
    finally:
        await engine.close()
        await bus.close()


# --- the data itself (no database) ------------------------------------------------------

SHARED = {
    "Carrier Brand Experience Agent",
    "Meta Brain Orchestrator",
    "Intent Router",
    "Email Classification Agent",
    "PII Security Filter",
    "Document Intelligence Extractor",
    "Agent Registry Inspector",
    "Answer Composer Agent",
}


def test_every_demo_agent_has_a_valid_real_kind_and_config() -> None:
    for data, _ in AGENTS:
        assert data.kind != "echo", data.name
        validate_agent_config(data.kind, data.config)
    assert {data.name for data, _ in AGENTS if data.serves_all_personas} == SHARED
    router = next(data for data, _ in AGENTS if data.name == "Intent Router")
    assert router.kind == "classifier"
    assert router.config["outputKey"] == "intent"
    assert [label["name"] for label in router.config["labels"]] == [
        "submission_review",
        "it_incident",
        "claim_intake",
        "agent_status",
        "general_question",
    ]
    # Only the intent classifier may answer with an "intent": the engine takes the first.
    others = [d for d, _ in AGENTS if d.layer == "Meta Brain" and d.name != "Intent Router"]
    assert all(d.config.get("outputKey") != "intent" for d in others)


def test_templates_and_rule_tables_name_only_demo_agents() -> None:
    handles = {agent_handle(data.name) for data, _ in AGENTS}
    sources = [t.body for t in TEMPLATES] + [
        json.dumps(r.definition.model_dump(by_alias=True)) for r in RULE_SETS
    ]
    sources += [json.dumps(data.config) for data, _ in AGENTS]
    referenced = {m for source in sources for m in re.findall(r"outputs\.(\w+)", source)}
    assert referenced, "the templates should read agents' outputs"
    assert referenced <= handles, referenced - handles
    for template in TEMPLATES:
        compile_template(template.body)
    for rule_set in RULE_SETS:
        RuleTable.model_validate(rule_set.definition.model_dump(by_alias=True))
    configured = {d.config.get("template") for d, _ in AGENTS} | {
        d.config.get("offlineTemplate") for d, _ in AGENTS
    }
    assert configured - {None} == {t.name for t in TEMPLATES}
    assert {d.config.get("ruleSet") for d, _ in AGENTS} - {None} == {r.name for r in RULE_SETS}


# --- the three demo commands ------------------------------------------------------------


async def test_the_three_demo_commands_answer_offline(demo: Demo) -> None:
    """Submission review (paused for approval), agent status, approval; IT incident."""
    ran = await demo.run("underwriter", "Review the new submission from Acme Logistics")

    assert ran.status == "awaiting_approval"
    assert ran.intent == "submission_review"
    assert ran.execution.plan is not None
    planned = {a["name"] for a in ran.execution.plan["layers"]["Process"]["agents"]}
    assert planned == {"Commercial Property Submission Workflow", "Risk Assessment Workflow"}
    assert ran.with_status("awaiting_approval") == {"Broker Email Response Agent"}
    assert ran.with_status("skipped") == {"Agent Registry Inspector"}
    assert "not in the plan" in (ran.steps["Agent Registry Inspector"].error or "")
    assert {
        "Intent Router",
        "Rachel Thompson Underwriting Assistant",
        "Commercial Property Submission Workflow",
        "Risk Assessment Workflow",
        "COPE Data Extractor",
        "Answer Composer Agent",
    } <= ran.with_status("completed")
    # Nothing of the other personas takes part.
    assert not {"IT Incident Triage Workflow", "Claims FNOL Workflow"} & set(ran.steps)

    facts = ran.output("Rachel Thompson Underwriting Assistant")
    assert facts["values"]["insured_name"] == "Acme Logistics"
    assert facts["missing"] == [
        "year_built",
        "construction",
        "sprinklers",
        "effective_date",
    ]
    risk = ran.output("Risk Assessment Workflow")
    assert (risk["outcome"], risk["reasonCode"], risk["ruleSet"], risk["version"]) == (
        "request_information",
        "key_data_missing",
        "property-risk-appetite",
        1,
    )
    draft = ran.output("Broker Email Response Agent")["text"]
    assert "Subject: Acme Logistics - information needed to complete our review" in draft
    for item in ("total insured value (TIV)", "year built", "effective date"):
        assert f"- {item}" in draft
    assert "Rachel Thompson" in draft  # the carrier-brand sign-off for underwriters
    assert ran.execution.result is None
    waiting = [
        e for e in demo.events(ran.execution.execution_id) if e["type"] == "awaiting_approval"
    ]
    assert [s["agentName"] for s in waiting[0]["steps"]] == ["Broker Email Response Agent"]

    # An admin asks what waits: the pending agents and this execution.
    status = await demo.run("admin", "Which agents are waiting for approval?")
    assert status.status == "completed"
    assert status.intent == "agent_status"
    # under_review and pending agents still run: only blocked and rejected ones are skipped
    assert {"Persona Generation Agent", "Voice Interface Agent", "Agent Registry Inspector"} <= (
        status.with_status("completed")
    )
    assert status.with_status("skipped") == {
        "Claims FNOL Workflow",
        "Document Intelligence Extractor",
    }
    inspected = status.output("Agent Registry Inspector")
    assert [a["name"] for a in inspected["agents"]] == [
        "Persona Generation Agent",
        "Voice Interface Agent",
    ]
    assert [e["executionId"] for e in inspected["executions"]] == [ran.execution.execution_id]
    assert status.response.startswith(
        "2 agents await governance approval (Persona Generation Agent, Voice Interface "
        "Agent); 1 execution awaits a human decision."
    )
    assert "- Persona Generation Agent (Role layer, admin): under_review" in status.response
    assert "- Voice Interface Agent (Interface layer, admin): pending" in status.response
    assert ran.execution.execution_id in status.response

    # Rachel approves the draft: the execution completes with the answer and the e-mail.
    done = await demo.approve(ran.execution.execution_id, "looks right")
    assert done.status == "completed"
    assert done.steps["Broker Email Response Agent"].status == "completed"
    assert done.steps["Broker Email Response Agent"].decision_comment == "looks right"
    answer, _, email = done.response.partition("\n\n")
    assert answer.startswith("Submission review: Acme Logistics\n")
    assert (
        "Missing: total insured value (TIV), year built, construction type, sprinkler "
        "protection, effective date, risk address"
    ) in answer
    assert "Risk assessment: request_information (key_data_missing" in answer
    assert email.startswith("To: the submitting broker\nSubject: Acme Logistics")
    assert draft in done.response
    assert done.execution.result is not None
    assert done.execution.result["intent"] == "submission_review"

    # John's command: an urgent VPN problem of one user.
    incident = await demo.run("it_support", "Laptop won't connect to VPN, urgent")

    assert incident.status == "completed", incident.execution.error
    assert incident.intent == "it_incident"
    assert incident.output("Incident Response Coordinator")["impact"] == "low"
    assert incident.output("John Stevens IT Support Assistant")["urgency"] == "high"
    triage = incident.output("IT Incident Triage Workflow")
    assert (triage["outcome"], triage["reasonCode"], triage["ruleSet"], triage["version"]) == (
        "P3",
        "impact_low_urgency_high",
        "itil-priority",
        1,
    )
    assert incident.output("Incident Category Classifier")["category"] == "network"
    assert incident.output("Resolver Group Router")["outcome"] == "Network Operations"
    assert incident.with_status("skipped") == {
        "Agent Registry Inspector",
        "Document Intelligence Extractor",
    }
    assert incident.response.startswith(
        "Incident ticket: Laptop won't connect to VPN, urgent\n"
        "Priority P3 (impact low, urgency high; rule table itil-priority v1)\n"
        "Category: network | Resolver group: Network Operations\n"
    )
    assert (
        'we have logged your incident "Laptop won\'t connect to VPN, urgent" with priority P3 '
        "and assigned it to Network Operations"
    ) in incident.response


async def test_pasted_emails_are_extracted_and_decided(demo: Demo) -> None:
    """Records of the example set pasted as commands: their expected values come out."""
    # A pasted e-mail from the example set: the whole company has no e-mail.
    record = SAMPLES["it-v-001"]
    mail = await demo.run("it_support", pasted(record))
    assert mail.status == "completed", mail.execution.error
    assert mail.intent == "it_incident"
    expected = record["expected"]
    assert mail.output("Incident Category Classifier")["category"] == expected["category"]
    assert mail.output("Incident Response Coordinator")["impact"] == expected["impact"]
    assert mail.output("John Stevens IT Support Assistant")["urgency"] == expected["urgency"]
    assert mail.output("IT Incident Triage Workflow")["outcome"] == expected["priority"] == "P1"
    details = mail.output("Incident Details Extractor")["values"]
    assert details["affected_users"] == expected["affected_users"] == 210
    assert details["reporter"] == "Renée Halvorsen"
    assert details["callback_phone"] == "555-0187"
    assert mail.output("Resolver Group Router")["outcome"] == "Major Incident Management"
    assert "Priority P1 (impact high, urgency high" in mail.response
    assert "Hello Renée, we have logged your incident" in mail.response

    record = SAMPLES["bs-v-001"]
    ran = await demo.run("underwriter", pasted(record))

    assert ran.status == "awaiting_approval"
    assert ran.intent == "submission_review"
    expected = record["expected"]
    facts = ran.output("Rachel Thompson Underwriting Assistant")
    values = facts["values"]
    for name in ("insured_name", "tiv", "year_built", "effective_date"):
        assert values[name] == expected[name], name
    assert values["construction"] == "masonry non-combustible"
    assert values["sprinklers"] == "none"
    assert values["broker_email"] == "apetrosyan@sandbarbrokerage.example.org"
    assert facts["missing"] == []
    record_values = ran.output("Commercial Property Submission Workflow")["values"]
    for name in ("address", "building_value", "bpp_value", "bi_value"):
        assert record_values[name] == expected[name], name
    cope = ran.output("COPE Data Extractor")["values"]
    assert (cope["protection_class"], cope["flood_zone"]) == (
        expected["ppc"],
        expected["flood_zone"],
    )
    assert ran.output("Underwriting Workflow Coordinator")["occupancy"] == "light"
    assert ran.output("Risk Assessment Workflow")["outcome"] == "quote"
    draft = ran.output("Broker Email Response Agent")["text"]
    assert draft.startswith(
        "To: apetrosyan@sandbarbrokerage.example.org\n"
        "Subject: Seagrape Family Dental, P.A. - submission received\n\nDear Alina,"
    )
    assert "ahead of the 2027-01-01 effective date" in draft

    # Out of appetite (cannabis processing): the draft declines; Rachel rejects it.
    declined = await demo.run("underwriter", pasted(SAMPLES["bs-v-005"]))
    assert declined.output("Underwriting Workflow Coordinator")["occupancy"] == "out_of_appetite"
    risk = declined.output("Risk Assessment Workflow")
    assert (risk["outcome"], risk["reasonCode"]) == ("decline", "occupancy_out_of_appetite")
    assert "outside our appetite" in declined.output("Broker Email Response Agent")["text"]
    rejected = await demo.reject(declined.execution.execution_id, "call the broker instead")
    assert rejected.status == "rejected"
    assert rejected.steps["Broker Email Response Agent"].status == "rejected"
    assert rejected.execution.error == "rejected by tests: call the broker instead"
