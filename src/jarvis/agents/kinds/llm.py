"""``llm``: a prompt template rendered over the context and sent to the LLM provider.

The prompt (and the optional system text) are sandboxed Jinja2. With ``outputSchema`` the
provider is asked for a JSON object, which is checked against the schema before it joins
the context. Offline, the rules provider calls no model: it renders ``offlineTemplate``
(a template from the templates table) instead, so the agent still answers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from jarvis.agents.kinds.base import AgentKind, KindConfig, StepContext, StepFailed, StepResult
from jarvis.agents.kinds.template import load_template, render_step_text
from jarvis.config.rules import Name
from jarvis.config.validation import compile_schema, schema_errors
from jarvis.errors import ValidationFailed
from jarvis.kit.templating import MAX_SOURCE_CHARS, TemplateFailed, compile_template
from jarvis.llm.base import GenerationRequest


def _check_template(source: str | None) -> str | None:
    if source is not None:
        try:
            compile_template(source)
        except TemplateFailed as exc:
            raise ValueError(str(exc)) from None
    return source


class LlmConfig(KindConfig):
    prompt: str = Field(
        min_length=1,
        max_length=MAX_SOURCE_CHARS,
        description="Jinja2 template of the prompt, rendered over the execution context.",
    )
    system: str | None = Field(
        default=None, max_length=MAX_SOURCE_CHARS, description="Jinja2 template of the system text."
    )
    offline_template: Name | None = Field(
        default=None,
        description="A template (templates table) that the offline rules provider renders "
        "instead of calling a model.",
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the answer must satisfy (asks for JSON)."
    )
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @field_validator("prompt", "system")
    @classmethod
    def _compiles(cls, source: str | None) -> str | None:
        return _check_template(source)

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            try:
                compile_schema(schema, loc=())
            except ValidationFailed as exc:
                raise ValueError(exc.errors[0]["msg"] if exc.errors else exc.detail) from None
            except RecursionError:
                raise ValueError("the schema is nested too deeply") from None
            except Exception as exc:  # whatever jsonschema trips over is the schema's fault
                raise ValueError(f"is not a usable JSON Schema: {exc}") from None
        return schema


class LlmKind(AgentKind):
    name: ClassVar[str] = "llm"
    description: ClassVar[str] = (
        "Sends a prompt template (sandboxed Jinja2 over the execution context) to the "
        "configured LLM provider; optionally asks for JSON checked against a JSON Schema."
    )
    config_model: ClassVar[type[KindConfig]] = LlmConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(LlmConfig)
        prompt = await render_step_text(settings.prompt, step.context, "the prompt")
        system = (
            await render_step_text(settings.system, step.context, "the system text")
            if settings.system is not None
            else None
        )
        offline = None
        if settings.offline_template is not None:
            offline, _ = await load_template(step, settings.offline_template, None)
        provider, model = await step.llm()
        generation = await provider.generate(
            GenerationRequest(
                prompt=prompt,
                model=model,
                system=system,
                template=offline,
                context=step.context,
                output_schema=settings.output_schema,
                max_tokens=settings.max_tokens,
                temperature=settings.temperature,
            )
        )
        output: dict[str, Any] = {"text": generation.text}
        if settings.output_schema is not None:
            self._check(settings.output_schema, generation.data)
            output["data"] = generation.data
        return StepResult(output, usage=generation.usage)

    @staticmethod
    def _check(schema: dict[str, Any], data: Any) -> None:
        try:
            validator = compile_schema(schema, loc=())
        except ValidationFailed as exc:
            raise StepFailed(f"the output schema is not valid: {exc.detail}") from None
        errors = schema_errors(validator, data, loc=())
        if errors:
            raise StepFailed(
                f"the answer does not satisfy the output schema at {errors[0]['jsonPath']}: "
                f"{errors[0]['msg']}"
            )
