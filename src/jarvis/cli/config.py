"""``jarvis config``: read and change configuration from the command line.

Every command goes through the ConfigService and ``jarvis.config.snapshots``, so the CLI
obeys the API's rules (schemas, scopes, effective dating, four-eyes approval, audit
ledger, change log) and its changes reach running servers. Writes act as the system
actor ``cli`` unless ``--as`` names an admin; deciding a change request needs ``--as``.
"""

from __future__ import annotations

import difflib
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

from jarvis.auth.service import ADMIN_PERSONA_KEY, get_user_by_email, user_actor
from jarvis.cli.common import configured, console, err_console, run
from jarvis.config import snapshots as snap
from jarvis.config.models import ConfigChangeLog, ConfigSnapshot
from jarvis.config.registry import KeyInfo
from jarvis.config.schemas import CandidateOut, ChangeRequestOut, ScopeOut, SettingOut
from jarvis.config.scope import GLOBAL, Scope
from jarvis.config.service import SetOutcome
from jarvis.config.validation import mask
from jarvis.errors import Forbidden, JarvisError, NotFound
from jarvis.governance.audit import Actor
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.schema import find_unstorable
from jarvis.personas.schemas import PERSONA_KEY_PATTERN

app = typer.Typer(
    help="Configuration: keys, values, history, snapshots, export/import, approvals.",
    no_args_is_help=True,
)

CLI_ACTOR = Actor.system("cli")
MAX_ID = 2**31 - 1
PAGE = 100
T = TypeVar("T")


# --- running and failing ------------------------------------------------------------------


def _loc(loc: Any) -> str:
    parts = [str(p) for p in (loc or []) if p != "body"]
    return ".".join(parts) or "body"


def _fail(detail: str, errors: list[dict[str, Any]] | None = None) -> NoReturn:
    """One line saying what went wrong, then each invalid field (loc: msg), exit 1."""
    err_console.print(f"[bold red]error:[/] {escape(detail)}", soft_wrap=True)
    errors = errors or []
    if len(errors) == 1 and str(errors[0].get("msg", "")) in detail:
        errors = []  # the message already says it all
    for error in errors:
        line = f"  - {_loc(error.get('loc'))}: {error.get('msg')}"
        err_console.print(escape(line), soft_wrap=True)
    raise typer.Exit(1)


def _execute(main: Callable[[], Awaitable[T]]) -> T:
    """``common.run``, with a validation error's field list printed under its message."""

    async def guarded() -> T:
        try:
            return await main()
        except JarvisError as exc:
            _fail(exc.detail, exc.errors)

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


async def _snapshot(session: AsyncSession, ref: str) -> ConfigSnapshot:
    """A snapshot by id (a number is tried as an id first) or by name."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID:
        try:
            return await snap.get_snapshot(session, int(ref))
        except NotFound:
            pass
    names: list[str] = []
    offset = 0
    while True:
        rows, total = await snap.list_snapshots(session, limit=PAGE, offset=offset)
        for row in rows:
            if row.name == ref:
                return row
            names.append(row.name)
        offset += PAGE
        if not rows or offset >= total:
            break
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(n) for n in close)}?" if close else ""
    raise NotFound(f"no snapshot with id or name '{ref}'{hint}")


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


# --- keys and values ----------------------------------------------------------------------


@app.command()
def keys(
    search: Annotated[
        str | None, typer.Option(callback=_text(200), help="Only keys or descriptions with this")
    ] = None,
) -> None:
    """List the registry: every key with its scopes, default, approval and secrecy."""

    async def body() -> list[KeyInfo]:
        found: list[KeyInfo] = []
        async with configured(write=False) as (session, config):
            while True:
                rows, total = await config.list_keys(
                    session, search=search, limit=PAGE, offset=len(found)
                )
                found.extend(rows)
                if not rows or len(found) >= total:
                    return found

    infos = _execute(body)
    table = _table(f"Configuration keys ({len(infos)})", "Key", "Scopes", "Default", "Approval")
    table.add_column("Secret")
    for info in infos:
        _row(
            table,
            info.key,
            ", ".join(info.scopes),
            _short(mask(info.default, info.secret)),
            "required" if info.requires_approval else "",
            "yes" if info.secret else "",
        )
    console.print(table)


@app.command()
def get(
    key: Key,
    persona: Persona = None,
    agent_id: AgentId = None,
    workflow_id: WorkflowId = None,
    at: Annotated[
        datetime | None,
        typer.Option(parser=_instant, metavar="ISO", help="Read as of this instant"),
    ] = None,
    explain: Annotated[bool, typer.Option(help="List every candidate and why")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (as the API)")] = False,
) -> None:
    """The effective value of a key for a scope: value, source, version and window."""
    scope = Scope(persona, agent_id, workflow_id)

    async def body() -> SettingOut:
        async with configured(write=False) as (session, config):
            info = await config.key_info(key, session)
            resolution = await config.resolve(key, scope, at=at)
            out = SettingOut.of(resolution, scope=scope, at=at or utcnow(), secret=info.secret)
            if explain:
                candidates = await config.explain(key, scope, at=at)
                out.candidates = [CandidateOut.of(c, secret=info.secret) for c in candidates]
                out.explanation = (
                    f"{resolution.source} value version {resolution.version} wins"
                    if resolution.source != "default"
                    else "no live value applies; the registry default is used"
                )
            return out

    out = _execute(body)
    if as_json:
        typer.echo(out.model_dump_json(indent=2))
        return
    console.print(Text(f"{out.key} = {_json(out.value)}"))
    if out.source == "default":
        console.print("source: registry default (no value applies)")
    else:
        where = _scope_out(out.value_scope)
        console.print(
            f"source: {out.source} scope{'' if where == 'global' else f' ({escape(where)})'}, "
            f"version {out.version}, "
            f"effective from {_when(out.effective_from)} "
            f"until {_when(out.effective_to, 'further notice')}"
        )
    if scope != GLOBAL or at is not None:
        console.print(f"read for: {escape(scope.describe())} at {_when(out.at)}")
    if out.valid_until is not None:
        console.print(f"next scheduled change: {_when(out.valid_until)}")
    if out.candidates is not None:
        table = _table(f"Candidates: {out.explanation}", "Version", "Scope", "Value", "From", "To")
        table.add_column("Status")
        table.add_column("Reason")
        for c in out.candidates:
            _row(
                table,
                c.version,
                _scope_out(c.scope),
                _short(c.value),
                _when(c.effective_from),
                _when(c.effective_to),
                c.status,
                c.reason,
            )
        console.print(table)


@app.command("set")
def set_command(
    key: Key,
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="JSON; a bare word is taken as a string")
    ],
    persona: Persona = None,
    agent_id: AgentId = None,
    workflow_id: WorkflowId = None,
    effective_from: Annotated[
        datetime | None,
        typer.Option("--from", parser=_instant, metavar="ISO", help="Takes effect then"),
    ] = None,
    effective_to: Annotated[
        datetime | None,
        typer.Option("--to", parser=_instant, metavar="ISO", help="Ends then"),
    ] = None,
    reason: Reason = None,
    as_email: As = None,
) -> None:
    """Store a new version (or open a change request when the key needs approval)."""
    parsed = parse_value(value)
    scope = Scope(persona, agent_id, workflow_id)

    async def body() -> Written:
        async with configured() as (session, config):
            outcome = await config.set_value(
                session,
                key,
                parsed,
                scope,
                actor=await _actor(session, as_email),
                effective_from=effective_from,
                effective_to=effective_to,
                reason=reason,
            )
            return _written(key, scope, outcome)

    _print_written(_execute(body), "applied")


@app.command()
def history(
    key: Key,
    persona: Persona = None,
    agent_id: AgentId = None,
    workflow_id: WorkflowId = None,
    scoped: Annotated[
        bool, typer.Option(help="Only the given scope (global when no scope option is given)")
    ] = False,
    limit: Limit = 20,
) -> None:
    """A key's change log, newest first (values of secret keys are masked)."""
    scope = Scope(persona, agent_id, workflow_id)
    only = scope if scoped or scope != GLOBAL else None

    async def body() -> tuple[list[ConfigChangeLog], int]:
        async with configured(write=False) as (session, config):
            return await config.history(session, key, scope=only, limit=limit, offset=0)

    rows, total = _execute(body)
    table = _table(f"History of {key} ({len(rows)} of {total})", "When", "Action", "Scope")
    for column in ("Version", "Old", "New", "By", "Reason"):
        table.add_column(column)
    for row in rows:
        _row(
            table,
            _when(row.created_at),
            row.action,
            _scope_text(row.scope_identifiers) if row.scope_identifiers is not None else "",
            row.version,
            _short(row.old_value, 40),
            _short(row.new_value, 40),
            row.performed_by,
            row.reason,
        )
    console.print(table)


async def _change_version(
    action: str, key: str, scope: Scope, version: int, reason: str | None, as_email: str | None
) -> Written:
    async with configured() as (session, config):
        actor = await _actor(session, as_email)
        change = config.revert if action == "revert" else config.deactivate
        outcome = await change(session, key, scope, version, actor=actor, reason=reason)
        return _written(key, scope, outcome)


@app.command()
def revert(
    key: Key,
    version: Version,
    persona: Persona = None,
    agent_id: AgentId = None,
    workflow_id: WorkflowId = None,
    reason: Reason = None,
    as_email: As = None,
) -> None:
    """Store the value of an earlier VERSION at a scope as a new version."""
    scope = Scope(persona, agent_id, workflow_id)
    done = _execute(lambda: _change_version("revert", key, scope, version, reason, as_email))
    _print_written(done, "applied")


@app.command()
def deactivate(
    key: Key,
    version: Version,
    persona: Persona = None,
    agent_id: AgentId = None,
    workflow_id: WorkflowId = None,
    reason: Reason = None,
    as_email: As = None,
) -> None:
    """Deactivate one VERSION at a scope (the next live value, or the default, applies)."""
    scope = Scope(persona, agent_id, workflow_id)
    done = _execute(lambda: _change_version("deactivate", key, scope, version, reason, as_email))
    _print_written(done, "deactivated")


# --- snapshots ----------------------------------------------------------------------------


@app.command()
def snapshot(
    name: Annotated[str, typer.Argument(metavar="NAME", callback=_text(200), help="A unique name")],
    description: Annotated[str | None, typer.Option(callback=_text(4000))] = None,
    as_email: As = None,
) -> None:
    """Snapshot every live value now."""

    async def body() -> tuple[int, int]:
        async with configured() as (session, _):
            actor = await _actor(session, as_email)
            row = await snap.create_snapshot(
                session, name=name, description=description or None, actor=actor
            )
            return row.id, len(snap.snapshot_values(row))

    snapshot_id, count = _execute(body)
    console.print(f"snapshot #{snapshot_id} '{escape(name)}' taken: {count} values")


@app.command()
def snapshots(limit: Limit = 50) -> None:
    """List snapshots, newest first."""

    async def body() -> tuple[list[ConfigSnapshot], int]:
        async with configured(write=False) as (session, _):
            return await snap.list_snapshots(session, limit=limit, offset=0)

    rows, total = _execute(body)
    table = _table(f"Snapshots ({len(rows)} of {total})", "ID", "Name", "Taken at", "Values")
    table.add_column("By")
    table.add_column("Description")
    for row in rows:
        count = len(snap.snapshot_values(row))
        _row(table, row.id, row.name, _when(row.taken_at), count, row.created_by, row.description)
    console.print(table)


@app.command("diff")
def diff_command(
    snapshot: Annotated[str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id or name")],
    against: Annotated[
        str, typer.Option(help="'current' (the live values) or another snapshot's id or name")
    ] = "current",
) -> None:
    """What changes going from a snapshot to now (or to another snapshot)."""

    async def body() -> tuple[str, str, snap.Diff]:
        async with configured(write=False) as (session, _):
            before = await _snapshot(session, snapshot)
            if against.strip().lower() == "current":
                after, label = await snap.live_values(session, utcnow()), "the live values"
            else:
                other = await _snapshot(session, against)
                after, label = snap.snapshot_values(other), f"snapshot '{other.name}'"
            secrets = await snap.secret_keys(session)
            result = snap.diff(snap.snapshot_values(before), after, secrets=secrets)
            return f"snapshot '{before.name}'", label, result

    source, target, result = _execute(body)
    console.print(f"from {escape(source)} to {escape(target)}:")
    _print_diff(result)


@app.command()
def restore(
    snapshot: Annotated[str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id or name")],
    dry_run: Annotated[bool, typer.Option(help="Show what would change; change nothing")] = False,
    reason: Reason = None,
    as_email: As = None,
) -> None:
    """Make the live values equal to a snapshot, atomically (keys needing approval are
    queued as change requests)."""

    async def body() -> tuple[str, snap.Report]:
        async with configured() as (session, config):
            actor = await _actor(session, as_email)
            row = await _snapshot(session, snapshot)
            report = await snap.restore_snapshot(
                session, config, row.id, actor=actor, reason=reason, dry_run=dry_run
            )
            return row.name, report

    name, report = _execute(body)
    _print_report(report, f"restored snapshot '{escape(name)}'")
    if report.errors:
        _fail(f"the restore would fail: {len(report.errors)} problem(s)")


# --- export / import ----------------------------------------------------------------------


@app.command()
def export(
    snapshot: Annotated[
        str | None, typer.Option(help="Export this snapshot (id or name), not the live values")
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="json or yaml (default: from --output, else json)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write here, not to stdout")
    ] = None,
) -> None:
    """Export live values (or a snapshot) as JSON or YAML; secret values are masked."""
    chosen = fmt or _format_of(output) or Format.JSON

    async def body() -> dict[str, Any]:
        async with configured(write=False) as (session, _):
            secrets = await snap.secret_keys(session)
            if snapshot is not None:
                row = await _snapshot(session, snapshot)
                entries = snap.snapshot_values(row)
                source = {"snapshot": row.name, "takenAt": row.taken_at.isoformat()}
            else:
                now = utcnow()
                entries = await snap.live_values(session, now)
                source = {"live": now.isoformat()}
            return snap.export_document(entries, secrets=secrets, source=source)

    document = _execute(body)
    text = snap.render(document, chosen.value)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")
    console.print(f"exported {len(document['values'])} values to {escape(str(output))}")


@app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", exists=True, dir_okay=False, readable=True, help="An export"
        ),
    ],
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="json or yaml (default: from the file's extension)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would change; change nothing")] = False,
    prune: Annotated[
        bool, typer.Option(help="Also deactivate live values the file does not name")
    ] = False,
    reason: Reason = None,
    as_email: As = None,
) -> None:
    """Apply an export: every key must be known and every value valid, else nothing is."""
    chosen = fmt or _format_of(file)
    if chosen is None:
        _fail(f"cannot tell the format of {file} from its name; pass --format json or yaml")
    try:
        content = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    media = "application/yaml" if chosen is Format.YAML else "application/json"

    async def body() -> snap.Report:
        document = snap.parse_document(content, media)
        async with configured() as (session, config):
            actor = await _actor(session, as_email)
            return await snap.import_document(
                session, config, document, actor=actor, dry_run=dry_run, prune=prune, reason=reason
            )

    report = _execute(body)
    _print_report(report, f"imported {escape(str(file))}")
    if report.errors:
        _fail(f"the import would fail: {len(report.errors)} problem(s)")


# --- change requests ----------------------------------------------------------------------


def _change(request: ChangeRequestOut) -> str:
    payload = request.payload
    scope = _scope_text(payload.get("scope"))
    if request.action == "deactivate":
        return f"deactivate version {payload.get('version')} at {scope}"
    text = f"{_short(payload.get('value'), 40)} at {scope}"
    if request.action == "revert":
        text += f" (version {payload.get('version')})"
    if payload.get("effectiveFrom"):
        text += f" from {payload['effectiveFrom']}"
    if payload.get("effectiveTo"):
        text += f" until {payload['effectiveTo']}"
    return text


@app.command()
def requests(
    status: Annotated[RequestStatus | None, typer.Option(help="Only this status")] = None,
    limit: Limit = 50,
) -> None:
    """Change requests (four eyes), newest first."""

    async def body() -> tuple[list[ChangeRequestOut], int]:
        async with configured(write=False) as (session, config):
            rows, total = await config.list_requests(
                session, status=status.value if status else None, limit=limit, offset=0
            )
            secrets = await snap.secret_keys(session)
            return [ChangeRequestOut.of(r, secret=r.config_key in secrets) for r in rows], total

    rows, total = _execute(body)
    table = _table(f"Change requests ({len(rows)} of {total})", "ID", "Key", "Action", "Change")
    for column in ("Status", "Requested by", "Decided by", "Reason"):
        table.add_column(column)
    for r in rows:
        decided = f"{r.decided_by}: {r.decision_reason}" if r.decision_reason else r.decided_by
        _row(table, r.id, r.key, r.action, _change(r), r.status, r.requested_by, decided, r.reason)
    console.print(table)


async def _decide(decision: str, request_id: int, as_email: str | None, reason: str | None) -> str:
    async with configured() as (session, config):
        actor = await _actor(session, as_email)
        act = {"approve": config.approve, "reject": config.reject, "withdraw": config.withdraw}
        row = await act[decision](session, request_id, actor=actor, reason=reason)
        return f"change request #{row.id} ({row.action} {row.config_key})"


@app.command()
def approve(request_id: RequestId, as_email: AsRequired, reason: Reason = None) -> None:
    """Approve and apply a change request (not your own)."""
    done = _execute(lambda: _decide("approve", request_id, as_email, reason))
    console.print(f"approved {escape(done)}")


@app.command()
def reject(request_id: RequestId, as_email: AsRequired, reason: Reason = None) -> None:
    """Reject a change request (not your own)."""
    done = _execute(lambda: _decide("reject", request_id, as_email, reason))
    console.print(f"rejected {escape(done)}")


@app.command()
def withdraw(request_id: RequestId, as_email: As = None, reason: Reason = None) -> None:
    """Withdraw your own pending change request."""
    done = _execute(lambda: _decide("withdraw", request_id, as_email, reason))
    console.print(f"withdrew {escape(done)}")
