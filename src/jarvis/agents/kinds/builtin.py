"""The kinds that ship with JARVIS."""

from __future__ import annotations

from jarvis.agents.kinds.agent_status import AgentStatusKind
from jarvis.agents.kinds.base import AgentKind
from jarvis.agents.kinds.classifier import ClassifierKind
from jarvis.agents.kinds.echo import EchoKind
from jarvis.agents.kinds.extractor import ExtractorKind
from jarvis.agents.kinds.http import HttpKind
from jarvis.agents.kinds.llm import LlmKind
from jarvis.agents.kinds.rules_kind import RulesKind
from jarvis.agents.kinds.template import TemplateKind

BUILTIN_KINDS: tuple[type[AgentKind], ...] = (
    EchoKind,
    ClassifierKind,
    ExtractorKind,
    RulesKind,
    TemplateKind,
    LlmKind,
    HttpKind,
    AgentStatusKind,
)
