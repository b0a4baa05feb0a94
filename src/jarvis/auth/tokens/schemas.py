"""Payloads of the API token routes (and the CLI's token listing)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from jarvis.kit.schema import ApiInput, ApiModel

PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# Longest a token may live when its lifetime is given in days (about ten years).
MAX_TOKEN_DAYS = 3650


class TokenCreate(ApiInput):
    """A new API token: a name, optional scopes, an optional expiry (a time or days)."""

    name: str = Field(min_length=1, max_length=100)
    scopes: list[PermissionName] | None = Field(
        default=None,
        max_length=64,
        description="Permissions the token may use (within the caller's); omit for all",
    )
    expires_at: datetime | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_DAYS)

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenCreate:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expiresAt or expiresInDays, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expiresAt must carry a time zone (e.g. 2030-01-01T00:00:00Z)")
        return self


class TokenOut(ApiModel):
    """An API token as listed: never its value."""

    id: int
    name: str
    prefix: str
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(ApiModel):
    """A token just created: the only answer that carries its value."""

    id: int
    name: str
    prefix: str
    scopes: list[str] | None
    expires_at: datetime | None
    created_at: datetime
    token: str = Field(description="The token; shown only this once (only its hash is kept)")
