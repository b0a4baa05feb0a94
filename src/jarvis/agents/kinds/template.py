"""``template``: renders a named, versioned template from the ``templates`` table.

The template is sandboxed Jinja2 rendered over the execution context (``command``,
``persona``, ``plan``, ``outputs``...); the result records which version rendered it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from jarvis.agents.kinds.base import AgentKind, KindConfig, StepContext, StepFailed, StepResult
from jarvis.config.rules import Name, get_template
from jarvis.db.session import unit_of_work
from jarvis.errors import NotFound
from jarvis.kit.templating import TemplateFailed, render_in_thread

VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]
VERSION_HELP = "A version number; empty: the newest active version."


def _which(name: str, version: int | None) -> str:
    return f"'{name}'" + (f" version {version}" if version is not None else "")


async def load_template(step: StepContext, name: str, version: int | None) -> tuple[str, int]:
    """The body and version of template ``name``; StepFailed naming it if there is none."""
    try:
        async with unit_of_work(step.services.db, write=False) as session:
            row = await get_template(session, name, version)
            return row.body, row.version
    except NotFound:
        raise StepFailed(
            f"the template {_which(name, version)} does not exist (or has no active version)"
        ) from None


async def render_step_text(source: str, context: dict[str, Any], what: str) -> str:
    """``source`` rendered over ``context``; StepFailed saying what failed and why."""
    try:
        return await render_in_thread(source, context)
    except TemplateFailed as exc:
        raise StepFailed(f"{what} could not be rendered: {exc}") from None


class TemplateConfig(KindConfig):
    template: Name = Field(description="The template's name in the templates table.")
    version: VersionNumber | None = Field(default=None, description=VERSION_HELP)


class TemplateKind(AgentKind):
    name: ClassVar[str] = "template"
    description: ClassVar[str] = (
        "Renders a named template from the templates table (sandboxed Jinja2 over the "
        "execution context) into a response text."
    )
    config_model: ClassVar[type[KindConfig]] = TemplateConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(TemplateConfig)
        body, version = await load_template(step, settings.template, settings.version)
        text = await render_step_text(
            body, step.context, f"the template '{settings.template}' version {version}"
        )
        return StepResult({"text": text, "template": settings.template, "version": version})
