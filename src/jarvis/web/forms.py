"""HTML forms: reading a posted form and turning validation errors into messages that the
form shows next to its fields.

Forms post ``application/x-www-form-urlencoded`` (what a browser sends without JavaScript,
and what the ES modules send too); the CSRF token travels in the ``csrf_token`` field and
is checked before the page route runs (``jarvis.auth.dependencies.request_guard``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError
from starlette.requests import Request

from jarvis.errors import BadRequest, JarvisError, UnsupportedMediaType

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 1000


@dataclass
class FormData:
    """A posted form: the last value of each field, and every value for multi-selects."""

    values: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name)
        return found[-1] if found else default

    def getlist(self, name: str) -> list[str]:
        return list(self.values.get(name, []))

    def optional(self, name: str) -> str | None:
        """The field's value with surrounding space removed, None when blank."""
        value = self.get(name).strip()
        return value or None

    def __contains__(self, name: object) -> bool:
        return name in self.values


async def read_form(request: Request) -> FormData:
    """The request's urlencoded form; 415 for any other body, 400 for one that isn't UTF-8."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(FORM_TYPE):
        raise UnsupportedMediaType(
            f"forms must be posted as {FORM_TYPE}, not {content_type or 'no content type'}"
        )
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the form is not UTF-8 text (byte {exc.start})") from exc
    try:
        values = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequest("a form value is not UTF-8 text once decoded") from exc
    except ValueError as exc:
        raise BadRequest(f"the form has more than {MAX_FIELDS} fields") from exc
    if any("\x00" in v for vs in values.values() for v in vs):
        raise BadRequest("form values may not contain NUL characters")
    return FormData(values)


@dataclass
class FieldErrors:
    """Messages per form field (``name`` or a dotted path such as ``config.threshold``),
    and those that belong to no field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    def add(self, name: str | None, message: str) -> None:
        if name and name not in self.fields:
            self.fields[name] = message
        elif not name:
            self.general.append(message)


def _field_name(loc: Sequence[Any], known: Iterable[str] | None) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    if not parts:
        return None
    dotted = ".".join(parts)
    if known is None:
        return dotted
    names = set(known)
    # The longest known prefix: "config.rules.0.weight" shows next to "config" when the
    # form has no field for the rule itself.
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return None


def errors_from(
    exc: JarvisError | ValidationError,
    *,
    known: Iterable[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> FieldErrors:
    """Field messages from a service's ``ValidationFailed`` (or any JarvisError) or a
    pydantic ``ValidationError``. ``aliases`` maps API names (camelCase) to form names;
    messages for fields the form does not show become general messages with their path."""
    out = FieldErrors()
    aliases = aliases or {}
    if isinstance(exc, ValidationError):
        entries = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "invalid value"))}
            for e in exc.errors()
        ]
    else:
        entries = list(exc.errors or [])
        if not entries:
            out.add(None, exc.detail)
            return out
    known_list = list(known) if known is not None else None
    for entry in entries:
        loc = [aliases.get(str(p), p) for p in entry.get("loc", [])]
        message = str(entry.get("msg", "invalid value")).removeprefix("Value error, ")
        name = _field_name(loc, known_list)
        if name is None:
            where = ".".join(str(p) for p in loc if p != "body")
            out.add(None, f"{where}: {message}" if where else message)
        else:
            out.add(name, message)
    return out
