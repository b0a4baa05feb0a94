"""Steps that call a language model: the real ``openai`` SDK against the fake
OpenAI-compatible server on loopback (tests/llm/fake_openai.py), through executions.

The provider is switched for one agent only, the way an admin must: ``llm.provider`` needs
a second admin's approval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jarvis.core.identity import Actor
from jarvis.core.scope import Scope
from jarvis.db.session import unit_of_work
from jarvis.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.llm.fake_openai import FakeOpenAI, running_fake_openai
from tests.orchestration.conftest import World, step, token_user

API_KEY = "sk-orchestration-test-0123456789"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app's settings with an OpenAI API key (from the environment, in production)."""
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        log_level="WARNING",
        openai_api_key=API_KEY,
    )


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with running_fake_openai() as server:
        yield server


async def use_openai(world: World, server: FakeOpenAI, agent_id: int) -> None:
    """Point one agent at the fake server: requested by one admin, approved by another."""
    scope = Scope(agent_id=agent_id)
    requester = Actor(world.admin.email, user_id=world.admin.id)
    second = await token_user(world.db, "admin")
    async with unit_of_work(world.db) as session:
        outcome = await world.config.set_value(
            session, "llm.provider", "openai", scope, actor=requester
        )
    assert outcome.request is not None  # four eyes: not applied yet
    async with unit_of_work(world.db) as session:
        await world.config.approve(
            session, outcome.request.id, actor=Actor(second.email, user_id=second.id)
        )
    await world.set("llm.base_url", server.base_url, scope)
    await world.set("llm.model", "gpt-test", scope)


def words(request: Any) -> int:
    return sum(len(str(m["content"]).split()) for m in request.body["messages"])


async def test_an_llm_step_records_its_token_usage(world: World, fake_openai: FakeOpenAI) -> None:
    router = await world.agent(
        "Meta Brain",
        "Router",
        kind="classifier",
        config={
            "outputKey": "intent",
            "labels": [
                {"name": "claim", "description": "A new insurance claim for damage or a loss"},
                {"name": "it_incident", "description": "A laptop, VPN or network problem"},
            ],
        },
    )
    writer = await world.agent(
        "Interface",
        "Writer",
        kind="llm",
        config={"prompt": "Answer the {{ plan.intent }} request: {{ command }}"},
    )
    await world.agent(
        "Role",
        "Offline Classifier",
        kind="classifier",
        config={"labels": [{"name": "x", "keywords": ["damage"]}]},
    )
    await use_openai(world, fake_openai, router.id)
    await use_openai(world, fake_openai, writer.id)

    execution = await world.run("Water damage in the warehouse, I want to file a claim")
    events = await world.events(execution["executionId"])

    assert execution["status"] == "completed", execution
    # The model classified the intent; the plan came from it.
    assert execution["plan"]["intent"] == "claim"
    classify, generate = fake_openai.requests
    assert classify.body["model"] == generate.body["model"] == "gpt-test"
    assert classify.authorization == generate.authorization == f"Bearer {API_KEY}"
    assert generate.text_of("user") == (
        "Answer the claim request: Water damage in the warehouse, I want to file a claim"
    )
    expected_text = (
        "Echo: Answer the claim request: Water damage in the warehouse, I want to file a claim"
    )
    assert step(execution, "Writer")["output"] == {"text": expected_text}
    assert execution["result"]["response"] == expected_text
    for name, request, answer in (
        ("Router", classify, None),
        ("Writer", generate, expected_text),
    ):
        usage = step(execution, name)["tokenUsage"]
        assert usage is not None, name
        assert usage["provider"] == "openai"
        assert usage["model"] == "gpt-test"
        assert usage["promptTokens"] == words(request)
        assert usage["completionTokens"] > 0
        if answer is not None:
            assert usage["completionTokens"] == len(answer.split())
        assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]
        assert isinstance(usage["latencyMs"], int) and usage["latencyMs"] >= 0
        [completed] = [
            e for e in events if e["type"] == "step_completed" and e["agentName"] == name
        ]
        assert completed["tokenUsage"] == usage
    # The agent left on the offline provider did not call the server (two requests above).
    offline_usage = step(execution, "Offline Classifier")["tokenUsage"]
    assert (offline_usage["provider"], offline_usage["model"]) == ("rules", "gpt-4o-mini")
    assert step(execution, "Offline Classifier")["output"]["label"] == "x"


async def test_a_provider_error_fails_the_step_and_is_retried(
    world: World, fake_openai: FakeOpenAI
) -> None:
    writer = await world.agent(
        "Interface", "Writer", kind="llm", config={"prompt": "{{ command }}"}
    )
    await use_openai(world, fake_openai, writer.id)
    await world.set("agent.retry_backoff_seconds", 0)
    await world.set("agent.max_retries", 1, Scope(agent_id=writer.id))

    # One failure, then an answer: the retry completes the step.
    fake_openai.fail(500, "the model is overloaded")
    execution = await world.run("first")
    s = step(execution, "Writer")
    assert execution["status"] == "completed", execution
    assert (s["status"], s["attempt"]) == ("completed", 2)
    assert s["output"] == {"text": "Echo: first"}
    assert s["tokenUsage"]["provider"] == "openai"
    events = await world.events(execution["executionId"])
    [retried] = [e for e in events if e["type"] == "step_failed"]
    assert retried["willRetry"] is True
    assert "HTTP 500" in retried["error"] and "the model is overloaded" in retried["error"]
    assert len(fake_openai.requests) == 2

    # Failures on every attempt (max_retries + 1 of them): the step fails with the error.
    fake_openai.reset()
    fake_openai.fail(500, "still overloaded", times=2)
    execution = await world.run("second")
    s = step(execution, "Writer")
    assert execution["status"] == "failed"
    assert (s["status"], s["attempt"]) == ("failed", 2)
    assert "HTTP 500" in s["error"] and "still overloaded" in s["error"]
    assert fake_openai.base_url.removesuffix("/v1") in s["error"]  # where it failed
    assert API_KEY not in s["error"]
    assert s["tokenUsage"] is None
    assert "still overloaded" in execution["error"]
    assert len(fake_openai.requests) == 2

    # The default provider is offline ('rules'): it renders templates and calls no model,
    # so an llm agent without an offline template fails, saying what to set.
    await world.agent(
        "Interface",
        "Offline Writer",
        persona="underwriter",
        kind="llm",
        config={"prompt": "{{ command }}"},
    )
    execution = await world.run("hello", "underwriter", world.uw_headers)
    assert execution["status"] == "failed"
    s = step(execution, "Offline Writer")
    assert s["status"] == "failed"
    assert "set offlineTemplate" in s["error"]
    assert len(fake_openai.requests) == 2
