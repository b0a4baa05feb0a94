"""What an agent kind is: a named piece of code with a Pydantic schema for its settings.

The engine validates an agent's ``config`` against its kind's ``config_model`` (on create
and update as well, so a bad config is a 422 naming the field, not a failed run), builds a
``StepContext`` and awaits ``run``. A kind returns a JSON object (its output joins the
execution context under the agent's handle) and, when it called a model, the usage.
Errors a kind raises fail the step with their message; the engine retries and times out.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import Field

from jarvis.config.service import ConfigService
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.errors import JarvisError
from jarvis.kit.schema import ApiInput
from jarvis.llm.base import LLMProvider, Usage

INTENT_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class KindConfig(ApiInput):
    """Settings every kind understands (unknown keys are refused: typos fail loudly)."""

    requires_approval: bool = Field(
        default=False,
        description="Pause the execution after this agent proposes its output until an "
        "authorised user approves or rejects it.",
    )
    intents: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Process and System agents: the intents they serve (empty: every "
        "intent). The Meta Brain's plan leaves out agents whose intents do not match.",
    )


class StepFailed(JarvisError):
    """A kind could not do its work; the step fails (and may be retried) with this message."""

    status, title, slug = 422, "Step failed", "step-failed"


@dataclass(frozen=True)
class AgentSpec:
    """The agent as the engine saw it when the step ran."""

    id: int
    name: str
    handle: str  # the key of its output in the context: a slug of the name
    layer: str
    persona: str
    kind: str
    config: dict[str, Any]


SettingsT = TypeVar("SettingsT", bound="KindConfig")

ProviderLookup = Callable[[Scope], Awaitable[tuple[LLMProvider, str]]]


@dataclass(frozen=True)
class WaitingExecution:
    """An execution paused for a person's decision, as a kind may report it."""

    execution_id: str
    command: str
    persona: str
    created_at: datetime


class ExecutionsView(Protocol):
    """What kinds may know of executions (orchestration implements it; agents rank below
    orchestration and never read its tables)."""

    async def awaiting_decision(
        self, *, persona: str | None, limit: int
    ) -> tuple[Sequence[WaitingExecution], int]:
        """Executions awaiting a decision (of ``persona``; None: everyone's), oldest
        first, at most ``limit``; and how many there are in all."""


@dataclass(frozen=True)
class KindServices:
    """What a kind may use besides its input: shared by every step of an engine."""

    db: Database
    config: ConfigService
    # The provider and model for a scope (llm.provider / llm.model through ConfigService).
    llm: ProviderLookup
    http: httpx.AsyncClient
    executions: ExecutionsView


@dataclass
class StepContext:
    """One step's input: the agent, its validated settings and the execution context.

    ``context`` holds ``command``, ``persona``, ``executionId``, ``workflowId``, ``plan``
    (None before the Meta Brain decides), ``outputs`` (every earlier output by agent
    handle) and ``layers`` (the same outputs grouped by layer name).
    """

    execution_id: str
    agent: AgentSpec
    settings: KindConfig
    context: dict[str, Any]
    scope: Scope
    services: KindServices
    attempt: int = 1

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """The validated settings as the kind's own model."""
        if not isinstance(self.settings, model):
            raise TypeError(f"expected {model.__name__}, got {type(self.settings).__name__}")
        return self.settings

    async def llm(self) -> tuple[LLMProvider, str]:
        """The provider and model configured for this agent and persona."""
        return await self.services.llm(self.scope)


@dataclass
class StepResult:
    output: dict[str, Any]
    usage: Usage | None = None


class AgentKind(ABC):
    """Base of every kind. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    description: ClassVar[str]
    config_model: ClassVar[type[KindConfig]] = KindConfig

    @abstractmethod
    async def run(self, step: StepContext) -> StepResult:
        """Do the agent's work for one attempt."""


_SLUG = re.compile(r"[^a-z0-9]+")


def agent_handle(name: str) -> str:
    """``"Intent Router"`` -> ``"intent_router"``: how outputs are named in the context."""
    return _SLUG.sub("_", name.lower()).strip("_") or "agent"


_MISSING = object()


def lookup(context: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted ``path`` (``outputs.intent_router.intent``) or ``default``.

    Digits index lists (``items.0.name``).
    """
    current = context
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return default
        if current is _MISSING:
            return default
    return current
