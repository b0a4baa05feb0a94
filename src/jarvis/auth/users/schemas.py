"""Payloads of the user routes: the signed-in user, password changes, user administration
and what each persona may do."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from jarvis.kit.schema import ApiInput, ApiModel

PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ProfileOut(ApiModel):
    display_name: str | None
    job_title: str | None
    department: str | None


class UserOut(ApiModel):
    id: int
    email: str
    persona: str
    first_name: str | None
    last_name: str | None
    profile_image_url: str | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    profile: ProfileOut | None = None


class PasswordChange(ApiInput):
    current_password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        min_length=1, max_length=1024
    )
    new_password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        min_length=1, max_length=1024
    )


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
