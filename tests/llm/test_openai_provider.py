"""The ``openai`` provider through the real SDK against a fake OpenAI-compatible server on
loopback, and provider resolution per agent and persona through ConfigService."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from jarvis.config.registry import RegistryChanges
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.core.scope import GLOBAL, Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.llm.base import FieldSpec, GenerationRequest, LabelSpec, ProviderError
from jarvis.llm.openai_provider import OpenAIProvider
from jarvis.llm.providers import Providers
from jarvis.settings import Settings
from jarvis.wiring import config_service
from tests.factories import TEST_ACTOR, create_agent, create_user
from tests.llm.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
LABELS = [
    LabelSpec("claim", "A new insurance claim: loss, damage, accident"),
    LabelSpec("it_incident", "A laptop, VPN, network or sign-in problem"),
    LabelSpec("submission", "A commercial property submission to underwrite"),
]
SCHEMA = {
    "type": "object",
    "properties": {"priority": {"enum": ["low", "high"]}, "score": {"type": "integer"}},
    "required": ["priority", "score"],
    "additionalProperties": False,
}


def provider_for(
    server: FakeOpenAI, *, api_key: str | None = KEY, timeout: float = 10.0
) -> OpenAIProvider:
    return OpenAIProvider(base_url=server.base_url, api_key=api_key, timeout_seconds=timeout)


@pytest.fixture
async def provider(fake_openai: FakeOpenAI) -> Any:
    client = provider_for(fake_openai)
    yield client
    await client.close()


def words(request: Any) -> int:
    return sum(len(str(m["content"]).split()) for m in request.body["messages"])


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- classify -----------------------------------------------------------------------------


async def test_classify_sends_the_labels_and_reads_the_answer(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    result = await provider.classify(
        "My laptop cannot connect to the VPN since this morning", LABELS, model="gpt-test"
    )

    assert result.label == "it_incident"
    assert 0 < result.confidence <= 1
    assert result.scores == {"it_incident": result.confidence}
    [request] = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-test"
    assert request.body["response_format"] == {"type": "json_object"}
    system, user = request.body["messages"]
    assert system["role"] == "system"
    for label in LABELS:
        assert f"- {label.name}: {label.description}" in system["content"]
    assert user == {
        "role": "user",
        "content": "My laptop cannot connect to the VPN since this morning",
    }
    # Usage is what the server reported, attributed to this provider and model.
    assert result.usage is not None
    assert result.usage.provider == "openai"
    assert result.usage.model == "gpt-test"
    assert result.usage.prompt_tokens == words(request)
    assert result.usage.completion_tokens == len(
        json.dumps({"label": result.label, "confidence": result.confidence}).split()
    )
    assert isinstance(result.usage.latency_ms, int) and result.usage.latency_ms >= 0


async def test_classify_picks_by_the_text(provider: OpenAIProvider) -> None:
    result = await provider.classify(
        "Water damage after a burst pipe, I want to file a claim for the loss", LABELS, model="m"
    )
    assert result.label == "claim"


@pytest.mark.parametrize(
    ("answer", "label", "confidence"),
    [
        ({"label": "claim", "confidence": 0.42}, "claim", 0.42),
        ({"label": "CLAIM", "confidence": 0.5}, "claim", 0.5),
        ({"label": "claim", "confidence": 1.7}, "claim", 1.0),
        ({"label": "claim", "confidence": -3}, "claim", 0.0),
        ({"label": "claim", "confidence": "0.8"}, "claim", 0.8),
    ],
)
async def test_classify_normalises_label_case_and_clamps_confidence(
    fake_openai: FakeOpenAI,
    provider: OpenAIProvider,
    answer: dict[str, Any],
    label: str,
    confidence: float,
) -> None:
    fake_openai.reply(json.dumps(answer))
    result = await provider.classify("anything", LABELS, model="m")
    assert (result.label, result.confidence) == (label, confidence)


async def test_classify_refuses_a_label_that_was_not_offered(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply('{"label": "fraud", "confidence": 0.9}')
    with pytest.raises(ProviderError) as caught:
        await provider.classify("anything", LABELS, model="m")
    assert "'fraud'" in caught.value.detail
    assert "claim, it_incident, submission" in caught.value.detail


async def test_classify_needs_a_numeric_confidence(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply('{"label": "claim", "confidence": "very"}')
    with pytest.raises(ProviderError, match="no numeric confidence"):
        await provider.classify("anything", LABELS, model="m")


async def test_classify_accepts_json_in_a_code_fence(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply('```json\n{"label": "submission", "confidence": 0.7}\n```')
    result = await provider.classify("anything", LABELS, model="m")
    assert (result.label, result.confidence) == ("submission", 0.7)


# --- extract ------------------------------------------------------------------------------


FIELDS = [
    FieldSpec("insured_name", "string", "The company to insure"),
    FieldSpec("year_built", "integer"),
    FieldSpec("total_insured_value", "number"),
    FieldSpec("sprinklered", "boolean"),
    FieldSpec("inception_date", "date"),
    FieldSpec("occupancies", "list"),
    FieldSpec("broker", "string", required=True),
]


async def test_extract_converts_each_field_to_its_type(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    text = (
        "Insured name: Acme Logistics. Year built: 1998; total insured value 12,500,000.50; "
        "sprinklered yes; inception date 2025-07-01; occupancies: warehouse, office\n"
    )
    result = await provider.extract(text, FIELDS, model="extractor-model")

    values = {name: found.value for name, found in result.fields.items()}
    assert values == {
        "insured_name": "Acme Logistics",
        "year_built": 1998,
        "total_insured_value": 12500000.5,
        "sprinklered": True,
        "inception_date": "2025-07-01",
        "occupancies": ["warehouse", "office"],
        "broker": None,
    }
    assert result.fields["year_built"].confidence == 0.9
    assert result.fields["broker"].confidence == 0.0
    [request] = fake_openai.requests
    system = request.body["messages"][0]["content"]
    assert "- insured_name (a string): The company to insure" in system
    assert '- inception_date (a date as "YYYY-MM-DD")' in system
    assert request.body["response_format"] == {"type": "json_object"}
    assert result.usage is not None and result.usage.model == "extractor-model"
    assert result.usage.prompt_tokens == words(request)


async def test_extract_reads_lenient_but_meaningful_values(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply(
        json.dumps(
            {
                "insured_name": {"value": 42, "confidence": 0.6},
                "year_built": {"value": "1,998", "confidence": 2},
                "total_insured_value": {"value": "N/A", "confidence": 0.9},
                "sprinklered": {"value": "no", "confidence": 0.8},
                "inception_date": {"value": "2025-07-01T00:00:00", "confidence": 0.7},
                "occupancies": {"value": "warehouse", "confidence": 0.5},
            }
        )
    )
    result = await provider.extract("text", FIELDS, model="m")
    got = {name: (f.value, f.confidence) for name, f in result.fields.items()}
    assert got == {
        "insured_name": ("42", 0.6),
        "year_built": (1998, 1.0),
        "total_insured_value": (None, 0.0),
        "sprinklered": (False, 0.8),
        "inception_date": ("2025-07-01", 0.7),
        "occupancies": (["warehouse"], 0.5),
        "broker": (None, 0.0),
    }


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ({"year_built": {"value": "old", "confidence": 0.9}}, "'year_built' is not an integer"),
        ({"year_built": {"value": 1998.5, "confidence": 0.9}}, "'year_built' is not an integer"),
        ({"inception_date": {"value": "next July", "confidence": 0.9}}, "'inception_date'"),
        ({"sprinklered": {"value": "maybe", "confidence": 0.9}}, "not true or false"),
        ({"year_built": 1998}, "'year_built' is not an object"),
        ({"year_built": {"value": 1998}}, "no numeric confidence for the field 'year_built'"),
    ],
)
async def test_extract_refuses_values_that_do_not_fit(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, member: dict[str, Any], message: str
) -> None:
    fake_openai.reply(json.dumps(member))
    with pytest.raises(ProviderError) as caught:
        await provider.extract("text", FIELDS, model="m")
    assert message in caught.value.detail


# --- generate -----------------------------------------------------------------------------


async def test_generate_plain_text_passes_the_options(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    result = await provider.generate(
        GenerationRequest(
            prompt="Summarise the submission",
            model="writer",
            system="You are an underwriting assistant.",
            max_tokens=256,
            temperature=0.2,
        )
    )
    assert result.text == "Echo: Summarise the submission"
    assert result.data is None
    [request] = fake_openai.requests
    assert request.body["messages"] == [
        {"role": "system", "content": "You are an underwriting assistant."},
        {"role": "user", "content": "Summarise the submission"},
    ]
    assert request.body["max_tokens"] == 256
    assert request.body["temperature"] == 0.2
    assert "response_format" not in request.body
    assert result.usage is not None and result.usage.completion_tokens == 4


async def test_generate_sends_only_what_was_given(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    await provider.generate(GenerationRequest(prompt="Hello", model="writer", template="ignored"))
    [request] = fake_openai.requests
    assert request.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert not {"max_tokens", "temperature", "response_format"} & set(request.body)


async def test_generate_with_a_schema_returns_the_validated_object(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    result = await provider.generate(
        GenerationRequest(prompt="Rate it", model="m", system="Be brief.", output_schema=SCHEMA)
    )
    assert result.data == {"priority": "low", "score": 0}
    assert json.loads(result.text) == result.data
    [request] = fake_openai.requests
    system = request.body["messages"][0]["content"]
    assert system.startswith("Be brief.\n\n")
    assert json.dumps(SCHEMA) in system
    assert request.body["response_format"] == {"type": "json_object"}


async def test_generate_refuses_an_object_that_fails_the_schema(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply('{"priority": "urgent", "score": 3}')
    with pytest.raises(ProviderError) as caught:
        await provider.generate(
            GenerationRequest(prompt="Rate it", model="m", output_schema=SCHEMA)
        )
    assert "does not satisfy the output schema at priority" in caught.value.detail
    assert "'urgent' is not one of ['low', 'high']" in caught.value.detail


async def test_generate_refuses_json_that_is_not_an_object(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply("[1, 2, 3]")
    with pytest.raises(ProviderError, match="JSON that is not an object"):
        await provider.generate(GenerationRequest(prompt="x", model="m", output_schema=SCHEMA))


async def test_usage_is_zero_when_the_server_reports_none(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.reply("plain words", usage=False)
    result = await provider.generate(GenerationRequest(prompt="x", model="m"))
    assert result.text == "plain words"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (0, 0)


# --- the key ------------------------------------------------------------------------------


async def test_the_configured_key_is_sent_as_bearer(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.require_key(KEY)
    await provider.generate(GenerationRequest(prompt="x", model="m"))
    assert fake_openai.requests[0].authorization == f"Bearer {KEY}"


async def test_without_a_key_a_placeholder_is_sent(fake_openai: FakeOpenAI) -> None:
    client = provider_for(fake_openai, api_key=None)
    try:
        result = await client.generate(GenerationRequest(prompt="x", model="m"))
    finally:
        await client.close()
    assert result.text == "Echo: x"
    assert fake_openai.requests[0].authorization == "Bearer unset"


async def test_a_refused_key_is_reported_without_the_key(fake_openai: FakeOpenAI) -> None:
    fake_openai.require_key("sk-the-right-one")
    client = provider_for(fake_openai)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.classify("x", LABELS, model="m")
    finally:
        await client.close()
    assert "refused the API key (HTTP 401)" in caught.value.detail
    assert "JARVIS_OPENAI_API_KEY" in caught.value.detail
    assert KEY not in caught.value.detail and KEY not in repr(caught.value)
    assert KEY not in repr(client)


async def test_a_missing_key_is_reported_as_missing(fake_openai: FakeOpenAI) -> None:
    fake_openai.require_key("sk-the-right-one")
    client = provider_for(fake_openai, api_key=None)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.generate(GenerationRequest(prompt="x", model="m"))
    finally:
        await client.close()
    assert "needs an API key (HTTP 401) and none is set" in caught.value.detail
    assert "set JARVIS_OPENAI_API_KEY" in caught.value.detail


# --- failures -----------------------------------------------------------------------------


async def test_an_unreachable_endpoint_names_the_base_url() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    client = OpenAIProvider(base_url=base_url, api_key=KEY, timeout_seconds=5)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.classify("x", LABELS, model="m")
    finally:
        await client.close()
    assert caught.value.detail.startswith(f"cannot reach the LLM endpoint {base_url}: ")
    assert "connection refused" in caught.value.detail


async def test_credentials_in_the_base_url_stay_out_of_messages() -> None:
    client = OpenAIProvider(
        base_url=f"http://user:hunter2@127.0.0.1:{free_port()}/v1?token=abc",
        api_key=None,
        timeout_seconds=5,
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await client.generate(GenerationRequest(prompt="x", model="m"))
    finally:
        await client.close()
    assert "hunter2" not in caught.value.detail
    assert "token=abc" not in caught.value.detail


async def test_a_slow_endpoint_times_out_saying_how_long(fake_openai: FakeOpenAI) -> None:
    fake_openai.delay(30)
    client = provider_for(fake_openai, timeout=0.2)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.generate(GenerationRequest(prompt="x", model="m"))
    finally:
        await client.close()
    assert caught.value.detail == (
        f"the LLM endpoint {fake_openai.base_url} did not answer within 0.2 s (llm.timeout_seconds)"
    )


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (403, {}, "refused the API key for this request (HTTP 403): no access to model m"),
        (404, {}, "rejected the request (HTTP 404): no access to model m"),
        (
            429,
            {"retry-after": "20"},
            "is rate limiting requests (HTTP 429): no access to model m; retry after 20 s",
        ),
        (500, {}, "failed (HTTP 500): no access to model m"),
        (503, {}, "failed (HTTP 503): no access to model m"),
    ],
)
async def test_error_statuses_are_mapped_with_the_server_message(
    fake_openai: FakeOpenAI,
    provider: OpenAIProvider,
    status: int,
    headers: dict[str, str],
    expected: str,
) -> None:
    fake_openai.fail(status, "no access to model m", headers=headers)
    with pytest.raises(ProviderError) as caught:
        await provider.generate(GenerationRequest(prompt="x", model="m"))
    assert caught.value.detail == f"the LLM endpoint {fake_openai.base_url} {expected}"
    # The SDK does not retry behind the engine's back.
    assert len(fake_openai.requests) == 1


async def test_server_text_quoting_a_key_is_scrubbed(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.fail(500, f"upstream rejected {KEY} and sk-other-secret-key")
    with pytest.raises(ProviderError) as caught:
        await provider.generate(GenerationRequest(prompt="x", model="m"))
    assert KEY not in caught.value.detail
    assert "sk-other-secret-key" not in caught.value.detail
    assert "upstream rejected *** and ***" in caught.value.detail


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (
            lambda s: s.reply("I think it is a claim"),
            "the model did not answer with JSON: I think it is a claim",
        ),
        (
            lambda s: s.reply('{"label": "cla', finish_reason="length"),
            "cut off at its token limit",
        ),
        (
            lambda s: s.reply_raw("<html>Bad gateway</html>"),
            "did not answer with a chat completion",
        ),
        (
            lambda s: s.reply_raw("{not json", content_type="application/json"),
            "sent a response that is not valid JSON",
        ),
        (
            lambda s: s.reply_body(
                {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}
            ),
            "answered with no choices",
        ),
        (lambda s: s.reply("   "), "answered with no content (finish_reason: stop)"),
        (
            lambda s: s.reply_body(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "refusal": "I cannot help with that.",
                            },
                            "finish_reason": "stop",
                        }
                    ],
                }
            ),
            "the model refused the task: I cannot help with that.",
        ),
    ],
)
async def test_malformed_answers_are_provider_errors(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, arrange: Any, expected: str
) -> None:
    arrange(fake_openai)
    with pytest.raises(ProviderError) as caught:
        await provider.classify("x", LABELS, model="m")
    assert expected in caught.value.detail


# --- providers per agent and persona ------------------------------------------------------


class FourEyes:
    """Stores values the way an admin must for keys that need approval (``llm.provider``):
    one admin requests the change, another approves it."""

    def __init__(self, db: Database, config: ConfigService) -> None:
        self.db, self.config = db, config
        self.requester: Actor | None = None
        self.approver: Actor | None = None

    async def set(self, key: str, value: Any, scope: Scope) -> None:
        if self.requester is None or self.approver is None:
            users = [await create_user(self.db, persona="admin") for _ in range(2)]
            self.requester, self.approver = [Actor(u.email, user_id=u.id) for u in users]
        async with unit_of_work(self.db) as session:
            outcome = await self.config.set_value(session, key, value, scope, actor=self.requester)
        if outcome.request is None:
            return
        async with unit_of_work(self.db) as session:
            await self.config.approve(session, outcome.request.id, actor=self.approver)


async def test_providers_resolve_per_agent_and_persona(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    config = config_service(db, poll_seconds=0)
    admins = FourEyes(db, config)
    ollama, offline = (await create_agent(db)).id, (await create_agent(db)).id
    providers = Providers(api_key=KEY)
    try:
        provider, model = await providers.for_scope(config, Scope("admin", ollama))
        assert (provider.name, model) == ("rules", "gpt-4o-mini")  # the defaults

        await admins.set("llm.provider", "openai", Scope(agent_id=ollama))
        await admins.set("llm.base_url", fake_openai.base_url, GLOBAL)
        await admins.set("llm.model", "llama3.2", Scope("underwriter"))

        provider, model = await providers.for_scope(config, Scope("underwriter", ollama))
        assert (provider.name, model) == ("openai", "llama3.2")
        assert isinstance(provider, OpenAIProvider)
        assert provider.base_url == fake_openai.base_url
        provider, model = await providers.for_scope(config, Scope("admin", ollama))
        assert (provider.name, model) == ("openai", "gpt-4o-mini")
        other, model = await providers.for_scope(config, Scope("underwriter", offline))
        assert (other.name, model) == ("rules", "llama3.2")

        # The resolved provider really calls the configured endpoint with the model.
        provider, model = await providers.for_scope(config, Scope("underwriter", ollama))
        result = await provider.classify("VPN down on my laptop", LABELS, model=model)
        assert result.label == "it_incident"
        [request] = fake_openai.requests
        assert request.body["model"] == "llama3.2"
        assert request.authorization == f"Bearer {KEY}"
    finally:
        await providers.close()


async def test_provider_instances_are_shared_per_endpoint_and_timeout(
    db: Database, fake_openai: FakeOpenAI
) -> None:
    config = config_service(db, poll_seconds=0)
    admins = FourEyes(db, config)
    first, second = (await create_agent(db)).id, (await create_agent(db)).id
    await admins.set("llm.provider", "openai", GLOBAL)
    await admins.set("llm.base_url", fake_openai.base_url, GLOBAL)
    await admins.set("llm.base_url", fake_openai.base_url + "/", Scope("admin"))
    providers = Providers(api_key=None)
    try:
        a, _ = await providers.for_scope(config, Scope("underwriter", first))
        b, _ = await providers.for_scope(config, Scope("admin", second))
        assert a is b  # ".../v1" and ".../v1/" are one endpoint, one connection pool

        await admins.set("llm.timeout_seconds", 5, Scope(agent_id=second))
        c, _ = await providers.for_scope(config, Scope("admin", second))
        assert c is not a
        assert isinstance(c, OpenAIProvider) and c.timeout_seconds == 5
        again, _ = await providers.for_scope(config, Scope("admin", second))
        assert again is c

        await providers.close()
        fresh, _ = await providers.for_scope(config, Scope("admin", first))
        assert fresh is not a  # closed clients are not handed out again
    finally:
        await providers.close()


async def test_providers_from_settings_send_the_environment_key(fake_openai: FakeOpenAI) -> None:
    settings = Settings(openai_api_key="sk-from-the-environment")
    assert "sk-from-the-environment" not in repr(settings)
    providers = Providers.from_settings(settings)
    try:
        provider = providers.openai(fake_openai.base_url, 10)
        await provider.generate(GenerationRequest(prompt="x", model="m"))
    finally:
        await providers.close()
    assert fake_openai.requests[0].authorization == "Bearer sk-from-the-environment"


async def test_an_unknown_provider_name_fails_clearly(db: Database) -> None:
    config = config_service(db, poll_seconds=0)
    # An admin widened the key's schema (applied directly: the test is about the lookup).
    async with unit_of_work(db) as session:
        await config.update_key(
            session,
            "llm.provider",
            RegistryChanges(schema={"type": "string", "enum": ["rules", "openai", "acme"]}),
            actor=TEST_ACTOR,
        )
    await FourEyes(db, config).set("llm.provider", "acme", Scope("admin"))
    providers = Providers()
    with pytest.raises(ProviderError) as caught:
        await providers.for_scope(config, Scope("admin"))
    assert caught.value.detail == (
        "llm.provider is 'acme' for persona=admin; known providers: rules, openai"
    )
    provider, _ = await providers.for_scope(config, Scope("underwriter"))
    assert provider.name == "rules"
