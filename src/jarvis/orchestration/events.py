"""Execution events: what is stored in ``agent_execution_events`` and published.

Every event is a JSON object with ``type``, ``executionId``, ``seq`` (1, 2, ... per
execution, no gaps) and ``at``; the rest depends on the type. Events are numbered and
stored in the transaction that records the transition they describe, and published on
the bus only after that transaction commits.
"""

from __future__ import annotations

from typing import Any, Final

# The bus channel every execution event goes out on (subscribers filter by executionId).
EVENTS_CHANNEL: Final = "jarvis.executions"
# Instructions to whichever engine runs an execution (e.g. cancel), across instances.
CONTROL_CHANNEL: Final = "jarvis.executions.control"

EVENT_TYPES: Final = (
    "execution_queued",
    "execution_started",
    "execution_resumed",
    "layer_started",
    "step_started",
    "step_completed",
    "step_failed",
    "step_skipped",
    "step_cancelled",
    "layer_completed",
    "awaiting_approval",
    "step_approved",
    "step_rejected",
    "execution_completed",
    "execution_failed",
    "execution_cancelled",
    "execution_rejected",
)

Event = dict[str, Any]


def event(type_: str, **fields: Any) -> Event:
    """An event body without its number: ``seq``, ``executionId`` and ``at`` are added when
    it is stored."""
    return {"type": type_, **fields}


def step_fields(step_id: int, agent_id: int | None, name: str, layer: str) -> dict[str, Any]:
    """The members every step event carries."""
    return {"stepId": step_id, "agentId": agent_id, "agentName": name, "layer": layer}
