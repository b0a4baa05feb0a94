"""Which kinds exist: the built-in ones and those installed through entry points.

A third-party package adds a kind by declaring an entry point in the group
``jarvis.agent_kinds`` that names an ``AgentKind`` subclass (or an instance). Kinds are
loaded once per process; a broken plug-in is logged and left out, never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import structlog
from pydantic import ValidationError

from jarvis.agents.kinds.base import AgentKind, KindConfig
from jarvis.agents.kinds.builtin import BUILTIN_KINDS
from jarvis.errors import ValidationFailed

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "jarvis.agent_kinds"


@cache
def available_kinds() -> Mapping[str, AgentKind]:
    """Every kind by name: built-ins first; a plug-in cannot replace a built-in."""
    kinds: dict[str, AgentKind] = {kind.name: kind() for kind in BUILTIN_KINDS}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
            kind = loaded() if isinstance(loaded, type) else loaded
            if not isinstance(kind, AgentKind):
                raise TypeError(f"{point.value} is not an AgentKind")
        except Exception as exc:  # a broken plug-in must not take the platform down
            log.warning("agent_kind_not_loaded", entry_point=point.name, error=str(exc))
            continue
        if kind.name in kinds:
            log.warning("agent_kind_name_taken", entry_point=point.name, kind=kind.name)
            continue
        kinds[kind.name] = kind
    return kinds


def get_kind(name: str) -> AgentKind | None:
    return available_kinds().get(name)


def validate_agent_config(
    kind_name: str, config: dict[str, Any], *, loc: Sequence[str | int] = ()
) -> KindConfig:
    """``config`` checked against the kind's schema; 422 naming the kind or the field."""
    kind = get_kind(kind_name)
    if kind is None:
        known = ", ".join(sorted(available_kinds()))
        raise ValidationFailed(
            f"unknown agent kind '{kind_name}'; the kinds are: {known}",
            errors=[{"loc": [*loc, "kind"], "msg": f"must be one of: {known}"}],
        )
    try:
        return kind.config_model.model_validate(config)
    except ValidationError as exc:
        errors = [
            {"loc": [*loc, "config", *error["loc"]], "msg": error["msg"]}
            for error in exc.errors(include_url=False)
        ]
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"][len(loc) :])
        raise ValidationFailed(
            f"the config does not fit the '{kind_name}' kind: {where}: {first['msg']}",
            errors=errors,
        ) from None
