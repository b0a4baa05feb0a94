"""``echo``: returns its input after an optional delay; for tests, demos and benchmarks."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import ConfigDict, Field

from jarvis.agents.kinds.base import (
    AgentKind,
    KindConfig,
    StepContext,
    StepFailed,
    StepResult,
    lookup,
)


class EchoConfig(KindConfig):
    """Unknown keys are kept, not refused: echo is also the kind of every agent created
    before kinds existed (the migration gave them ``echo``), whose ``config`` was free-form
    JSON and must stay editable."""

    model_config = ConfigDict(extra="allow")

    delay_ms: int = Field(default=0, ge=0, le=600_000, description="Wait this long first.")
    input: str = Field(
        default="command",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        max_length=200,
        description="Dotted path of the context value to return.",
    )
    fail_attempts: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Fail this many attempts before succeeding (to exercise retries).",
    )


class EchoKind(AgentKind):
    name: ClassVar[str] = "echo"
    description: ClassVar[str] = (
        "Returns its input (the command, or the context value named by 'input') after an "
        "optional delay. For tests, demos and benchmarks."
    )
    config_model: ClassVar[type[KindConfig]] = EchoConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(EchoConfig)
        if settings.delay_ms:
            await asyncio.sleep(settings.delay_ms / 1000)
        if step.attempt <= settings.fail_attempts:
            raise StepFailed(f"echo was told to fail attempt {step.attempt}")
        return StepResult({"input": lookup(step.context, settings.input)})
