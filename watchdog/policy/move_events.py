"""What can happen to an incident: the events the lifecycle core (`moves.decide`) answers.

Each is a plain value the engine builds from what it saw (a plan made, a
preflight answered, a plan finished, a checklist reading, the votes, a restart,
findings cleared); `moves` re-exports them so callers name one module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlanReady:
    """A plan was just made for the incident (opened, re-triaged or on a new rung).

    `refused`: why it must not start at all (an alert's label named a subject
    nobody knows): the incident pages instead, acting on nothing.
    """

    refused: str | None = None


@dataclass(frozen=True, slots=True)
class PreflightDone:
    """The read-only checks made before asking a human."""

    blocked: str | None


@dataclass(frozen=True, slots=True)
class PlanFinished:
    ok: bool
    reason: str
    #: The preflight refused: nothing was changed.
    blocked: str | None = None
    compensated: tuple[str, ...] = ()
    compensation_failed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Checklist:
    """One reading of the post-rollback checklist while verifying."""

    passed: bool
    summary: str
    started: float
    passing_since: float | None
    #: Since when a failing checklist has read exactly as it does now (None: passing).
    unchanged_since: float | None = None


@dataclass(frozen=True, slots=True)
class Vote:
    person: str
    role: str
    decision: str
    plan_digest: str
    at: float
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Votes:
    """The approvals journaled for the incident, and the digest of its plan as shown."""

    votes: tuple[Vote, ...]
    plan_digest: str


@dataclass(frozen=True, slots=True)
class Restarted:
    """The daemon started and found the incident open; what its steps say."""

    #: The step journaled as started and never finished, if any: (name, idempotent).
    in_flight: tuple[str, bool] | None = None
    #: The last finished step of the current rung failed: its name.
    failed_step: str | None = None
    #: The index of the first step of the current rung not yet finished.
    next_step: int = 0
    #: Whether fresh evidence of the fault has been read since the restart.
    evidence_fresh: bool = True
    #: How long the daemon has been up.
    uptime: float = 0.0


@dataclass(frozen=True, slots=True)
class FindingsCleared:
    """Every rule behind the incident has been seen clear since the daemon started."""


Event = (
    PlanReady | PreflightDone | PlanFinished | Checklist | Votes | Restarted | FindingsCleared
)
