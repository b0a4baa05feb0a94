"""``extractor``: finds the fields of a configured schema in a text, each with a confidence.

Offline, the rules provider applies each field's RE2 patterns and converts the match to
the field's type (numbers with currency and 4.5M-style suffixes, ISO dates, booleans,
lists); a model provider reads the fields' descriptions. Required fields that were not
found are listed under ``missing``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from jarvis.agents.kinds.base import AgentKind, KindConfig, StepContext, StepResult
from jarvis.agents.kinds.classifier import (
    Description,
    Identifier,
    InputPath,
    Pattern,
    check_patterns,
    input_text,
    unique_names,
)
from jarvis.kit.schema import ApiInput
from jarvis.llm.base import ExtractedField, FieldSpec, FieldType


class FieldConfig(ApiInput):
    name: Identifier
    type: FieldType = "string"
    description: Description = ""
    patterns: list[Pattern] = Field(
        default_factory=list,
        max_length=50,
        description="RE2 expressions tried in order; the first capture group (or the whole "
        "match) is the value.",
    )
    required: bool = Field(default=False, description="List the field under 'missing' if absent.")

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str], info: ValidationInfo) -> list[str]:
        return check_patterns(patterns, f"field '{info.data.get('name', '?')}'")

    def spec(self) -> FieldSpec:
        return FieldSpec(
            name=self.name,
            type=self.type,
            description=self.description,
            patterns=tuple(self.patterns),
            required=self.required,
        )


class ExtractorConfig(KindConfig):
    input: InputPath = "command"
    fields: list[FieldConfig] = Field(min_length=1, max_length=100)

    @field_validator("fields")
    @classmethod
    def _fields_unique(cls, fields: list[FieldConfig]) -> list[FieldConfig]:
        return unique_names(fields, "field")


NOT_FOUND = ExtractedField(None, 0.0)


class ExtractorKind(AgentKind):
    name: ClassVar[str] = "extractor"
    description: ClassVar[str] = (
        "Extracts the fields of a configured schema (text, numbers, dates, yes/no, lists) "
        "from a context value, each with a confidence, and lists required fields not found."
    )
    config_model: ClassVar[type[KindConfig]] = ExtractorConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(ExtractorConfig)
        text = input_text(step, settings.input)
        provider, model = await step.llm()
        result = await provider.extract(
            text, [field.spec() for field in settings.fields], model=model
        )
        found = {f.name: result.fields.get(f.name, NOT_FOUND) for f in settings.fields}
        return StepResult(
            {
                "fields": {
                    name: {"value": item.value, "confidence": item.confidence}
                    for name, item in found.items()
                },
                "values": {name: item.value for name, item in found.items()},
                "missing": [
                    f.name for f in settings.fields if f.required and found[f.name].value is None
                ],
            },
            usage=result.usage,
        )
