"""The error model: domain exceptions and the problem+json (RFC 9457) rendering of them.

Services raise ``JarvisError`` subclasses; they never know about HTTP beyond the status
code their error carries. ``install_error_handlers`` turns every failure, including the
framework's own (validation, unknown route, integrity errors), into problem+json.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jarvis.kit.app_state import StateKey

log = structlog.get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:jarvis:problem:"


class JarvisError(Exception):
    """Base of every error a service raises on purpose."""

    status: int = 500
    title: str = "Internal error"
    slug: str = "internal"
    # Whether the field errors name fields of the request (HTTP adds their location, see
    # ``located``); False when they point into a stored document (a snapshot's values).
    request_fields: bool = True

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = headers or {}
        # Further members of the problem document (RFC 9457 extensions), e.g. a report.
        self.extra = extra or {}


class BadRequest(JarvisError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(JarvisError):
    status, title, slug = 401, "Authentication required", "unauthorized"


class Forbidden(JarvisError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(JarvisError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(JarvisError):
    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(JarvisError):
    status, title, slug = 412, "Precondition failed", "precondition-failed"


class PayloadTooLarge(JarvisError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(JarvisError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class ValidationFailed(JarvisError):
    status, title, slug = 422, "Validation failed", "validation"

    @classmethod
    def field(cls, loc: Sequence[str | int], msg: str) -> ValidationFailed:
        """One invalid field, reported in the same shape as request validation. Services
        name the bare field (``["persona"]``); HTTP adds where it was (``located``)."""
        return cls(f"{_format_loc(loc)}: {msg}", errors=[{"loc": list(loc), "msg": msg}])


class TooManyRequests(JarvisError):
    status, title, slug = 429, "Too many requests", "rate-limited"

    @classmethod
    def retry_after(cls, detail: str, seconds: float) -> TooManyRequests:
        """A 429 whose ``Retry-After`` says when to try again (whole seconds, at least 1)."""
        wait = max(1, math.ceil(seconds))
        return cls(f"{detail}; retry in {wait} s", headers={"Retry-After": str(wait)})


class BadGateway(JarvisError):
    status, title, slug = 502, "Bad gateway", "bad-gateway"


class ServiceUnavailable(JarvisError):
    status, title, slug = 503, "Service unavailable", "unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """Build an ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = list(errors)
    for name, value in (extra or {}).items():
        body.setdefault(name, value)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def _format_loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if isinstance(p, str | int)]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        out.append({"loc": loc, "msg": msg})
    return out


# Called with every JarvisError before it is rendered, after the request's transaction has
# ended (the audit of refusals hooks in here).
ErrorObserver = Callable[[Request, "JarvisError"], Awaitable[None]]

ERROR_OBSERVER: StateKey[ErrorObserver] = StateKey(
    "error_observer", "what hears of every refusal (the audit of 403s)"
)


# Where a request's inputs come from, as the first member of an error's ``loc``.
LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})
# Requests of these methods carry their inputs in the query string, others in the body.
QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def located(errors: Sequence[dict[str, Any]] | None, method: str) -> list[dict[str, Any]] | None:
    """Field errors as HTTP reports them: services name bare fields (``persona``), so the
    CLI and workers can word them their own way; the request says where the field was
    (``["body", "persona"]``, or ``query`` for a GET). A ``loc`` that names its location
    already is kept."""
    if not errors:
        return None
    where = "query" if method.upper() in QUERY_METHODS else "body"
    out = []
    for error in errors:
        loc = list(error.get("loc") or [])
        if not loc or loc[0] not in LOCATIONS:
            loc = [where, *loc]
        out.append({**error, "loc": loc})
    return out


async def _handle_jarvis_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JarvisError)  # noqa: S101 - registered for this type only
    observer = ERROR_OBSERVER.find(request)
    if observer is not None:
        try:
            await observer(request, exc)
        except Exception:
            log.exception("error_observer_failed", path=request.url.path)
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        errors=located(exc.errors, request.method) if exc.request_fields else exc.errors,
        headers=exc.headers,
        instance=request.url.path,
        extra=exc.extra,
    )


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        ctx = next((e.get("ctx") or {} for e in raw if e.get("type") == "json_invalid"), {})
        reason = ctx.get("error", "the body is not valid JSON")
        return problem(
            400,
            "Malformed JSON",
            f"The request body is not valid JSON: {reason}",
            slug="malformed-json",
            instance=request.url.path,
        )
    errors = _validation_errors(exc)
    summary = "; ".join(f"{_format_loc(e['loc'])}: {e['msg']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    count = f"{len(errors)} invalid field{'s' if len(errors) != 1 else ''}"
    return problem(
        422,
        "Validation failed",
        f"{count}: {summary}{more}",
        slug="validation",
        errors=errors,
        instance=request.url.path,
    )


def _unparsable_body(cause: BaseException | None) -> str | None:
    """Why FastAPI could not read a JSON body (it says only "error parsing the body")."""
    if isinstance(cause, UnicodeDecodeError):
        return f"it is not UTF-8 text (byte {cause.start} cannot be decoded)"
    if isinstance(cause, RecursionError):
        return "arrays or objects are nested too deeply"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return "a number has more than 4300 digits"
    return None


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    status = exc.status_code
    if status == 404:
        detail = f"No route matches {request.method} {request.url.path}"
        title, slug = "Not found", "not-found"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        title, slug = "Method not allowed", "method-not-allowed"
    elif status == 400 and (reason := _unparsable_body(exc.__cause__)) is not None:
        detail = f"The request body is not valid JSON: {reason}"
        title, slug = "Malformed JSON", "malformed-json"
    else:
        detail = str(exc.detail)
        title, slug = "HTTP error", f"http-{status}"
    return problem(
        status, title, detail, slug=slug, headers=dict(exc.headers or {}), instance=request.url.path
    )


_CONSTRAINT = re.compile(r"\b(uq|fk|ck|pk)_[a-z0-9_]+")


def describe_integrity_error(exc: IntegrityError) -> str:
    """Say which constraint a write broke, in words, without leaking SQL."""
    text = str(exc.orig)
    match = _CONSTRAINT.search(text)
    if match:
        return f"The change conflicts with existing data (constraint {match.group(0)})"
    lowered = text.lower()
    if "unique" in lowered:
        # SQLite names the columns rather than the constraint: "UNIQUE constraint failed: t.c"
        cols = text.split(":", 1)[1].strip() if ":" in text else "a unique field"
        return f"A record with the same {cols} already exists"
    if "foreign key" in lowered:
        return "The change refers to a record that does not exist, or one still referenced"
    return "The change conflicts with existing data"


async def _handle_integrity(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntegrityError)  # noqa: S101
    log.info("integrity_error", path=request.url.path, error=str(exc.orig))
    return problem(
        409, "Conflict", describe_integrity_error(exc), slug="conflict", instance=request.url.path
    )


def is_data_exception(exc: DBAPIError) -> bool:
    """Whether the database refused a value (SQLSTATE class 22, "data exception").

    asyncpg's errors reach SQLAlchemy as a plain ``DBAPIError`` rather than ``DataError``;
    their SQLSTATE says what they are (22P02 invalid text, 22P05 untranslatable character,
    22003 number out of range, 22021 bad byte sequence, ...).
    """
    if isinstance(exc, DataError):
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state.startswith("22")


async def _handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)  # noqa: S101
    if not is_data_exception(exc):
        raise exc  # on to the 500 handler, which logs it and lets the server see it
    # Input validation should stop such values first; this is the backstop.
    log.warning("data_error", path=request.url.path, error=str(exc.orig))
    return problem(
        422,
        "Value cannot be stored",
        "A value in the request cannot be stored by the database (for example text with a "
        "NUL character or a number out of range)",
        slug="unstorable-value",
        instance=request.url.path,
    )


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, method=request.method)
    return problem(
        500,
        "Internal error",
        "An unexpected error occurred; it has been logged",
        slug="internal",
        instance=request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as problem+json."""
    app.add_exception_handler(JarvisError, _handle_jarvis_error)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(IntegrityError, _handle_integrity)
    app.add_exception_handler(DBAPIError, _handle_database_error)
    app.add_exception_handler(Exception, _handle_unexpected)
