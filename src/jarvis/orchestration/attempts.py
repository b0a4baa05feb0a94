"""One agent's step, attempt by attempt: its kind and settings, its policy (timeout,
retries, back-off from ConfigService), one attempt under the timeout, and the checks on
what the agent returned before it is stored.

A kind's failure (an error it raises, a timeout, a bug) fails the attempt with a message,
never the engine; ``run.py`` decides whether to retry.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Final

import structlog
from pydantic import ValidationError

from jarvis.agents.kinds.base import AgentKind, AgentSpec, KindConfig, StepContext, StepResult
from jarvis.agents.kinds.registry import get_kind
from jarvis.config.service import ConfigService
from jarvis.core.scope import Scope
from jarvis.errors import JarvisError
from jarvis.kit.schema import find_unstorable

log = structlog.get_logger(__name__)

MAX_OUTPUT_BYTES: Final = 256 * 1024
PREVIEW_CHARS: Final = 400


@dataclass(frozen=True)
class StepPolicy:
    timeout: float
    max_retries: int
    backoff: float


class StepError(Exception):
    """The step fails for good, at ``attempt``, with ``message``."""

    def __init__(self, message: str, attempt: int) -> None:
        super().__init__(message)
        self.message = message
        self.attempt = attempt


async def step_policy(config: ConfigService, scope: Scope) -> StepPolicy:
    """The agent's timeout and retries at its scope (persona, agent, workflow)."""
    return StepPolicy(
        timeout=await config.get("agent.timeout_seconds", scope, as_type=float),
        max_retries=await config.get("agent.max_retries", scope, as_type=int),
        backoff=await config.get("agent.retry_backoff_seconds", scope, as_type=float),
    )


def prepare(spec: AgentSpec) -> tuple[AgentKind, KindConfig]:
    """The agent's kind and its validated settings; ``StepError`` when either is wrong."""
    kind = get_kind(spec.kind)
    if kind is None:
        raise StepError(f"unknown agent kind '{spec.kind}' (is its package installed?)", 1)
    try:
        return kind, kind.config_model.model_validate(spec.config)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise StepError(
            f"the agent's config does not fit the '{spec.kind}' kind: {where}: {first['msg']}",
            1,
        ) from None


async def attempt_once(kind: AgentKind, step: StepContext, policy: StepPolicy) -> StepResult | str:
    """One attempt: the result, or why it failed."""
    try:
        async with asyncio.timeout(policy.timeout):
            result = await kind.run(step)
        result.output = storable_output(result.output)
    except TimeoutError:
        return f"timed out after {policy.timeout:g} s (agent.timeout_seconds)"
    except JarvisError as exc:
        return exc.detail
    except Exception as exc:  # a kind's bug fails its step, never the engine
        log.exception("agent_step_crashed", agent=step.agent.name, kind=step.agent.kind)
        return f"{type(exc).__name__}: {exc}"
    return result


def preview(output: dict[str, Any] | None) -> str | None:
    """A short text of an output for live views: its ``text`` if any, else its JSON."""
    if output is None:
        return None
    text = output.get("text")
    shown = text if isinstance(text, str) else json.dumps(output, ensure_ascii=False)
    return shown if len(shown) <= PREVIEW_CHARS else shown[: PREVIEW_CHARS - 1] + "…"


def storable_output(output: Any) -> dict[str, Any]:
    """The output as it will be stored: a JSON object within the size limit."""
    if not isinstance(output, dict):
        raise JarvisError(f"the agent returned {type(output).__name__}, not a JSON object")
    try:
        encoded = json.dumps(output, ensure_ascii=False, allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise JarvisError(f"the agent's output is not JSON: {exc}") from None
    if len(encoded.encode()) > MAX_OUTPUT_BYTES:
        raise JarvisError(f"the agent's output is larger than {MAX_OUTPUT_BYTES // 1024} KiB")
    decoded: dict[str, Any] = json.loads(encoded)
    found = find_unstorable(decoded)
    if found is not None:
        raise JarvisError(f"the agent's output cannot be stored: {found[0]} {found[1]}")
    return decoded
