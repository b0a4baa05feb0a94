"""``jarvis executions list | show | approve | reject | cancel | watch``.

Decisions go through the orchestration service, so they are locked, audited and
published exactly as through the API. ``approve`` resumes the execution in this process
right away and shows its progress like ``jarvis run`` (exit codes as there). ``watch``
(``jarvis.cli.watch``) needs no database: it follows executions on a running server over
the WebSocket protocol, replaying what it missed after a dropped connection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jarvis.cli.common import console
from jarvis.cli.run import (
    STATUS_STYLE,
    As,
    Json,
    execute,
    finish,
    resolve_actor,
    run_live,
    runtime,
)
from jarvis.cli.watch import watch
from jarvis.core.personas import PERSONA_KEY_PATTERN
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import as_utc
from jarvis.orchestration import service
from jarvis.orchestration.lifecycle import ExecutionStatus
from jarvis.orchestration.schemas import Decision, ExecutionSummary

app = typer.Typer(
    help="Executions: list, show, watch live, and decide on those awaiting approval.",
    no_args_is_help=True,
)


MAX_COMMENT_CHARS = 4000
WIDE = 120  # console columns from which the list shows when each execution was created
ExecutionId = Annotated[str, typer.Argument(metavar="ID", help="The execution's id (a UUID)")]


def _check_comment(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_COMMENT_CHARS:
        raise typer.BadParameter(f"is longer than {MAX_COMMENT_CHARS} characters")
    return value


Comment = Annotated[
    str | None, typer.Option(callback=_check_comment, help="Why (kept with the decision)")
]


def _persona(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(PERSONA_KEY_PATTERN, value):
        raise typer.BadParameter(f"'{value}' is not a persona key (e.g. underwriter)")
    return value


@app.command("list")
def list_command(
    status: Annotated[
        ExecutionStatus | None, typer.Option(help="Only executions in this status")
    ] = None,
    persona: Annotated[
        str | None, typer.Option(callback=_persona, help="Only this persona's executions")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="At most this many")] = 20,
) -> None:
    """List executions, newest first."""

    async def body() -> int:
        async with runtime() as rt, unit_of_work(rt.db, write=False) as session:
            flt = service.ExecutionFilter(status=status.value if status else None, persona=persona)
            rows, total = await service.list_executions(
                session, flt, principal=None, limit=limit, offset=0
            )
            _print_list([ExecutionSummary.model_validate(r) for r in rows], total)
        return 0

    raise typer.Exit(execute(body))


def _print_list(rows: Sequence[ExecutionSummary], total: int) -> None:
    # Ids and statuses are never cut (the id is what the other commands take); the time
    # shows when there is room; the command gets the width that is left.
    columns = [("ID", 36), ("Status", 17), ("Persona", 11)]
    with_time = console.width >= WIDE
    if with_time:
        columns.append(("Created (UTC)", 16))
    table = Table(
        title=f"Executions ({len(rows)} of {total})", title_justify="left", box=box.SIMPLE_HEAD
    )
    for name, width in columns:
        table.add_column(name, no_wrap=True, width=width)
    left = console.width - sum(width for _, width in columns) - 3 * len(columns) - 4
    table.add_column("Command", no_wrap=True, overflow="ellipsis", width=max(12, left))
    for row in rows:
        cells = [
            Text(row.execution_id),
            Text(row.status, style=STATUS_STYLE.get(row.status, "")),
            Text(row.persona),
        ]
        if with_time:
            cells.append(Text(as_utc(row.created_at).strftime("%Y-%m-%d %H:%M")))
        table.add_row(*cells, Text(" ".join(row.command.split())))
    console.print(table)


@app.command()
def show(execution_id: ExecutionId, as_json: Json = False) -> None:
    """One execution: its steps by layer, the plan, the answer and any error."""

    async def body() -> int:
        async with runtime() as rt:
            if not as_json:
                async with unit_of_work(rt.db, write=False) as session:
                    execution = await service.get_execution(session, execution_id)
                    console.print(
                        f"Command ({escape(execution.persona)}, by "
                        f"{escape(execution.created_by)}): "
                        f"{escape(' '.join(execution.command.split())[:300])}",
                        highlight=False,
                    )
            await finish(rt, execution_id, as_json=as_json, with_steps=True)
        return 0

    raise typer.Exit(execute(body))


@app.command()
def approve(
    execution_id: ExecutionId,
    comment: Comment = None,
    as_user: As = None,
    as_json: Json = False,
) -> None:
    """Approve what awaits a decision; the execution resumes here and now.

    Exits like ``jarvis run``: 0 completed, 3 awaiting another approval, 1 otherwise.
    """

    async def body() -> int:
        async with runtime() as rt:
            async with unit_of_work(rt.db) as session:
                actor, _ = await resolve_actor(session, as_user)
                execution = await service.approve_execution(
                    session,
                    rt.bus,
                    execution_id,
                    Decision(comment=comment),
                    principal=None,
                    actor=actor,
                )
                resumed = execution.status == "queued"
            if not as_json:
                console.print(f"Approved by {escape(actor.label)}; resuming {execution_id}")
            if resumed:
                await run_live(rt, execution_id, show=not as_json)
            return await finish(rt, execution_id, as_json=as_json, with_steps=False)

    raise typer.Exit(execute(body))


@app.command()
def reject(
    execution_id: ExecutionId,
    comment: Comment = None,
    as_user: As = None,
) -> None:
    """Reject what awaits a decision: the execution ends rejected."""

    async def body() -> int:
        async with runtime() as rt, unit_of_work(rt.db) as session:
            actor, _ = await resolve_actor(session, as_user)
            execution = await service.reject_execution(
                session,
                rt.bus,
                execution_id,
                Decision(comment=comment),
                principal=None,
                actor=actor,
            )
            console.print(
                f"Execution {execution_id}: {execution.status} ({escape(execution.error or '')})",
                highlight=False,
            )
        return 0

    raise typer.Exit(execute(body))


@app.command()
def cancel(execution_id: ExecutionId, as_user: As = None) -> None:
    """Cancel a queued, running or paused execution."""

    async def body() -> int:
        async with runtime() as rt, unit_of_work(rt.db) as session:
            actor, _ = await resolve_actor(session, as_user)
            execution = await service.cancel_execution(
                session, rt.bus, execution_id, principal=None, actor=actor
            )
            if execution.status == "running":
                console.print(
                    f"Execution {execution_id}: cancellation requested; the engine running "
                    "it stops its agents"
                )
            else:
                console.print(f"Execution {execution_id}: {execution.status}")
        return 0

    raise typer.Exit(execute(body))


app.command()(watch)
