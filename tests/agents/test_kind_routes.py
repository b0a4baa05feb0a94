"""``GET /api/agent-kinds`` and kind config validation through ``/api/agents``."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from jarvis.agents.kind_routes import router
from jarvis.agents.kinds.registry import validate_agent_config
from jarvis.db.engine import Database
from jarvis.errors import ValidationFailed
from jarvis.settings import Settings
from tests.factories import app_client
from tests.problems import assert_problem

BUILTIN = ["agent_status", "classifier", "echo", "extractor", "http", "llm", "rules", "template"]


async def test_lists_kinds_with_their_config_schemas(settings: Settings, db: Database) -> None:
    async with app_client(settings, db, router) as client:
        response = await client.get("/api/agent-kinds")  # no credentials needed, like /agents
        assert response.status_code == 200, response.text
        page = response.json()
        names = [item["name"] for item in page["items"]]
        assert set(BUILTIN) <= set(names)
        assert names == sorted(names)
        assert (page["total"], page["limit"], page["offset"]) == (len(names), 50, 0)
        kinds = {item["name"]: item for item in page["items"]}
        assert "labels" in kinds["classifier"]["description"]
        schema = kinds["classifier"]["configSchema"]
        assert {"labels", "outputKey", "defaultLabel", "minConfidence", "requiresApproval"} <= set(
            schema["properties"]
        )
        assert schema["additionalProperties"] is False

        second = (await client.get("/api/agent-kinds", params={"limit": 2, "offset": 1})).json()
        assert [item["name"] for item in second["items"]] == names[1:3]
        assert second["total"] == len(names)
        assert_problem(await client.get("/api/agent-kinds", params={"limit": 0}), 422)


async def test_published_schemas_accept_good_configs_and_refuse_bad_ones(
    settings: Settings, db: Database
) -> None:
    async with app_client(settings, db, router) as client:
        items = (await client.get("/api/agent-kinds")).json()["items"]
    schemas = {item["name"]: Draft202012Validator(item["configSchema"]) for item in items}
    good: dict[str, dict[str, Any]] = {
        "classifier": {"labels": [{"name": "high", "keywords": ["urgent"]}], "outputKey": "intent"},
        "extractor": {"fields": [{"name": "tiv", "type": "number", "patterns": [r"TIV (\S+)"]}]},
        "rules": {"ruleSet": "uw.appetite", "version": 2},
        "template": {"template": "uw.reply"},
        "llm": {"prompt": "Summarise {{ command }}", "offlineTemplate": "uw.summary"},
        "http": {"url": "https://hooks.example.com/x", "timeoutSeconds": 5},
        "agent_status": {"governanceStatuses": ["pending"], "limit": 5},
        "echo": {"delayMs": 10},
    }
    for name, config in good.items():
        assert not list(schemas[name].iter_errors(config)), name
    assert list(schemas["classifier"].iter_errors({"labels": []}))
    assert list(schemas["extractor"].iter_errors({"fields": [{"name": "x", "type": "money"}]}))
    assert list(schemas["http"].iter_errors({"url": "https://x", "timeoutSeconds": 500}))


async def test_create_agent_with_a_pattern_that_does_not_compile_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {
        "name": "Incident Priority",
        "layer": "Process",
        "kind": "classifier",
        "config": {"labels": [{"name": "high", "patterns": ["(unclosed"]}]},
    }
    response = await client.post("/api/agents", json=body, headers=admin_headers)
    problem = assert_problem(response, 422, "labels.0.patterns", "label 'high'", "does not compile")
    assert problem["errors"][0]["loc"] == ["body", "config", "labels", 0, "patterns"]


async def test_create_agent_with_an_unknown_config_key_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {
        "name": "Incident Priority",
        "layer": "Process",
        "kind": "classifier",
        "config": {"labels": [{"name": "high"}], "lables": []},
    }
    response = await client.post("/api/agents", json=body, headers=admin_headers)
    problem = assert_problem(response, 422, "lables")
    assert problem["errors"][0]["loc"] == ["body", "config", "lables"]


async def test_update_agent_config_is_validated_too(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {
        "name": "Submission Reply",
        "layer": "Interface",
        "kind": "llm",
        "config": {"prompt": "Reply to {{ command }}"},
    }
    created = await client.post("/api/agents", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]
    bad_schema = {"config": {"prompt": "x", "outputSchema": {"type": "nonsense"}}}
    response = await client.patch(f"/api/agents/{agent_id}", json=bad_schema, headers=admin_headers)
    assert_problem(response, 422, "outputSchema", "not a valid JSON Schema")
    bad_prompt = {"config": {"prompt": "line one\n{{ unclosed"}}
    response = await client.patch(f"/api/agents/{agent_id}", json=bad_prompt, headers=admin_headers)
    assert_problem(response, 422, "prompt", "line 2")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Near-valid configs: the right keys with arbitrary values reach the deep validators.
near_valid = st.sampled_from(
    [
        ("classifier", lambda v: {"labels": [{"name": "a", "patterns": [v]}], "defaultLabel": v}),
        ("classifier", lambda v: {"labels": [{"name": "a", "keywords": v}], "outputKey": v}),
        ("extractor", lambda v: {"fields": [{"name": "a", "type": v, "patterns": v}]}),
        ("llm", lambda v: {"prompt": v, "system": v}),
        ("llm", lambda v: {"prompt": "x", "outputSchema": v}),
        ("http", lambda v: {"url": v, "headers": v}),
        ("rules", lambda v: {"ruleSet": v, "version": v}),
        ("template", lambda v: {"template": v}),
        ("agent_status", lambda v: {"governanceStatuses": v, "limit": v}),
    ]
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(case=near_valid, value=json_values | st.text())
def test_config_validation_only_ever_answers_422(case: Any, value: Any) -> None:
    kind, build = case
    try:
        validate_agent_config(kind, build(value))
    except ValidationFailed as exc:
        assert exc.errors and exc.errors[0]["loc"][:1] == ["config"]
