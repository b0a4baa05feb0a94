"""Persona payloads."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from jarvis.core.personas import CSS_COLOUR_PATTERN, PERSONA_KEY_PATTERN
from jarvis.kit.schema import ApiInput, ApiModel

PersonaKey = Annotated[str, StringConstraints(strip_whitespace=True, pattern=PERSONA_KEY_PATTERN)]

_CSS_COLOUR = re.compile(CSS_COLOUR_PATTERN)


def _css_colour(value: str) -> str:
    # fullmatch: "$" alone would let a trailing newline through into the CSS.
    if not _CSS_COLOUR.fullmatch(value):
        raise ValueError("must be a CSS colour: #rgb, #rrggbb, #rrggbbaa, rgb(...) or rgba(...)")
    return value


CssColour = Annotated[
    str, AfterValidator(_css_colour), Field(json_schema_extra={"pattern": CSS_COLOUR_PATTERN})
]


class ColorScheme(ApiModel):
    """A persona's theme, applied through CSS custom properties."""

    model_config = ConfigDict(extra="forbid")

    primary: CssColour
    secondary: CssColour
    accent: CssColour
    background: CssColour
    glassmorphism: CssColour


class PersonaRegister(ApiInput):
    key: PersonaKey
    display_name: str = Field(min_length=1, max_length=200)
    person_name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    color_scheme: ColorScheme


class PersonaOut(ApiModel):
    id: int
    key: str
    display_name: str
    person_name: str | None
    description: str | None
    color_scheme: ColorScheme
    is_dynamic: bool
    created_at: datetime
