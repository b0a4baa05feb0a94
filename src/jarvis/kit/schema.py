"""Base Pydantic models: camelCase on the wire, snake_case in Python, both accepted."""

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

NUL = "\x00"


def find_nul(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) in ``value`` holding a NUL, or None."""
    if isinstance(value, str):
        return path or "value" if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and NUL in key:
                return here
            found = find_nul(item, here)
            if found:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None


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
    store it, and no business text needs it.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = find_nul(data)
        if where is not None:
            raise ValueError(f"{where} must not contain the NUL character (\\u0000)")
        return data


ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 100


class Page(ApiModel, Generic[ItemT]):
    """One page of a list: ``{"items", "total", "limit", "offset"}``."""

    items: list[ItemT]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(ge=0)
