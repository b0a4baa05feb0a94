"""Pages of the executions area: the list, the live six-layer view of one execution (also
served as a fragment for the command bar's dialog), the command bar's form, and the
approve / reject / cancel forms.

Every action goes through the same functions as the JSON API (``orchestration.commands``
and ``orchestration.service``); these routes only read forms and choose what to render. The
live view is rendered from the database and carries the number of the last event stored
before it was read (``data-last-seq``): ``static/js/live.js`` subscribes to the WebSocket
after it, so nothing between the render and the subscription is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from starlette.responses import Response

from jarvis.auth.dependencies import limit_executions
from jarvis.core import permissions as perm
from jarvis.core.identity import Principal
from jarvis.core.layers import LAYER_DESCRIPTIONS, LAYER_ORDER
from jarvis.db.session import Db, DbSession
from jarvis.errors import Conflict, ValidationFailed
from jarvis.orchestration import service
from jarvis.orchestration.attempts import preview
from jarvis.orchestration.commands import approve_and_continue, start_execution
from jarvis.orchestration.dependencies import Bus, DispatcherDep
from jarvis.orchestration.lifecycle import CANCELLABLE, FINAL, ExecutionStatus, StepStatus
from jarvis.orchestration.schemas import (
    MAX_COMMAND_CHARS,
    Decision,
    ExecutionCreate,
    ExecutionOut,
    StepOut,
)
from jarvis.web.deps import CommandRunner, ExecutionsDecider, Viewer, wants_fragment
from jarvis.web.forms import FieldErrors, errors_from, read_form
from jarvis.web.rendering import PageContext, page_context, redirect, render

router = APIRouter(include_in_schema=False)

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_COMMENT_CHARS = 4000
STATUSES: tuple[str, ...] = tuple(s.value for s in ExecutionStatus)

ExecutionId = Annotated[str, Path(min_length=1, max_length=36)]


def when(moment: datetime | None) -> str:
    """A stored time as the pages show it (UTC)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


# --- the list -----------------------------------------------------------------------------


@dataclass
class ListFilters:
    status: str = ""
    persona: str = ""
    since: str = ""
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    since_at: datetime | None = None
    errors: FieldErrors = field(default_factory=FieldErrors)


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, low), high)


def parse_since(text: str) -> datetime:
    """A date (midnight UTC) or a date and time (UTC unless it names its zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.combine(date.fromisoformat(text), time())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def list_filters(request: Request, principal: Principal) -> ListFilters:
    """The list's filters from the query; a value that is not understood is reported next to
    its field and not applied."""
    query = request.query_params
    flt = ListFilters(
        status=query.get("status", "").strip(),
        persona=query.get("persona", "").strip() if principal.is_admin else "",
        since=query.get("since", "").strip(),
        limit=_int(query.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int(query.get("offset"), 0, 0, 2**31 - 1),
    )
    if flt.status and flt.status not in STATUSES:
        flt.errors.add("status", f"'{flt.status}' is not a status; choose one from the list")
        flt.status = ""
    if flt.since:
        try:
            flt.since_at = parse_since(flt.since)
        except ValueError:
            flt.errors.add("since", "Give a date as YYYY-MM-DD (or a date and time)")
    return flt


@router.get("/executions")
async def executions_page(request: Request, session: DbSession, principal: Viewer) -> Response:
    """Executions, newest first: everyone's for admins, one's own for everyone else."""
    flt = list_filters(request, principal)
    rows, total = await service.list_executions(
        session,
        service.ExecutionFilter(
            status=flt.status or None, persona=flt.persona or None, since=flt.since_at
        ),
        principal=principal,
        limit=flt.limit,
        offset=flt.offset,
    )
    progress = await service.step_progress(session, [r.execution_id for r in rows])
    items = [
        {
            "id": r.execution_id,
            "command": r.command,
            "persona": r.persona,
            "status": r.status,
            "created_by": r.created_by,
            "started": when(r.started_at or r.created_at),
            "started_iso": iso(r.started_at or r.created_at),
            "duration_ms": r.duration_ms,
            "steps_done": progress.get(r.execution_id, (0, 0))[0],
            "steps": progress.get(r.execution_id, (0, 0))[1],
        }
        for r in rows
    ]
    ctx = await page_context(request, session, principal, section="executions")
    return render(
        ctx,
        "executions/list.html",
        items=items,
        total=total,
        filters=flt,
        statuses=STATUSES,
        filtered=bool(flt.status or flt.persona or flt.since),
    )


# --- one execution ------------------------------------------------------------------------


def _step_view(step: StepOut) -> dict[str, Any]:
    """What a step card shows (the same members live.js reads from the events)."""
    return {
        "stepId": step.id,
        "agentId": step.agent_id,
        "agentName": step.agent_name,
        "agentKind": step.agent_kind,
        "layer": step.layer,
        "status": step.status,
        "attempt": step.attempt,
        "durationMs": step.duration_ms,
        "preview": preview(step.output),
        "error": step.error,
        "decidedBy": step.decided_by,
        "decisionComment": step.decision_comment,
    }


def layer_status(
    layer: str, steps: list[StepOut], execution: ExecutionOut, completed: dict[str, str]
) -> str:
    """Where a layer stands: how it completed (its ``layer_completed`` event), else from
    its steps."""
    if layer in completed:
        return completed[layer]
    statuses = {s.status for s in steps}
    if StepStatus.AWAITING_APPROVAL in statuses:
        return StepStatus.AWAITING_APPROVAL
    if not steps:
        return "not_run" if execution.status in FINAL else "waiting"
    for final in (StepStatus.FAILED, StepStatus.REJECTED, StepStatus.CANCELLED):
        if final in statuses:
            return final
    return StepStatus.COMPLETED if execution.status in FINAL else StepStatus.RUNNING


@dataclass
class PanelView:
    """Everything the live panel renders."""

    execution: ExecutionOut
    last_seq: int
    layers: list[dict[str, Any]]
    started: str
    started_iso: str
    can_approve: bool
    can_cancel: bool
    awaiting: list[dict[str, Any]]

    @property
    def final(self) -> bool:
        return self.execution.status in FINAL

    @property
    def cancellable_now(self) -> bool:
        """Whether the Cancel button shows as rendered (live.js follows the status after)."""
        return self.can_cancel and self.execution.status in CANCELLABLE

    @property
    def response(self) -> str | None:
        result = self.execution.result or {}
        text = result.get("response")
        return text if isinstance(text, str) else None


async def panel_view(session: DbSession, execution_id: str, principal: Principal) -> PanelView:
    # The event number first, the state after: whatever happens in between is both in the
    # page and replayed, and live.js applies a replayed event only if it moves forward.
    last_seq = await service.last_event_seq(session, execution_id)
    execution = await service.execution_detail(session, execution_id, principal=principal)
    completed = await service.completed_layers(session, execution_id)
    layers = []
    for layer in LAYER_ORDER:
        steps = [s for s in execution.steps if s.layer == layer.value]
        layers.append(
            {
                "name": layer.value,
                "description": LAYER_DESCRIPTIONS[layer],
                "status": layer_status(layer.value, steps, execution, completed),
                "steps": [_step_view(s) for s in steps],
            }
        )
    return PanelView(
        execution=execution,
        last_seq=last_seq,
        layers=layers,
        started=when(execution.started_at or execution.created_at),
        started_iso=iso(execution.started_at or execution.created_at),
        can_approve=principal.can(perm.EXECUTIONS_APPROVE),
        can_cancel=principal.can(perm.EXECUTIONS_CREATE),
        awaiting=[
            _step_view(s) for s in execution.steps if s.status == StepStatus.AWAITING_APPROVAL
        ],
    )


@router.get("/executions/{execution_id}")
async def execution_page(
    request: Request, session: DbSession, principal: Viewer, execution_id: ExecutionId
) -> Response:
    """The live six-layer view (``?fragment=1``: the panel alone, for the command bar)."""
    view = await panel_view(session, execution_id, principal)
    ctx = await page_context(request, session, principal, section="executions")
    if wants_fragment(request):
        return render(ctx, "executions/_panel.html", view=view, fragment=True)
    return render(ctx, "executions/detail.html", view=view, fragment=False)


# --- running a command (the command bar without JavaScript) ------------------------------


def _run_form(
    ctx: PageContext, errors: FieldErrors, command: str, persona: str, status_code: int
) -> Response:
    return render(
        ctx,
        "executions/run.html",
        status_code=status_code,
        errors=errors,
        command=command,
        persona=persona,
        max_chars=MAX_COMMAND_CHARS,
    )


@router.post("/executions")
async def run_command(
    request: Request,
    session: DbSession,
    db: Db,
    principal: CommandRunner,
    bus: Bus,
    dispatcher: DispatcherDep,
) -> Response:
    """Start the command as the chosen persona and go to its live view."""
    form = await read_form(request)
    command = form.get("command").strip()
    persona = form.get("persona").strip() or principal.persona
    errors = FieldErrors()
    if not command:
        errors.add("command", "Type a command for JARVIS to run.")
    else:
        try:
            data = ExecutionCreate(command=command, persona=persona)
            # A persona the viewer may not act as is a 403 (as in the API), not a form error.
            await limit_executions(request, principal)
            execution = await start_execution(
                db, data, principal=principal, bus=bus, dispatcher=dispatcher, source="web"
            )
        except (ValidationError, ValidationFailed) as exc:
            errors = errors_from(exc, known=["command", "persona"])
        else:
            return redirect(f"/executions/{execution.execution_id}", toast="Command started")
    ctx = await page_context(request, session, principal, section="executions")
    return _run_form(ctx, errors, command, persona, 422)


# --- decisions and cancellation -----------------------------------------------------------


async def _comment(request: Request) -> str | None:
    form = await read_form(request)
    comment = form.optional("comment")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise ValidationFailed.field(
            ["comment"], f"a comment may have at most {MAX_COMMENT_CHARS} characters"
        )
    return comment


def _back(execution_id: str, toast: str) -> Response:
    return redirect(f"/executions/{execution_id}", toast=toast)


@router.post("/executions/{execution_id}/approve")
async def approve(
    request: Request,
    session: DbSession,
    principal: ExecutionsDecider,
    bus: Bus,
    dispatcher: DispatcherDep,
    execution_id: ExecutionId,
) -> Response:
    decision = Decision(comment=await _comment(request))
    try:
        await approve_and_continue(
            session, execution_id, decision, principal=principal, bus=bus, dispatcher=dispatcher
        )
    except Conflict as exc:  # decided meanwhile (another tab, another person): say so
        return _back(execution_id, f"Nothing to approve: {exc.detail}")
    return _back(execution_id, "Approved; the execution continues")


@router.post("/executions/{execution_id}/reject")
async def reject(
    request: Request,
    session: DbSession,
    principal: ExecutionsDecider,
    bus: Bus,
    execution_id: ExecutionId,
) -> Response:
    decision = Decision(comment=await _comment(request))
    try:
        await service.reject_execution(
            session, bus, execution_id, decision, principal=principal, actor=principal.actor
        )
    except Conflict as exc:
        return _back(execution_id, f"Nothing to reject: {exc.detail}")
    return _back(execution_id, "Rejected; the execution has ended")


@router.post("/executions/{execution_id}/cancel")
async def cancel(
    request: Request,
    session: DbSession,
    principal: CommandRunner,
    bus: Bus,
    execution_id: ExecutionId,
) -> Response:
    await read_form(request)  # the CSRF token was checked; nothing else is read
    try:
        execution = await service.cancel_execution(
            session, bus, execution_id, principal=principal, actor=principal.actor
        )
    except Conflict as exc:
        return _back(execution_id, f"Not cancelled: {exc.detail}")
    if execution.status == ExecutionStatus.RUNNING:
        return _back(execution_id, "Cancelling: the running agents are being stopped")
    return _back(execution_id, "Cancelled")
