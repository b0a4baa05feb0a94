"""``jarvis run "COMMAND" --persona P``: run a command through the six layers, live.

The command is queued like any other execution (source ``cli``) and run right here by an
``Engine``; the layers' progress is drawn from the events the engine publishes on
``jarvis.executions`` (a live table on a terminal, one line per event otherwise), and the
end state is then read back from the database. Exit codes: 0 completed, 3 awaiting
approval, 1 failed / cancelled / rejected, 2 invalid input (unknown persona, empty
command). ``jarvis executions approve`` resumes a paused execution the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.auth.users.service import get_user_by_email, user_actor
from jarvis.cli.common import console, existing_database, fail, settings, worded
from jarvis.config.builtin import ensure_builtin_registry
from jarvis.config.service import ConfigService
from jarvis.core.identity import Actor
from jarvis.core.layers import LAYER_ORDER
from jarvis.core.permissions import ADMIN_PERSONA_KEY
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import Forbidden, JarvisError, NotFound, ValidationFailed
from jarvis.kit.bus import GAP, EventBus, Subscription, create_bus
from jarvis.llm.providers import Providers
from jarvis.orchestration import service
from jarvis.orchestration.engine import Engine
from jarvis.orchestration.events import EVENTS_CHANNEL
from jarvis.orchestration.lifecycle import (
    AWAITING_PERSON,
    FINAL,
    PAUSE_EVENT,
    TERMINAL_EVENTS,
    ExecutionStatus,
    StepStatus,
)
from jarvis.orchestration.schemas import (
    MAX_COMMAND_CHARS,
    ExecutionCreate,
    ExecutionOut,
    StepOut,
)
from jarvis.settings import SettingsError
from jarvis.wiring import config_service

CLI_ACTOR = Actor.system("cli")
MAX_ID = 2**31 - 1
EXIT_AWAITING_APPROVAL = 3
EXIT_INVALID = 2
# The exit code each status the run stops in leaves the command with: 0 completed, 3 when
# a person must decide, 1 for the other final statuses (and anything unexpected).
EXIT_CODES: dict[str, int] = {
    **{status: 1 for status in FINAL},
    ExecutionStatus.COMPLETED: 0,
    **{status: EXIT_AWAITING_APPROVAL for status in AWAITING_PERSON},
}
STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "awaiting_approval": "yellow",
    "skipped": "dim",
    "failed": "red",
    "cancelled": "red",
    "rejected": "red",
    "queued": "dim",
}
NOTE_CHARS = 90
# The events after which an execution's run publishes nothing more.
LAST_EVENTS = frozenset({PAUSE_EVENT, *TERMINAL_EVENTS})
# How long to wait for the events still on their way once the engine has returned.
DRAIN_SECONDS = 2.0

As = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="EMAIL",
        help="Act as this user (recorded as the creator or decider; default: system actor cli)",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the execution as JSON (as the API)")]


# --- running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """What an in-process run needs: the database, configuration and the event bus."""

    db: Database
    config: ConfigService
    bus: EventBus


@asynccontextmanager
async def runtime() -> AsyncIterator[Runtime]:
    """The configured database (schema at head), ConfigService and bus, for one command."""
    async with existing_database() as db:
        # With JARVIS_REDIS_URL the events also reach the servers' WebSocket clients.
        bus = create_bus(settings().redis_url)
        config = config_service(db, bus=bus, poll_seconds=0)
        try:
            async with unit_of_work(db) as session:
                await ensure_builtin_registry(session)
            yield Runtime(db, config, bus)
        finally:
            await bus.close()


async def resolve_actor(session: AsyncSession, email: str | None) -> tuple[Actor, str | None]:
    """The system actor ``cli``, or the active user named by ``--as`` (and their persona)."""
    if email is None:
        return CLI_ACTOR, None
    user = await get_user_by_email(session, email)
    if user is None:
        raise NotFound(f"no user with the e-mail '{email.strip().lower()}'")
    if not user.is_active:
        raise Forbidden(f"the user '{user.email}' is deactivated")
    return user_actor(user), user.persona


def _short(text: str | None, limit: int = NOTE_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class _StepLine:
    name: str
    status: str = "running"
    attempt: int = 1
    duration_ms: int | None = None
    note: str = ""


@dataclass
class LayerProgress:
    """The execution's layers as the events describe them; rendered live or as lines."""

    execution_id: str
    layers: dict[str, dict[int, _StepLine]] = field(default_factory=dict)
    layer_status: dict[str, str] = field(default_factory=dict)
    plan: dict[str, Any] | None = None

    def apply(self, event: dict[str, Any]) -> str | None:
        """Take one event in; the line that describes it (None: nothing worth a line)."""
        kind = event.get("type", "")
        layer = str(event.get("layer") or "")
        step_id = event.get("stepId")
        name = str(event.get("agentName") or "")
        if kind == "layer_started":
            self.layer_status[layer] = "running"
            self.layers.setdefault(layer, {})
            return f"[bold]{escape(layer)}[/] layer: {event.get('agents', 0)} agent(s)"
        if kind == "execution_resumed":
            done = int(event.get("layersDone") or 0)
            where = LAYER_ORDER[done].value if done < len(LAYER_ORDER) else "last"
            return f"resumed at the [bold]{escape(where)}[/] layer"
        if kind == "layer_completed":
            self.layer_status[layer] = str(event.get("status", "completed"))
            if isinstance(event.get("plan"), dict):
                self.plan = event["plan"]
                return f"  plan: {escape(describe_plan(self.plan))}"
            return None
        if not isinstance(step_id, int):
            if kind == "awaiting_approval":
                self.layer_status[layer] = "awaiting_approval"
            return None
        steps = self.layers.setdefault(layer, {})
        line = steps.setdefault(step_id, _StepLine(name))
        line.attempt = int(event.get("attempt") or line.attempt)
        if kind == "step_started":
            line.status = "running"
            return None
        if kind == "step_skipped":
            line.status, line.note = "skipped", _short(event.get("reason"))
        elif kind == "step_completed":
            line.status = str(event.get("status", "completed"))
            line.duration_ms = event.get("durationMs")
            line.note = _short(_preview_note(event.get("outputPreview")))
        elif kind == "step_failed":
            retry = event.get("willRetry")
            line.status = "retrying" if retry else "failed"
            line.duration_ms = event.get("durationMs", line.duration_ms)
            wait = f" (retry in {event.get('retryInSeconds')} s)" if retry else ""
            line.note = _short(f"{event.get('error')}{wait}")
        elif kind == "step_cancelled":
            line.status = "cancelled"
        elif kind in ("step_approved", "step_rejected"):
            line.status = "completed" if kind == "step_approved" else "rejected"
            line.note = _short(f"{kind[5:]} by {event.get('decidedBy')}")
        else:
            return None
        return _line_text(line)

    def table(self) -> Table:
        table = _steps_table("Layers")
        for layer in LAYER_ORDER:
            steps = self.layers.get(layer.value)
            if steps is None:
                continue
            for index, line in enumerate(steps.values()):
                table.add_row(
                    Text(layer.value if index == 0 else ""),
                    Text(line.name),
                    _status_text(line.status),
                    str(line.attempt),
                    _ms(line.duration_ms),
                    Text(line.note),
                    end_section=index == len(steps) - 1,
                )
        return table


def _preview_note(preview: Any) -> str:
    """An event's output preview, summarised when it is a whole JSON object."""
    if not isinstance(preview, str):
        return ""
    try:
        output = json.loads(preview)
    except ValueError:
        return "" if preview.startswith("{") else preview  # cut-off JSON says nothing
    return summarize_output(output) if isinstance(output, dict) else preview


def _line_text(line: _StepLine) -> str:
    duration = f" {_ms(line.duration_ms)}" if line.duration_ms is not None else ""
    retries = f" attempt {line.attempt}" if line.attempt > 1 else ""
    note = f": {escape(line.note)}" if line.note and line.status != "completed" else ""
    style = STATUS_STYLE.get(line.status, "")
    return f"  {escape(line.name)} [{style}]{line.status}[/]{retries}{duration}{note}"


def _ms(value: int | None) -> str:
    return "" if value is None else f"{value} ms"


def _status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _steps_table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("Layer", "Agent", "Status", "Attempt", "Duration"):
        table.add_column(column, no_wrap=column != "Agent")
    table.add_column("Output / reason", overflow="fold")
    return table


def describe_plan(plan: dict[str, Any] | None) -> str:
    """``intent submission_review (confidence 0.86, decided by Intent Router)``."""
    if not plan:
        return "no plan (the Meta Brain layer has not run)"
    intent = plan.get("intent")
    if not intent:
        return "no intent decided: Process and System agents without intents run"
    parts = []
    if isinstance(plan.get("confidence"), int | float):
        parts.append(f"confidence {plan['confidence']:.2f}")
    decided = plan.get("decidedBy")
    if isinstance(decided, dict) and decided.get("name"):
        parts.append(f"decided by {decided['name']}")
    return f"intent {intent}" + (f" ({', '.join(parts)})" if parts else "")


async def _next_event(subscription: Subscription, engine_task: asyncio.Future[str]) -> Any:
    """The next bus message; once the engine has finished, what is still on its way (None
    when nothing more comes within ``DRAIN_SECONDS``)."""
    if engine_task.done():
        try:
            return await asyncio.wait_for(subscription.get(), DRAIN_SECONDS)
        except TimeoutError:
            return None
    getter: asyncio.Future[Any] = asyncio.ensure_future(subscription.get())
    waiting: set[asyncio.Future[Any]] = {getter, engine_task}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    return await _next_event(subscription, engine_task)


async def run_live(rt: Runtime, execution_id: str, *, show: bool) -> str:
    """Run (or resume) a queued execution in this process, showing its layers' progress;
    return the status it is left in."""
    engine = Engine(rt.db, rt.config, rt.bus, providers=Providers.from_settings(settings()))
    await engine.start()
    progress = LayerProgress(execution_id)
    task: asyncio.Future[str] | None = None
    try:
        # Subscribed before the run starts, so no event is missed.
        async with rt.bus.subscribe(EVENTS_CHANNEL) as subscription:
            task = asyncio.ensure_future(engine.run(execution_id))
            live = (
                Live(progress.table(), console=console, auto_refresh=False)
                if show and console.is_terminal
                else None
            )
            with live or contextlib.nullcontext():
                # Until the event that ends (or pauses) the run: events are published
                # after their commit, so some may still be on their way when run() returns.
                while (message := await _next_event(subscription, task)) is not None:
                    if message is GAP or not isinstance(message, dict):
                        continue
                    if message.get("executionId") != execution_id:
                        continue
                    line = progress.apply(message)
                    if live is not None:
                        live.update(progress.table(), refresh=True)
                    elif show and line is not None:
                        console.print(line, highlight=False)
                    if message.get("type") in LAST_EVENTS:
                        break
            return await task
    finally:
        if task is not None and not task.done():
            # Interrupted (Ctrl-C): the engine hands the execution back as queued, so a
            # server's dispatcher (or `jarvis executions approve`) can resume it later.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await engine.close()


# --- showing an execution -----------------------------------------------------------------


async def execution_document(session: AsyncSession, execution_id: str) -> ExecutionOut:
    """The execution as ``GET /api/agent-executions/{id}`` answers it."""
    return await service.execution_detail(session, execution_id)


def print_json(document: ExecutionOut) -> None:
    typer.echo(json.dumps(document.model_dump(mode="json", by_alias=True), ensure_ascii=False))


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def summarize_output(output: dict[str, Any] | None) -> str:
    """One line for an agent's output, by what its kind returns (text, extracted values,
    a rule outcome, a label, an agent status summary), else its JSON."""
    if not output:
        return ""
    if isinstance(output.get("text"), str):
        return str(output["text"])
    if isinstance(output.get("summary"), str):
        return str(output["summary"])
    if "outcome" in output and "ruleSet" in output:
        return (
            f"{_json(output['outcome'])} ({output.get('reasonCode')}; "
            f"{output['ruleSet']} v{output.get('version')})"
        )
    if isinstance(output.get("values"), dict):
        found = [f"{k} {_json(v)}" for k, v in output["values"].items() if v is not None]
        missing = output.get("missing") or []
        text = "; ".join(found) or "nothing found"
        return text + (f" | missing: {', '.join(map(str, missing))}" if missing else "")
    if "confidence" in output and "scores" in output:
        labels = [(k, v) for k, v in output.items() if k not in ("confidence", "scores")]
        if len(labels) == 1:
            key, label = labels[0]
            return f"{key} {label} ({output['confidence']:.2f})"
    return json.dumps(output, ensure_ascii=False)


def _step_note(step: StepOut) -> str:
    return step.error or summarize_output(step.output)


def steps_table(document: ExecutionOut) -> Table:
    """The steps grouped by layer, in execution order."""
    table = _steps_table("Steps by layer")
    for group in document.layers:
        for index, step in enumerate(group.steps):
            decided = f" ({step.decided_by}: {step.decision_comment})" if step.decided_by else ""
            table.add_row(
                Text(group.layer if index == 0 else ""),
                Text(step.agent_name),
                _status_text(step.status),
                str(step.attempt),
                _ms(step.duration_ms),
                Text(_short(_step_note(step)) + _short(decided)),
                end_section=index == len(group.steps) - 1,
            )
    return table


def print_outcome(document: ExecutionOut, *, with_steps: bool) -> None:
    """The steps (optionally), the plan, the answer (or what awaits approval) and the final
    status."""
    if with_steps:
        console.print(steps_table(document))
    console.print(f"Plan: {escape(describe_plan(document.plan))}", highlight=False)
    execution_id = document.execution_id
    status = document.status
    response = (document.result or {}).get("response")
    # Answers print as plain text, not in a box: e-mail drafts are meant to be copied.
    if status == ExecutionStatus.COMPLETED:
        console.rule("Response", align="left")
        console.print(Text(response or "(no agent produced a text answer)"))
        console.rule()
    elif status in AWAITING_PERSON:
        for step in document.steps:
            if step.status == StepStatus.AWAITING_APPROVAL:
                console.rule(f"Proposed by {escape(step.agent_name)}", align="left")
                console.print(Text(_step_note(step)))
        console.rule()
    duration = f" in {document.duration_ms} ms" if document.duration_ms is not None else ""
    style = STATUS_STYLE.get(status, "")
    console.print(f"Execution {execution_id}: [{style}]{status}[/]{duration}", highlight=False)
    if status in AWAITING_PERSON:
        console.print(
            "Awaiting a human decision. Approve with "
            f"[bold]jarvis executions approve {execution_id}[/] (or reject with "
            f"[bold]jarvis executions reject {execution_id}[/]), or through the API: "
            f"POST /api/agent-executions/{execution_id}/approve",
            highlight=False,
        )
    elif document.error:
        console.print(f"Error: {escape(document.error)}", highlight=False)


def exit_code(status: str) -> int:
    return EXIT_CODES.get(status, 1)


async def finish(rt: Runtime, execution_id: str, *, as_json: bool, with_steps: bool) -> int:
    """Print the execution as it stands and return the exit code its status calls for."""
    async with unit_of_work(rt.db, write=False) as session:
        document = await execution_document(session, execution_id)
    if as_json:
        print_json(document)
    else:
        print_outcome(document, with_steps=with_steps)
    return exit_code(document.status)


def invalid(message: str) -> NoReturn:
    """Bad input: a message and exit code 2, like Typer's own usage errors."""
    fail(message, EXIT_INVALID)


# The services' field names and the options of `jarvis run` that carry them.
RUN_OPTIONS = {"persona": "--persona", "workflowId": "--workflow-id", "command": "COMMAND"}


def execute(body: Any) -> int:
    """Run an async command body returning an exit code; domain errors exit cleanly,
    worded with the command's options."""
    try:
        code: int = asyncio.run(body())
    except ValidationFailed as exc:
        invalid(worded(exc, RUN_OPTIONS))
    except JarvisError as exc:
        fail(worded(exc, RUN_OPTIONS))
    except SettingsError as exc:
        fail(str(exc))
    return code


# --- the command ------------------------------------------------------------------------


def run_command(
    command: Annotated[str, typer.Argument(help="What to do, in your words (or a pasted e-mail)")],
    persona: Annotated[str, typer.Option(help="The persona it runs as, e.g. underwriter")],
    workflow_id: Annotated[
        int | None, typer.Option(min=1, max=MAX_ID, help="Workflow (its settings apply)")
    ] = None,
    as_user: As = None,
    as_json: Json = False,
) -> None:
    """Run a command through the six layers here and now, showing each layer's progress.

    Exits 0 when completed, 3 when an agent's output awaits approval, 1 when the execution
    failed, was cancelled or rejected, 2 for invalid input.
    """
    if not command.strip():
        invalid("the command is empty; say what to do, e.g. jarvis run 'Review ...'")
    if len(command) > MAX_COMMAND_CHARS:
        invalid(f"the command is longer than {MAX_COMMAND_CHARS} characters")

    async def body() -> int:
        async with runtime() as rt:
            async with unit_of_work(rt.db) as session:
                actor, own = await resolve_actor(session, as_user)
                if own is not None and own not in (persona, ADMIN_PERSONA_KEY):
                    raise Forbidden(
                        f"{actor.label} acts as '{own}' and cannot run commands as "
                        f"'{persona}'; only admins may act as another persona"
                    )
                execution = await service.create_execution(
                    session,
                    ExecutionCreate(command=command, persona=persona, workflow_id=workflow_id),
                    actor=actor,
                    bus=rt.bus,
                    source="cli",
                )
                execution_id = execution.execution_id
            if not as_json:
                console.print(
                    f"Execution {execution_id} ({escape(persona)}): {escape(_short(command))}",
                    highlight=False,
                )
            await run_live(rt, execution_id, show=not as_json)
            return await finish(rt, execution_id, as_json=as_json, with_steps=False)

    raise typer.Exit(execute(body))
