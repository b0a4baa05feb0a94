"""Shared parts of ``jarvis config``: the Typer app, option types, parsing and output."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.users.service import get_user_by_email, user_actor
from jarvis.cli.common import console, err_console, option_path, run
from jarvis.config import snapshots as snap
from jarvis.config.schemas import ScopeOut
from jarvis.config.service import SetOutcome
from jarvis.core.identity import Actor
from jarvis.core.permissions import ADMIN_PERSONA_KEY
from jarvis.core.personas import PERSONA_KEY_PATTERN
from jarvis.core.scope import Scope
from jarvis.errors import Forbidden, JarvisError, NotFound
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.schema import find_unstorable

app = typer.Typer(
    help="Configuration: keys, values, history, snapshots, export/import, approvals.",
    no_args_is_help=True,
)

CLI_ACTOR = Actor.system("cli")
MAX_ID = 2**31 - 1
PAGE = 100
T = TypeVar("T")


# --- running and failing ------------------------------------------------------------------


# Where each field a service names comes from on the command line (services name bare
# fields, as the API's body has them; the CLI words them with its own options).
OPTIONS = {
    "key": "KEY",
    "value": "VALUE",
    "version": "VERSION",
    "scope": "the scope (--persona, --agent-id, --workflow-id)",
    "persona": "--persona",
    "agentId": "--agent-id",
    "workflowId": "--workflow-id",
    "effectiveFrom": "--from",
    "effectiveTo": "--to",
    "reason": "--reason",
}


def _loc(loc: Any) -> str:
    """Where an error is in a document (an import file, a snapshot): its path."""
    parts = [str(p) for p in (loc or []) if p != "body"]
    return ".".join(parts) or "body"


def _option(loc: Any) -> str:
    """The option (or argument) an error of a service's field names: ``--from`` for
    ``effectiveFrom``, ``--persona`` for ``scope.persona``, ``VALUE.primary`` for
    ``value.primary``."""
    return option_path(loc, OPTIONS) or "input"


def _fail(
    detail: str, errors: list[dict[str, Any]] | None = None, *, options: bool = False
) -> NoReturn:
    """One line saying what went wrong, then each invalid field (loc: msg), exit 1.
    With ``options``, the fields are a service's and are named by the CLI's options."""
    where = _option if options else _loc
    errors = errors or []
    if options and len(errors) == 1:
        # "effectiveFrom: is in the past" says "--from: is in the past".
        named = ".".join(str(p) for p in (errors[0].get("loc") or []) if p != "body")
        if named and detail.startswith(f"{named}: "):
            detail = f"{where(errors[0].get('loc'))}: {detail[len(named) + 2 :]}"
    err_console.print(f"[bold red]error:[/] {escape(detail)}", soft_wrap=True)
    if len(errors) == 1 and str(errors[0].get("msg", "")) in detail:
        errors = []  # the message already says it all
    for error in errors:
        line = f"  - {where(error.get('loc'))}: {error.get('msg')}"
        err_console.print(escape(line), soft_wrap=True)
    raise typer.Exit(1)


def _execute(main: Callable[[], Awaitable[T]]) -> T:
    """``common.run``, with a validation error's field list printed under its message."""

    async def guarded() -> T:
        try:
            return await main()
        except JarvisError as exc:
            _fail(exc.detail, exc.errors, options=exc.request_fields)

    return run(guarded)


# --- parsing options ----------------------------------------------------------------------


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"'{text}' is not an ISO 8601 date-time (e.g. 2030-01-31T09:00:00Z)"
        ) from None
    try:
        return as_utc(moment)
    except OverflowError:
        raise typer.BadParameter(f"'{text}' is out of range") from None


def _text(max_length: int) -> Callable[[str | None], str | None]:
    """A callback refusing text the database cannot store or that is too long."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > max_length:
            raise typer.BadParameter(f"is longer than {max_length} characters")
        found = find_unstorable(value)
        if found is not None:
            raise typer.BadParameter(found[1])
        return value

    return check


def _persona(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(PERSONA_KEY_PATTERN, value):
        raise typer.BadParameter(f"'{value}' is not a persona key (e.g. underwriter)")
    return value


def parse_value(text: str) -> Any:
    """VALUE as JSON; a bare word that is not JSON is taken as a string (``gpt-4o``)."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError) as exc:
        if stripped[:1] in ("{", "[", '"'):
            raise typer.BadParameter(f"is not valid JSON: {exc}", param_hint="VALUE") from None
        value = text
    found = find_unstorable(value)
    if found is not None:
        raise typer.BadParameter(f"{found[0]} {found[1]}", param_hint="VALUE")
    return value


class Format(StrEnum):
    JSON = "json"
    YAML = "yaml"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


def _format_of(path: Path | None) -> Format | None:
    suffix = path.suffix.lower() if path is not None else ""
    return {".json": Format.JSON, ".yaml": Format.YAML, ".yml": Format.YAML}.get(suffix)


Key = Annotated[str, typer.Argument(metavar="KEY", help="Dotted key, e.g. llm.model")]
Persona = Annotated[
    str | None, typer.Option(callback=_persona, help="Persona key, e.g. underwriter")
]
AgentId = Annotated[int | None, typer.Option(min=1, max=MAX_ID, help="Agent id")]
WorkflowId = Annotated[int | None, typer.Option(min=1, max=MAX_ID, help="Workflow id")]
Version = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="A version at that scope")]
RequestId = Annotated[int, typer.Argument(min=1, max=MAX_ID, metavar="ID")]
Reason = Annotated[str | None, typer.Option(callback=_text(2000), help="Why (kept in the log)")]
As = Annotated[
    str | None,
    typer.Option("--as", metavar="EMAIL", help="Act as this admin (default: system actor cli)"),
]
AsRequired = Annotated[
    str, typer.Option("--as", metavar="EMAIL", help="The e-mail of the admin who decides")
]
Limit = Annotated[int, typer.Option(min=1, max=1000, help="At most this many rows")]


# --- shared lookups -----------------------------------------------------------------------


async def _actor(session: AsyncSession, email: str | None) -> Actor:
    """The system actor ``cli``, or the active admin named by ``--as``."""
    if email is None:
        return CLI_ACTOR
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with the e-mail '{email.strip().lower()}'")
    if not user.is_active:
        raise Forbidden(f"the user '{user.email}' is deactivated")
    if user.persona != ADMIN_PERSONA_KEY:
        raise Forbidden(f"'{user.email}' is not an admin; only admins change configuration")
    return user_actor(user)


# --- output -------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _short(value: Any, width: int = 60) -> str:
    text = _json(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(moment: datetime | None, empty: str = "") -> str:
    return as_utc(moment).isoformat(timespec="seconds") if moment is not None else empty


def _scope_text(scope: dict[str, Any] | None) -> str:
    return Scope.from_json(scope).describe()


def _scope_out(scope: ScopeOut | None) -> str:
    if scope is None:
        return ""
    return Scope(scope.persona, scope.agent_id, scope.workflow_id).describe()


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    return table


def _row(table: Table, *cells: Any) -> None:
    # Text, not markup: a value such as "[red]" must print as it is.
    table.add_row(*(Text("" if cell is None else str(cell)) for cell in cells))


@dataclass(frozen=True)
class Written:
    """What a write did, read before the session closed."""

    key: str
    scope: Scope
    version: int | None = None
    effective_from: datetime | None = None
    effective_to: datetime | None = None
    request_id: int | None = None


def _written(key: str, scope: Scope, outcome: SetOutcome) -> Written:
    if outcome.request is not None:
        return Written(key, scope, request_id=outcome.request.id)
    row = outcome.value
    assert row is not None  # noqa: S101 - a write stores a value or opens a request
    return Written(key, scope, row.version, row.effective_from, row.effective_to)


def _print_written(done: Written, verb: str) -> None:
    if done.request_id is not None:
        console.print(
            f"change request #{done.request_id} awaits approval "
            f"(another admin: jarvis config approve {done.request_id} --as EMAIL)"
        )
        return
    window = ""
    if done.effective_from is not None and done.effective_from > utcnow():
        window += f", effective from {_when(done.effective_from)}"
    if done.effective_to is not None:
        window += f", until {_when(done.effective_to)}"
    console.print(
        f"{verb} version {done.version} of {escape(done.key)} at "
        f"{escape(done.scope.describe())} scope{window}"
    )


def _print_diff(diff: snap.Diff) -> None:
    if diff.added or diff.removed or diff.changed:
        table = _table("", "Change", "Key", "Scope", "Before", "After")
        for e in diff.added:
            _row(table, "added", e["key"], _scope_text(e["scope"]), "", _json(e["value"]))
        for e in diff.removed:
            _row(table, "removed", e["key"], _scope_text(e["scope"]), _json(e["value"]), "")
        for e in diff.changed:
            before, after = _json(e["before"]), _json(e["after"])
            _row(table, "changed", e["key"], _scope_text(e["scope"]), before, after)
        console.print(table)
    console.print(
        f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
        f"{diff.unchanged} unchanged"
    )


def _print_report(report: snap.Report, done: str) -> None:
    console.print("dry run: nothing was changed" if report.dry_run else done)
    _print_diff(report.diff)
    if report.unknown_keys:
        console.print("keys not in the registry: " + escape(", ".join(report.unknown_keys)))
    for entry in report.skipped:
        console.print(
            f"skipped {escape(entry['key'])} at {escape(_scope_text(entry.get('scope')))}: "
            f"{escape(str(entry.get('reason', '')))}"
        )
    if report.change_requests:
        ids = ", ".join(f"#{i}" for i in report.change_requests)
        console.print(f"change requests awaiting approval: {ids}")
    if report.errors:
        console.print(f"{len(report.errors)} problem(s):")
        for error in report.errors:
            console.print(f"  - {escape(_loc(error.get('loc')))}: {escape(str(error['msg']))}")
