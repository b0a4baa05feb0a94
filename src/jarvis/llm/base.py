"""The provider protocol and the values that cross it.

Agents ask for a task (classify this text into one of these labels, extract these fields,
generate from this prompt), never for a vendor's API. ``rules`` answers offline and
deterministically from what is stored in the database; ``openai`` sends the task to any
OpenAI-compatible endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from jarvis.errors import JarvisError

FieldType = Literal["string", "number", "integer", "boolean", "date", "list"]


class ProviderError(JarvisError):
    """The provider could not do the task (unreachable, refused, malformed answer).

    Raised inside a step: the step fails with this message and may be retried.
    """

    status, title, slug = 502, "LLM provider error", "llm-provider"


@dataclass(frozen=True)
class Usage:
    """What one provider call cost, recorded on the step."""

    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "totalTokens": self.total_tokens,
            "latencyMs": self.latency_ms,
        }


@dataclass(frozen=True)
class LabelSpec:
    """One label a classifier may assign.

    ``description`` tells a language model what the label means; ``keywords`` (whole words
    or phrases, case-insensitive) and ``patterns`` (RE2 regular expressions) are what the
    offline rules provider matches; ``weight`` scales a label's matches.
    """

    name: str
    description: str = ""
    keywords: Sequence[str] = ()
    patterns: Sequence[str] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class FieldSpec:
    """One field an extractor looks for.

    ``patterns`` are RE2 expressions for the rules provider: the first capture group (or
    the whole match) is the value, converted to ``type``.
    """

    name: str
    type: FieldType = "string"
    description: str = ""
    patterns: Sequence[str] = ()
    required: bool = False


@dataclass(frozen=True)
class Classification:
    label: str | None  # None: no label matched (the rules provider found no evidence)
    confidence: float  # 0..1
    scores: dict[str, float] = field(default_factory=dict)
    usage: Usage | None = None


@dataclass(frozen=True)
class ExtractedField:
    value: Any  # None when not found
    confidence: float  # 0..1; 0 when not found


@dataclass(frozen=True)
class Extraction:
    fields: dict[str, ExtractedField]
    usage: Usage | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Generate text (or, with ``output_schema``, a JSON object) from ``prompt``.

    ``template`` is the Jinja2 source the rules provider renders over ``context`` instead
    of calling a model; a language-model provider ignores it.
    """

    prompt: str
    model: str
    system: str | None = None
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class Generation:
    text: str
    data: Any = None  # the parsed JSON when the request had an output schema
    usage: Usage | None = None


class LLMProvider(Protocol):
    """Task-level operations every provider offers."""

    name: str

    async def classify(
        self, text: str, labels: Sequence[LabelSpec], *, model: str
    ) -> Classification:
        """Pick the label of ``labels`` that fits ``text`` best, with a confidence."""
        ...

    async def extract(self, text: str, fields: Sequence[FieldSpec], *, model: str) -> Extraction:
        """Find each field's value in ``text``, each with a confidence."""
        ...

    async def generate(self, request: GenerationRequest) -> Generation:
        """Answer ``request.prompt`` (validated against ``output_schema`` when given)."""
        ...
