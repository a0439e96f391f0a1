"""Approving or rejecting a plan: the one rule set the API, the web page and the CLI share.

A decision is only written to the journal (`record_approval`, which also puts it
on the incident's timeline); the daemon's `Incidents._check_approvals` reads the
journal on its next tick and acts: the role the plan needs, distinct people
toward the quorum, a rejection escalates. This module refuses what could never
count, with the HTTP status each refusal maps to: no such incident (404), not
awaiting approval or already approved by this person (409), a person without the
role the plan needs (403), and a rejection without a comment (422).
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.metrics import Metrics
from watchdog.model import AuthMode
from watchdog.people import Person
from watchdog.policy import moves
from watchdog.policy.authorize import counted_approvers
from watchdog.store.codec import plan_digest
from watchdog.store.journal import Journal
from watchdog.store.records import IncidentRecord

AWAITING = "awaiting_approval"
#: An incident's state as a refusal says it to a person (the journal's names are for code).
STATE_WORDS = {
    "detected": "just detected",
    "triaged": "triaged, with no plan waiting",
    "approved": "already approved",
    "rejected": "rejected",
    "expired": "expired (nobody approved in time)",
    "executing": "running its plan",
    "verifying": "checking that its plan worked",
    "resolved": "resolved",
    "failed": "failed",
    "escalated": "escalated (a human has taken over)",
    "notified": "notified",
    "closed": "closed",
}
NO_REASON = "a rejection needs a comment saying why"
COMMENT_LIMIT = 2000
#: The largest row id the journal (SQLite INTEGER) can hold; anything above is no incident.
LARGEST_ID = 2**63 - 1


class Refused(Exception):
    """A decision that cannot be recorded, with the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Recorded:
    """A decision written to the journal, and where the vote stands after it."""

    incident_id: int
    person: str
    role: str
    decision: str
    approvers: tuple[str, ...]
    quorum: int

    def summary(self) -> str:
        verb = "approved" if self.decision == "approve" else "rejected"
        head = f"incident {self.incident_id}: {self.person} ({self.role}) {verb}"
        if self.decision == "reject":
            return f"{head}; the daemon escalates on its next tick: a human takes over"
        count = f"{len(self.approvers)} of {self.quorum} distinct {self.role} approvals"
        if len(self.approvers) >= self.quorum:
            return f"{head}; {count}: the daemon starts the plan on its next tick"
        return f"{head}; {count}: waiting for {self.quorum - len(self.approvers)} more"


def record_decision(
    journal: Journal,
    *,
    incident_id: int,
    person: Person,
    decision: str,
    comment: str,
    at: float,
    metrics: Metrics | None = None,
) -> Recorded:
    """Check that `person` may decide on the incident's plan now, then journal it."""
    if decision not in ("approve", "reject"):
        raise Refused(422, f"decision {decision!r}: expected approve or reject")
    if decision == "reject" and not comment.strip():
        raise Refused(422, NO_REASON)  # the same rule for the API, the web page and the CLI
    if len(comment) > COMMENT_LIMIT:
        raise Refused(422, f"comment: {len(comment)} characters, expected at most {COMMENT_LIMIT}")
    if not all(c.isprintable() or c in "\n\r\t" for c in comment):
        # Also refuses lone surrogates, which no UTF-8 journal could store.
        raise Refused(422, "comment: expected printable text, found control characters")
    try:
        record = find_incident(journal, incident_id)
    except KeyError:
        raise Refused(404, f"no incident {incident_id}") from None
    if not record.is_open or record.state != AWAITING:
        words = STATE_WORDS.get(record.state, record.state)
        closed = "" if record.is_open or record.state == "closed" else ", and closed"
        raise Refused(
            409, f"incident {incident_id} is {words}{closed}, not waiting for an approval"
        )
    plan = journal.plan(incident_id)
    needed = plan.authorization if plan is not None else None
    if plan is None or needed is None or needed.mode is not AuthMode.APPROVAL or not needed.role:
        raise Refused(409, f"incident {incident_id} has no plan that waits for an approval")
    if not person.has_role(needed.role):
        raise Refused(
            403,
            f"{person.name} ({', '.join(person.roles)}) may not decide on incident "
            f"{incident_id}: its plan needs a {needed.role} ({needed.reason})",
        )
    quorum = max(1, needed.quorum)
    # The votes the daemon counts: for this plan as shown, since approval was asked
    # (a restart that asks again, or a new plan, needs fresh ones: never refuse those).
    digest = plan_digest(plan)
    asked = moves.Incident(record.key, record.state, plan, entered_at=record.updated_at)
    counted = moves.counted_votes(
        asked,
        moves.Votes(
            tuple(
                moves.Vote(a.person, a.role, a.decision, a.plan_digest, a.at)
                for a in journal.approvals(incident_id)
            ),
            digest,
        ),
    )
    votes = [(v.person, v.role, v.decision) for v in counted]
    if decision == "approve" and person.name in counted_approvers(votes, needed.role):
        raise Refused(
            409,
            f"{person.name} has already approved incident {incident_id}: one person counts "
            f"once toward the quorum of {quorum} distinct {needed.role}",
        )
    journal.record_approval(
        incident_id,
        at=at,
        person=person.name,
        role=needed.role,
        decision=decision,
        comment=comment,
        plan_digest=digest,
    )
    if metrics is not None:
        metrics.approvals.labels(decision).inc()
    votes.append((person.name, needed.role, decision))
    approvers = counted_approvers(votes, needed.role)
    return Recorded(incident_id, person.name, needed.role, decision, approvers, quorum)


def find_incident(journal: Journal, incident_id: int) -> IncidentRecord:
    """The incident, or KeyError: also for ids no journal row could have."""
    if not 0 < incident_id <= LARGEST_ID:
        raise KeyError(f"no incident {incident_id}")
    return journal.incident(incident_id)


# ---- the CLI ---------------------------------------------------------------------
