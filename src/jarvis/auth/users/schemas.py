"""Sign-in and user payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from jarvis.kit.schema import ApiInput, ApiModel

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


class LoginRequest(ApiInput):
    email: str = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
    # Not stripped like other input strings: the password is compared exactly as it was set.
    password: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        min_length=1, max_length=1024
    )

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


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


class CsrfOut(ApiModel):
    csrf_token: str | None
    header_name: str = "X-CSRF-Token"
    form_field: str = "csrf_token"
