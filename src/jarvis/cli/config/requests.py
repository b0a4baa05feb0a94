"""``jarvis config requests | approve | reject | withdraw`` (four eyes)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from jarvis.cli.common import configured, console
from jarvis.cli.config.shared import (
    As,
    AsRequired,
    Limit,
    Reason,
    RequestId,
    RequestStatus,
    _actor,
    _execute,
    _row,
    _scope_text,
    _short,
    _table,
    app,
)
from jarvis.config import snapshots as snap
from jarvis.config.schemas import ChangeRequestOut

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
