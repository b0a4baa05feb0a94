"""``jarvis config keys | get | set | history | revert | deactivate``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from jarvis.cli.common import configured, console
from jarvis.cli.config.shared import (
    PAGE,
    AgentId,
    As,
    Key,
    Limit,
    Persona,
    Reason,
    Version,
    WorkflowId,
    Written,
    _actor,
    _execute,
    _instant,
    _json,
    _print_written,
    _row,
    _scope_out,
    _short,
    _table,
    _text,
    _when,
    _written,
    app,
    parse_value,
)
from jarvis.config.registry import KeyInfo
from jarvis.config.schemas import ChangeLogOut, SettingOut
from jarvis.config.validation import mask
from jarvis.core.scope import GLOBAL, Scope

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
        async with configured(write=False) as (_, config):
            explained = await config.explain_setting(key, scope, at=at, candidates=explain)
            return SettingOut.explained(explained)

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

    async def body() -> tuple[list[ChangeLogOut], int]:
        async with configured(write=False) as (session, config):
            rows, total = await config.history(session, key, scope=only, limit=limit, offset=0)
            secret = (await config.key_info(key, session)).secret
            return [ChangeLogOut.of(row, secret=secret) for row in rows], total

    rows, total = _execute(body)
    table = _table(f"History of {key} ({len(rows)} of {total})", "When", "Action", "Scope")
    for column in ("Version", "Old", "New", "By", "Reason"):
        table.add_column(column)
    for row in rows:
        _row(
            table,
            _when(row.created_at),
            row.action,
            _scope_out(row.scope),
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
