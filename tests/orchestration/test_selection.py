"""Who takes part in an execution, against a small reference model (hypothesis).

``jarvis.orchestration.selection`` is pure: rows of the registry in, candidates with skip
reasons and the Meta Brain's plan out. The reference model below restates the documented
rules in the plainest way; hypothesis looks for a registry and an intent on which the two
disagree.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.agents.kinds.base import AgentSpec, agent_handle
from jarvis.core.layers import LAYER_ORDER
from jarvis.orchestration.selection import (
    apply_plan,
    candidates_by_layer,
    find_intent,
    make_plan,
    serves,
    unique_handles,
)

LAYERS = [layer.value for layer in LAYER_ORDER]
STATUSES = ["pending", "under_review", "approved", "rejected", "blocked"]
# The layers the Meta Brain's plan selects agents in (by their declared intents).
PLANNED = ("Process", "System", "Interface")
INTENTS = ["claim", "submission", "it_incident", "renewal"]
NAMES = ["Intake", "intake", "Risk Scorer", "Risk-Scorer", "risk scorer", "Mailer", "A B", "A_B"]


@st.composite
def registries(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Agent rows as ``agents_serving`` returns them (ids unique, in registry order)."""
    count = draw(st.integers(min_value=0, max_value=12))
    rows = []
    for index in range(count):
        intents = draw(st.lists(st.sampled_from(INTENTS), unique=True, max_size=3))
        config: dict[str, Any] | None = draw(
            st.sampled_from(
                [{"intents": intents}, {"intents": intents, "delayMs": 5}]
                + ([{}, None] if not intents else [])
            )
        )
        rows.append(
            {
                "id": 100 + index,
                "name": draw(st.sampled_from(NAMES)) + ("" if draw(st.booleans()) else f" {index}"),
                "layer": draw(st.sampled_from(LAYERS)),
                "persona": draw(st.sampled_from(["admin", "underwriter"])),
                "kind": "echo",
                "config": config,
                "governance_status": draw(st.sampled_from(STATUSES)),
            }
        )
    return rows


# --- the reference model ------------------------------------------------------------------


def declared(row: dict[str, Any]) -> list[str]:
    return list((row["config"] or {}).get("intents") or [])


def governance_reason(row: dict[str, Any]) -> str | None:
    status = row["governance_status"]
    if status in ("blocked", "rejected"):
        return f"governance status is '{status}': {status} agents never run"
    return None


def plan_reason(row: dict[str, Any], intent: str | None) -> str | None:
    """Why the plan leaves the agent out (planned layers only), or None."""
    if row["layer"] not in PLANNED:
        return None
    intents = declared(row)
    if not intents or intent in intents:
        return None
    if intent is None:
        return f"serves intents {', '.join(intents)}; no intent was decided"
    return f"serves intents {', '.join(intents)}; the command's intent is '{intent}'"


def expected_reason(row: dict[str, Any], intent: str | None, *, planned: bool) -> str | None:
    barred = governance_reason(row)
    if barred is not None:
        return barred
    if not planned:
        return None
    why = plan_reason(row, intent)
    return None if why is None else f"not in the plan: {why}"


def expected_plan_layers(rows: list[dict[str, Any]], intent: str | None) -> dict[str, Any]:
    layers: dict[str, Any] = {}
    for layer in PLANNED:
        agents, excluded = [], []
        for row in rows:
            if row["layer"] != layer:
                continue
            entry = {"agentId": row["id"], "name": row["name"]}
            why = governance_reason(row) or plan_reason(row, intent)
            if why is None:
                agents.append(entry)
            else:
                excluded.append({**entry, "reason": why})
        layers[layer] = {"agents": agents, "excluded": excluded}
    return layers


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(rows=registries(), intent=st.none() | st.sampled_from([*INTENTS, "other"]))
def test_the_plan_and_the_skip_reasons_follow_the_rules(
    rows: list[dict[str, Any]], intent: str | None
) -> None:
    layers = candidates_by_layer(rows)

    # Grouped by layer, in registry order, every agent exactly once.
    assert list(layers) == LAYERS
    for layer in LAYERS:
        assert [c.spec.id for c in layers[layer]] == [r["id"] for r in rows if r["layer"] == layer]
    # Before the Meta Brain decides (no plan), only governance bars agents.
    for layer in LAYERS:
        before = apply_plan(None, layer, layers[layer])
        assert [c.skip_reason for c in before] == [
            expected_reason(r, intent, planned=False) for r in rows if r["layer"] == layer
        ]

    decision = {
        "intent": intent,
        "confidence": 0.5 if intent else None,
        "decidedBy": {"agentId": 1, "name": "Router"} if intent else None,
    }
    plan = make_plan(decision, layers)

    assert plan == {**decision, "layers": expected_plan_layers(rows, intent)}
    for layer in LAYERS:
        after = apply_plan(plan, layer, layers[layer])
        assert [(c.spec.id, c.skip_reason) for c in after] == [
            (r["id"], expected_reason(r, intent, planned=True)) for r in rows if r["layer"] == layer
        ]
        assert [c.governance_status for c in after] == [
            r["governance_status"] for r in rows if r["layer"] == layer
        ]
        # Applying the plan twice changes nothing more.
        assert apply_plan(plan, layer, after) == after


@settings(max_examples=50, deadline=None)
@given(rows=registries())
def test_handles_are_unique_slugs_of_the_names(rows: list[dict[str, Any]]) -> None:
    handles = unique_handles(rows)
    assert sorted(handles) == sorted(r["id"] for r in rows)
    assert len(set(handles.values())) == len(rows)
    seen: set[str] = set()
    for row in rows:  # the first holder of a slug keeps it; later clashes get their id
        slug = agent_handle(row["name"])
        assert handles[row["id"]] == (slug if slug not in seen else f"{slug}_{row['id']}")
        seen.add(slug)
    layers = candidates_by_layer(rows)
    assert {c.spec.id: c.spec.handle for cs in layers.values() for c in cs} == handles


OUTPUTS = st.fixed_dictionaries(
    {},
    optional={
        "intent": st.none() | st.sampled_from(["", "claim", "it_incident"]) | st.integers(),
        "confidence": st.none() | st.floats(0, 1) | st.text(max_size=3),
        "label": st.sampled_from(["claim"]),
    },
)


@settings(max_examples=50, deadline=None)
@given(outputs=st.lists(OUTPUTS, max_size=4))
def test_the_intent_is_the_first_meta_brain_output_naming_one(
    outputs: list[dict[str, Any]],
) -> None:
    specs = [
        AgentSpec(
            id=i + 1,
            name=f"Meta {i}",
            handle=f"meta_{i}",
            layer="Meta Brain",
            persona="admin",
            kind="classifier",
            config={},
        )
        for i in range(len(outputs))
    ]
    decision = find_intent(zip(specs, outputs, strict=True))

    deciding = [
        (spec, out)
        for spec, out in zip(specs, outputs, strict=True)
        if isinstance(out.get("intent"), str) and out["intent"]
    ]
    if not deciding:
        assert decision == {"intent": None, "confidence": None, "decidedBy": None}
        return
    spec, out = deciding[0]
    confidence = out.get("confidence")
    assert decision == {
        "intent": out["intent"],
        "confidence": confidence if isinstance(confidence, int | float) else None,
        "decidedBy": {"agentId": spec.id, "name": spec.name},
    }


def test_serving_a_persona() -> None:
    assert serves("underwriter", False, "underwriter")
    assert not serves("underwriter", False, "admin")
    assert serves("underwriter", True, "admin")
