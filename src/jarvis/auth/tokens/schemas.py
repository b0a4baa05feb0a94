"""Payloads of the account routes: sessions, API tokens, user administration, permissions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from jarvis.kit.schema import ApiInput, ApiModel

PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# Longest a token may live when its lifetime is given in days (about ten years).
MAX_TOKEN_DAYS = 3650


# --- sessions -----------------------------------------------------------------------------


class SessionOut(ApiModel):
    """A live sign-in session (the id is the row's, never the cookie's value)."""

    id: int
    created_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    via: str | None = Field(description="How the user signed in: password, github or oidc")
    current: bool = Field(
        default=False, description="True for the session the request was made with"
    )


# --- API tokens ---------------------------------------------------------------------------


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


# --- users --------------------------------------------------------------------------------


class AdminUserOut(ApiModel):
    """A user as administrators see them."""

    id: int
    email: str
    persona: str
    first_name: str | None
    last_name: str | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    failed_login_count: int
    locked_until: datetime | None
    has_password: bool


class UserUpdate(ApiInput):
    """What an administrator may change on a user (each field optional)."""

    persona: str | None = Field(default=None, min_length=1, max_length=64)
    is_active: bool | None = None


# --- permissions --------------------------------------------------------------------------


class PermissionOut(ApiModel):
    name: str
    description: str


class PermissionCatalogue(ApiModel):
    """Every permission with what it allows, and what each persona holds."""

    permissions: list[PermissionOut]
    personas: dict[str, list[str]] = Field(
        description="persona key -> its permissions (admin holds every one)"
    )


class PersonaPermissionsIn(ApiInput):
    permissions: list[PermissionName] = Field(max_length=64)


class PersonaPermissionsOut(ApiModel):
    persona: str
    permissions: list[str]
    before: list[str]
    changed: bool
