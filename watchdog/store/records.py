"""What the journal hands back: plain rows, read once and never written through.

These are the stored shape of the "three shapes for one thing" (STYLE-EXAMPLES.md):
the decision core works with `watchdog.model` values, the database with columns of
primitives, and reads return these records, converted explicitly at the store's
edge. Findings and plans come back as model values (see `codec`), because the core
acts on them again after a restart; everything else is history and stays a record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from watchdog.model import Finding, Plan, Risk, Severity
from watchdog.policy.followups import FollowupDue

STEP_STATUSES = ("started", "succeeded", "failed", "unknown", "skipped")
"""Every status a step row can have; 'started' is the write-ahead mark."""

FINISHED_STEP_STATUSES = STEP_STATUSES[1:]

DECISIONS = ("approve", "reject")

PAUSED_FLAG = "paused"
"""The journal flag `watchdog pause` sets to "1" (and `resume` to "0"): no automatic action."""

CLOSED_BY_HUMAN = "closed_by_human"
"""The timeline kind of a person ending an incident by hand (`Journal.close_by_human`)."""

DELIVERY_STATUSES = ("pending", "sent", "rejected", "dry_run")
"""An outbox row is 'pending' until a vendor accepts it ('sent') or refuses it for good;
a 'dry_run' row says what a daemon in dry-run would have paged, and is never sent."""

PAGE_ROW_STATUSES = ("pending", "dry_run")
"""What a page's rows are written as: to be sent, or only shown (dry run)."""


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One incident; it is open while `closed_at` is None."""

    id: int
    key: str
    severity: Severity
    scenario: str
    subject: str
    state: str
    reason: str
    opened_at: float
    updated_at: float
    closed_at: float | None
    #: The rung of the remediation ladder (0 the first plan, 1 after one `next_rung` ...).
    rung: int = 0

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One line of an incident's timeline, in the order it was journaled."""

    id: int
    incident_id: int
    at: float
    kind: str
    summary: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One attempt at one step of a plan, written before the step ran."""

    id: int
    incident_id: int
    index: int
    name: str
    action: str
    risk: Risk
    params: dict[str, Any]
    status: str
    attempt: int
    started_at: float
    finished_at: float | None
    output: str
    idempotent: bool
    #: The ladder rung whose plan this step belongs to; a resume continues only its own.
    rung: int = 0


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: int
    incident_id: int
    at: float
    person: str
    role: str
    decision: str
    comment: str
    #: The digest of the plan the person was shown: the approval authorises that plan only.
    plan_digest: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One stored version of a table's rows, identified by their checksum."""

    id: int
    table_name: str
    at: float
    checksum: str
    row_count: int
    rows: list[dict[str, Any]]
    #: Why this version is less than clean ("" if it is): a restore from it says so.
    caveat: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One page in the outbox: what to send to which channel, and how trying went.

    `body` is the vendor payload without its secrets (they are added at send time).
    `claimed_by` names the outbox that claimed the row to send it, until `claimed_until`
    (the caller's clock); a retry or rejection clears the claim, a sent row keeps its
    sender's name.
    """

    id: int
    incident_id: int
    channel: str
    event: str
    dedup_key: str
    body: dict[str, Any]
    status: str
    attempts: int
    created_at: float
    next_at: float
    finished_at: float | None
    last_error: str
    claimed_by: str | None = None
    claimed_until: float | None = None


class ClaimLost(ValueError):
    """An outbox row's outcome written by another than the live holder of its claim.

    A daemon whose claim ran out (paused, or too slow) and was taken by another gets
    this, naming both; it must not write the row: the new holder sends it again.
    """


@dataclass(frozen=True, slots=True)
class PageRows:
    """A page decided and composed but not yet written: the outbox rows of one page.

    `bodies` maps each channel to its vendor payload (no secret in it); `status` is
    'pending' (the worker sends them) or 'dry_run' (journaled to show, never sent).
    Written by `watchdog.store.sqlite.insert_page_rows`, alone (`enqueue_page`) or
    inside the transaction of the incident move that calls for the page.
    """

    event: str
    dedup_key: str
    bodies: dict[str, dict[str, Any]]
    reason: str
    status: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """A timeline entry written with a move."""

    kind: str
    summary: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MoveRecord:
    """Everything one lifecycle decision writes, committed together or not at all.

    The state changes in order (each "from → to: reason" on the timeline), the
    plan it made, the rung and scenario it climbed to, the budget and cooldown
    targets it charged, the steps it found interrupted (finished as 'unknown'),
    its events and its pages; with the move that makes the incident final, the
    follow-ups it owes (`watchdog.policy.followups`).
    """

    at: float
    states: tuple[tuple[str, str], ...] = ()
    closed: bool = False
    #: Findings attached with the move, and a rise in severity: (severity, scenario, why).
    findings: tuple[Finding, ...] = ()
    severity: tuple[Severity, str, str] | None = None
    plan: Plan | None = None
    climb: tuple[int, str] | None = None
    actions: tuple[str, ...] = ()
    unknown_steps: tuple[tuple[int, str], ...] = ()
    events: tuple[EventRow, ...] = ()
    pages: tuple[PageRows, ...] = ()
    followups: tuple[FollowupDue, ...] = ()
