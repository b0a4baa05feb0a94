"""Which agents take part in an execution, and the Meta Brain's plan.

Pure functions over the registry's rows, so the rules are easy to read and to test:

- an agent takes part in a layer when it is enabled and serves the execution's persona
  (its own persona, or every persona when ``serves_all_personas``);
- ``blocked`` and ``rejected`` agents never run: they are recorded as skipped with the
  reason;
- after the Meta Brain layer the plan names the intent; Process, System and Interface
  agents whose configured ``intents`` do not include it are skipped (agents that declare
  none serve every intent), so an answer or an e-mail draft meant for one intent is not
  produced (or held for approval) for another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jarvis.agents.kinds.base import AgentSpec, agent_handle
from jarvis.core.layers import LAYER_ORDER, Layer

BARRED_STATUSES = frozenset({"blocked", "rejected"})
PLANNED_LAYERS = (Layer.PROCESS.value, Layer.SYSTEM.value, Layer.INTERFACE.value)


@dataclass(frozen=True)
class Candidate:
    """An agent considered for one layer, and why it will not run (None: it runs)."""

    spec: AgentSpec
    governance_status: str
    skip_reason: str | None = None


def serves(agent_persona: str, serves_all: bool, persona: str) -> bool:
    return serves_all or agent_persona == persona


def unique_handles(rows: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Each agent's handle; a clash of slugs (``A-B`` and ``A B``) gets the id appended."""
    handles: dict[int, str] = {}
    taken: set[str] = set()
    for row in rows:
        handle = agent_handle(row["name"])
        if handle in taken:
            handle = f"{handle}_{row['id']}"
        taken.add(handle)
        handles[row["id"]] = handle
    return handles


def candidates_by_layer(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Candidate]]:
    """Group agent rows (already filtered by persona and ``enabled``, in registry order)
    into layers, marking barred ones."""
    handles = unique_handles(rows)
    out: dict[str, list[Candidate]] = {layer.value: [] for layer in LAYER_ORDER}
    for row in rows:
        spec = AgentSpec(
            id=row["id"],
            name=row["name"],
            handle=handles[row["id"]],
            layer=row["layer"],
            persona=row["persona"],
            kind=row["kind"],
            config=dict(row["config"] or {}),
        )
        status = row["governance_status"]
        reason = (
            f"governance status is '{status}': {status} agents never run"
            if status in BARRED_STATUSES
            else None
        )
        out[row["layer"]].append(Candidate(spec, status, reason))
    return out


def _declared_intents(spec: AgentSpec) -> list[str]:
    intents = spec.config.get("intents") or []
    return [str(i) for i in intents] if isinstance(intents, list) else []


def find_intent(outputs: Iterable[tuple[AgentSpec, Mapping[str, Any]]]) -> dict[str, Any]:
    """The intent the Meta Brain layer decided: the first output with an ``intent``."""
    for spec, output in outputs:
        intent = output.get("intent")
        if isinstance(intent, str) and intent:
            confidence = output.get("confidence")
            return {
                "intent": intent,
                "confidence": confidence if isinstance(confidence, int | float) else None,
                "decidedBy": {"agentId": spec.id, "name": spec.name},
            }
    return {"intent": None, "confidence": None, "decidedBy": None}


def make_plan(
    decision: Mapping[str, Any], layers: Mapping[str, Sequence[Candidate]]
) -> dict[str, Any]:
    """The stored plan: the intent and, for the planned layers, who runs and who does not."""
    intent = decision.get("intent")
    plan: dict[str, Any] = {**decision, "layers": {}}
    for layer in PLANNED_LAYERS:
        selected: list[dict[str, Any]] = []
        excluded: list[dict[str, Any]] = []
        for candidate in layers.get(layer, ()):
            spec = candidate.spec
            entry = {"agentId": spec.id, "name": spec.name}
            if candidate.skip_reason is not None:
                excluded.append({**entry, "reason": candidate.skip_reason})
                continue
            declared = _declared_intents(spec)
            if declared and intent not in declared:
                wanted = ", ".join(declared)
                why = (
                    f"serves intents {wanted}; the command's intent is '{intent}'"
                    if intent
                    else f"serves intents {wanted}; no intent was decided"
                )
                excluded.append({**entry, "reason": why})
            else:
                selected.append(entry)
        plan["layers"][layer] = {"agents": selected, "excluded": excluded}
    return plan


def apply_plan(
    plan: Mapping[str, Any] | None, layer: str, candidates: Sequence[Candidate]
) -> list[Candidate]:
    """The layer's candidates with the plan's exclusions marked as skip reasons."""
    if plan is None or layer not in PLANNED_LAYERS:
        return list(candidates)
    excluded = {
        entry["agentId"]: entry["reason"]
        for entry in plan.get("layers", {}).get(layer, {}).get("excluded", [])
    }
    out = []
    for candidate in candidates:
        reason = candidate.skip_reason or excluded.get(candidate.spec.id)
        if reason is not None and candidate.skip_reason is None:
            reason = f"not in the plan: {reason}"
        out.append(Candidate(candidate.spec, candidate.governance_status, reason))
    return out
