"""Scopes: who a value applies to, and which of several applicable values wins.

A value's scope is any combination of persona, agent and workflow; unset members match
anything. A value applies to a request when every member it sets equals the request's.
Among applicable values the most specific wins, ranked workflow > agent > persona >
global (docs/decisions/0004-config-precedence.md): the rank is
``4 * has_workflow + 2 * has_agent + has_persona``, so a workflow value beats any value
without a workflow, an agent value any value without agent or workflow, and so on; within
one level a value that also names a persona beats one that does not.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class ScopeLevel(StrEnum):
    GLOBAL = "global"
    PERSONA = "persona"
    AGENT = "agent"
    WORKFLOW = "workflow"


LEVELS: tuple[ScopeLevel, ...] = (
    ScopeLevel.GLOBAL,
    ScopeLevel.PERSONA,
    ScopeLevel.AGENT,
    ScopeLevel.WORKFLOW,
)


class Scope(NamedTuple):
    """Who is asking (for reads) or whom a value applies to (for writes).

    A named tuple, so it hashes at C speed as part of the cache key.
    """

    persona: str | None = None
    agent_id: int | None = None
    workflow_id: int | None = None

    @property
    def level(self) -> ScopeLevel:
        if self.workflow_id is not None:
            return ScopeLevel.WORKFLOW
        if self.agent_id is not None:
            return ScopeLevel.AGENT
        if self.persona is not None:
            return ScopeLevel.PERSONA
        return ScopeLevel.GLOBAL

    @property
    def rank(self) -> int:
        return (
            4 * (self.workflow_id is not None)
            + 2 * (self.agent_id is not None)
            + (self.persona is not None)
        )

    @property
    def key(self) -> str:
        """The scope spelled out with NULLs, for the unique constraint: ``persona/agent/wf``."""
        return "/".join(
            "" if part is None else str(part)
            for part in (self.persona, self.agent_id, self.workflow_id)
        )

    def applies_to(self, request: Scope) -> bool:
        """True when a value at this scope applies to a read at ``request``."""
        return (
            (self.persona is None or self.persona == request.persona)
            and (self.agent_id is None or self.agent_id == request.agent_id)
            and (self.workflow_id is None or self.workflow_id == request.workflow_id)
        )

    def as_json(self) -> dict[str, Any]:
        """The seed's ``scope_identifiers``: only the members that are set."""
        out: dict[str, Any] = {}
        if self.persona is not None:
            out["persona"] = self.persona
        if self.agent_id is not None:
            out["agentId"] = self.agent_id
        if self.workflow_id is not None:
            out["workflowId"] = self.workflow_id
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Scope:
        data = data or {}
        return cls(data.get("persona"), data.get("agentId"), data.get("workflowId"))

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in self.as_json().items()]
        return ", ".join(parts) or "global"


GLOBAL = Scope()
