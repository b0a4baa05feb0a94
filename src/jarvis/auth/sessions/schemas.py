"""Payloads of signing in and of the session routes."""

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


class CsrfOut(ApiModel):
    csrf_token: str | None
    header_name: str = "X-CSRF-Token"
    form_field: str = "csrf_token"


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
