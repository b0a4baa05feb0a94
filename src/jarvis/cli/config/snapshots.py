"""``jarvis config snapshot | snapshots | diff | restore | export | import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from jarvis.cli.common import configured, console
from jarvis.cli.config.shared import (
    As,
    Format,
    Limit,
    Reason,
    _actor,
    _execute,
    _fail,
    _format_of,
    _print_diff,
    _print_report,
    _row,
    _table,
    _text,
    _when,
    app,
)
from jarvis.config import snapshots as snap
from jarvis.config.schemas import SnapshotOut
from jarvis.kit.clock import utcnow

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

    async def body() -> tuple[list[SnapshotOut], int]:
        async with configured(write=False) as (session, _):
            rows, total = await snap.list_snapshots(session, limit=limit, offset=0)
            return [SnapshotOut.of(row) for row in rows], total

    shown, total = _execute(body)
    table = _table(f"Snapshots ({len(shown)} of {total})", "ID", "Name", "Taken at", "Values")
    table.add_column("By")
    table.add_column("Description")
    for out in shown:
        _row(
            table,
            out.id,
            out.name,
            _when(out.taken_at),
            out.value_count,
            out.created_by,
            out.description,
        )
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
            before = await snap.find_snapshot(session, snapshot)
            if against.strip().lower() == "current":
                after, label = await snap.live_values(session, utcnow()), "the live values"
            else:
                other = await snap.find_snapshot(session, against)
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
            row = await snap.find_snapshot(session, snapshot)
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
                row = await snap.find_snapshot(session, snapshot)
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
