"""Base Pydantic models: camelCase on the wire, snake_case in Python, both accepted."""

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NUL = "\x00"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _first(value: Any, path: str, bad: Callable[[Any], str | None]) -> tuple[str, str] | None:
    """The dotted path of the first value (or key) in ``value`` that ``bad`` objects to, and why."""
    reason = bad(value)
    if reason is not None:
        return path or "value", reason
    if isinstance(value, dict):
        for key, item in value.items():
            # Shown in error messages, which must be UTF-8: a surrogate is spelled "\\udxxx".
            name = str(key).encode("utf-8", "backslashreplace").decode()
            here = f"{path}.{name}" if path else name
            reason = bad(key)
            if reason is not None:
                return here, reason
            found = _first(item, here, bad)
            if found:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _first(item, f"{path}[{index}]", bad)
            if found:
                return found
    return None


def _nul(value: Any) -> str | None:
    if isinstance(value, str) and NUL in value:
        return "must not contain the NUL character (\\u0000)"
    return None


def _unstorable(value: Any) -> str | None:
    """Why a JSON value cannot be stored faithfully on both backends, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        # Python's parser reads NaN, Infinity and 1e400 (as inf); JSON and jsonb have none.
        return "must be a finite number (NaN, Infinity and values beyond 1.8e308 are not JSON)"
    if isinstance(value, str) and _SURROGATE.search(value):
        # JSON may escape half of a surrogate pair ("\\ud800"); no UTF-8 text holds one.
        return "must not contain an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
    return _nul(value)


def find_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """Where ``value`` holds text or a number no backend can store, and why; or None."""
    return _first(value, path, _unstorable)


class ApiModel(BaseModel):
    """Response model: serialises with camelCase aliases, reads from ORM attributes."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


class ApiInput(ApiModel):
    """Request model: unknown fields are rejected so typos do not pass silently.

    Text holding a NUL character is refused anywhere in the body: PostgreSQL cannot
    store it, and no business text needs it. So are unpaired surrogates (not encodable as
    UTF-8) and non-finite numbers (not JSON), which Python's JSON parser lets through
    into free-form fields such as ``config``.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = find_unstorable(data)
        if found is not None:
            where, reason = found
            raise ValueError(f"{where} {reason}")
        return data


ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 100
# The paging parameters of every list route.
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


class Page(ApiModel, Generic[ItemT]):
    """One page of a list: ``{"items", "total", "limit", "offset"}``."""

    items: list[ItemT]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(ge=0)
