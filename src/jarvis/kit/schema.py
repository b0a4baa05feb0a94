"""Base Pydantic models: camelCase on the wire, snake_case in Python, both accepted."""

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


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
    """Request model: unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 100


class Page(ApiModel, Generic[ItemT]):
    """One page of a list: ``{"items", "total", "limit", "offset"}``."""

    items: list[ItemT]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(ge=0)
