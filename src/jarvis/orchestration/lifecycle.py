"""The execution lifecycle, in one place: statuses, the allowed moves, what derives from
them, for executions and for their steps.

Every other module asks this one: the store guards each status change with
``EXECUTION.sources(target)`` and raises ``IllegalTransition`` when the row was not in one
of them; the pages offer Cancel while ``CANCELLABLE``; the CLI's exit codes, the realtime
terminal event types and the dashboard's "active" counts derive from ``FINAL``.

::

    queued ──claim──> running ──pause──> awaiting_approval ──approve──> queued
      │                │  │ └─resume (lease lost)─┘ running      └──reject──> rejected
      │                │  └─hand back (shutdown)──> queued
      └──cancel──> cancelled <──cancel── running / awaiting_approval
                       running ──end──> completed | failed | cancelled
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from jarvis.core.lifecycle import Lifecycle


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    AWAITING_APPROVAL = "awaiting_approval"
    REJECTED = "rejected"


X = ExecutionStatus
EXECUTION: Final = Lifecycle(
    "execution",
    {
        # Claimed by an engine, or cancelled before any engine took it.
        X.QUEUED: {X.RUNNING, X.CANCELLED},
        # Resumed by another engine after its engine was lost (running again); paused for
        # a person; ended; or handed back as queued by an engine shutting down.
        X.RUNNING: {
            X.RUNNING,
            X.AWAITING_APPROVAL,
            X.COMPLETED,
            X.FAILED,
            X.CANCELLED,
            X.QUEUED,
        },
        # Approved (queued again, to run on), rejected, or cancelled while it waits.
        X.AWAITING_APPROVAL: {X.QUEUED, X.REJECTED, X.CANCELLED},
        X.COMPLETED: set(),
        X.FAILED: set(),
        X.CANCELLED: set(),
        X.REJECTED: set(),
    },
    initial={X.QUEUED},
)

S = StepStatus
STEP: Final = Lifecycle(
    "step",
    {
        # Started when its agent gets a slot; cancelled while it waits for one; failed
        # when the engines running it were lost too often.
        S.PENDING: {S.RUNNING, S.CANCELLED, S.FAILED},
        # A retry starts it again (running -> running).
        S.RUNNING: {S.RUNNING, S.COMPLETED, S.FAILED, S.AWAITING_APPROVAL, S.CANCELLED},
        # A person approves (completed) or rejects; cancelled with its execution.
        S.AWAITING_APPROVAL: {S.COMPLETED, S.REJECTED, S.CANCELLED},
        S.COMPLETED: set(),
        S.FAILED: set(),
        S.SKIPPED: set(),
        S.CANCELLED: set(),
        S.REJECTED: set(),
    },
    # A step is stored pending, or skipped (the plan leaves its agent out) with the reason.
    initial={S.PENDING, S.SKIPPED},
)

# --- derived sets -------------------------------------------------------------------------

# Ended: nothing changes any more.
FINAL: Final = EXECUTION.final
# Not ended, in the order a dashboard lists them.
ACTIVE: Final[tuple[ExecutionStatus, ...]] = tuple(s for s in EXECUTION.states if s not in FINAL)
# May still be cancelled (the API's, the pages' and the CLI's rule).
CANCELLABLE: Final = EXECUTION.sources(X.CANCELLED)
# Waiting for a person's decision.
AWAITING_PERSON: Final = frozenset({X.AWAITING_APPROVAL})
# May be run again as a new execution (POST .../retry).
RETRYABLE: Final = FINAL
# Steps whose outcome is decided.
STEP_SETTLED: Final = STEP.final
# Steps that count in an agent's figures (success rate, response time).
STEP_COUNTED: Final = frozenset({S.COMPLETED, S.FAILED})
# Steps a lost engine left unfinished: run again on resume.
STEP_UNFINISHED: Final = frozenset({S.PENDING, S.RUNNING})
# Steps that end with their execution when it is cancelled or rejected.
STEP_OPEN: Final = frozenset(s for s in STEP.states if s not in STEP.final)

# The event that says an execution ended in each final status; ``awaiting_approval`` pauses.
TERMINAL_EVENTS: Final[dict[str, ExecutionStatus]] = {f"execution_{s}": s for s in sorted(FINAL)}
PAUSE_EVENT: Final = "awaiting_approval"
