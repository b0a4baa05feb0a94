"""``classifier``: assigns one of its configured labels to a text, with a confidence.

The text is a context value (the command by default). The configured LLM provider does
the classifying: offline, the rules provider matches the labels' keywords and RE2
patterns; a model provider reads the labels' descriptions. Below ``minConfidence`` (or
without any evidence) the answer is ``defaultLabel``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from jarvis.agents.kinds.base import (
    AgentKind,
    KindConfig,
    StepContext,
    StepFailed,
    StepResult,
    lookup,
)
from jarvis.kit.schema import ApiInput
from jarvis.llm.base import LabelSpec
from jarvis.llm.rules import MAX_PATTERN_CHARS, InvalidPattern, compile_pattern, words

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
InputPath = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        max_length=200,
        description="Dotted path of the context value to read (e.g. 'command' or "
        "'outputs.email_intake.body').",
    ),
]
# Patterns keep their spaces: in a regular expression they mean something.
Pattern = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=1, max_length=MAX_PATTERN_CHARS),
]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
# Keys the classifier's output has besides the label.
RESERVED_OUTPUT_KEYS = frozenset({"confidence", "scores"})


def check_patterns(patterns: list[str], owner: str) -> list[str]:
    """``patterns`` unchanged if each compiles with RE2; else a ValueError naming ``owner``."""
    for pattern in patterns:
        try:
            compile_pattern(pattern)
        except InvalidPattern as exc:
            raise ValueError(f"pattern {pattern!r} of {owner} {exc}") from None
    return patterns


def unique_names(items: list[Any], what: str) -> list[Any]:
    """``items`` unchanged if their ``name`` attributes are unique; else a ValueError."""
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ValueError(f"{what} names must be unique; '{item.name}' appears twice")
        seen.add(item.name)
    return items


def input_text(step: StepContext, path: str) -> str:
    """The context value at ``path`` as text (objects and lists as JSON)."""
    value = lookup(step.context, path)
    if value is None:
        raise StepFailed(f"the input '{path}' is not in the execution context")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class LabelConfig(ApiInput):
    name: Identifier
    description: Description = ""
    keywords: list[Keyword] = Field(
        default_factory=list,
        max_length=500,
        description="Words or phrases (whole words, any case) that point to this label.",
    )
    patterns: list[Pattern] = Field(
        default_factory=list, max_length=100, description="RE2 regular expressions."
    )
    weight: float = Field(default=1.0, gt=0, le=1000, description="What one match counts.")

    @field_validator("keywords")
    @classmethod
    def _keywords_have_words(cls, keywords: list[str], info: ValidationInfo) -> list[str]:
        for keyword in keywords:
            if not words(keyword):
                raise ValueError(
                    f"keyword {keyword!r} of label '{info.data.get('name', '?')}' has no "
                    "letters or digits, so it can never match"
                )
        return keywords

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str], info: ValidationInfo) -> list[str]:
        return check_patterns(patterns, f"label '{info.data.get('name', '?')}'")

    def spec(self) -> LabelSpec:
        return LabelSpec(
            name=self.name,
            description=self.description,
            keywords=tuple(self.keywords),
            patterns=tuple(self.patterns),
            weight=self.weight,
        )


class ClassifierConfig(KindConfig):
    input: InputPath = "command"
    output_key: Identifier = Field(
        default="label",
        description="The output key that holds the label ('intent' for the Meta Brain's "
        "intent classifier: the engine reads the plan's intent from it).",
    )
    labels: list[LabelConfig] = Field(min_length=1, max_length=100)
    min_confidence: float = Field(
        default=0.0, ge=0, le=1, description="Below this confidence the default label wins."
    )
    default_label: Identifier | None = Field(
        default=None, description="The label when none fits well enough (one of the labels)."
    )

    @field_validator("output_key")
    @classmethod
    def _key_free(cls, key: str) -> str:
        if key in RESERVED_OUTPUT_KEYS:
            raise ValueError(f"'{key}' is taken by the classifier's own output")
        return key

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[LabelConfig]) -> list[LabelConfig]:
        return unique_names(labels, "label")

    @field_validator("default_label")
    @classmethod
    def _default_is_a_label(cls, default: str | None, info: ValidationInfo) -> str | None:
        labels = info.data.get("labels")
        if default is not None and labels is not None:
            names = [label.name for label in labels]
            if default not in names:
                raise ValueError(f"must be one of the labels: {', '.join(names)}")
        return default


class ClassifierKind(AgentKind):
    name: ClassVar[str] = "classifier"
    description: ClassVar[str] = (
        "Assigns one of its configured labels (an intent, an e-mail category, an incident "
        "priority) to a context value, with a confidence and each label's score."
    )
    config_model: ClassVar[type[KindConfig]] = ClassifierConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(ClassifierConfig)
        text = input_text(step, settings.input)
        provider, model = await step.llm()
        result = await provider.classify(
            text, [label.spec() for label in settings.labels], model=model
        )
        known = {label.name for label in settings.labels}
        label = result.label
        if label not in known or result.confidence < settings.min_confidence:
            label = settings.default_label
        return StepResult(
            {
                settings.output_key: label,
                "confidence": result.confidence,
                "scores": dict(result.scores),
            },
            usage=result.usage,
        )
