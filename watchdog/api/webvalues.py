"""What the web page shows of the journal: an incident's values, its glance, its rollback.

Kept apart from the routes (web.py) so each file has one job: these read the
journal and arrange values for the templates; they decide nothing.
"""

from __future__ import annotations

from typing import Any

from watchdog.engine.approvals import AWAITING, find_incident
from watchdog.policy.explain import explain
from watchdog.policy.explainvalues import PolicyPlaces
from watchdog.policy.glance import Glance, glance
from watchdog.policy.schema import Policy
from watchdog.store.explainfacts import explain_facts
from watchdog.store.glancefacts import glance_facts, read_glance_facts
from watchdog.store.journal import Journal
from watchdog.store.records import IncidentRecord, StepRecord

RUNNING_STATES = ("approved", "executing", "verifying")
REFRESH_SECONDS = 1


def glance_of(
    journal: Journal, record: IncidentRecord, now: float, approval_expires: float | None
) -> Glance:
    """What was seen, what the watchdog did, what it needs from you."""
    return glance(read_glance_facts(journal, record, approval_expires=approval_expires), now)


def incident_summary(journal: Journal, record: IncidentRecord) -> dict[str, Any]:
    """An incident awaiting approval: its plan, who must agree, and who has."""
    plan = journal.plan(record.id)
    approvals = journal.approvals(record.id)
    role = plan.authorization.role if plan is not None else None
    approvers = sorted({a.person for a in approvals if a.decision == "approve" and a.role == role})
    quorum = max(1, plan.authorization.quorum) if plan is not None else 1
    return {"record": record, "plan": plan, "approvers": approvers, "quorum": quorum, "role": role}


def rollback_summary(record: IncidentRecord, steps: list[StepRecord]) -> dict[str, Any] | None:
    """A plan that ran (or runs): its outcome and how long its steps took."""
    if not steps:
        return None
    finished = [s.finished_at for s in steps if s.finished_at is not None]
    running = any(s.status == "started" for s in steps) or record.is_open
    outcome = "running" if running else record.state
    end = record.closed_at if record.closed_at is not None else max(finished, default=None)
    return {
        "record": record,
        "outcome": outcome,
        "steps": steps,
        "failed": [s for s in steps if s.status in ("failed", "unknown")],
        "steps_seconds": (max(finished) - steps[0].started_at) if finished else None,
        "recovered_seconds": (end - record.opened_at) if end is not None and not running else None,
    }


#: A shadow policy's decision on an incident's key is shown on its page from this long
#: before it opened (a shadow that would have opened earlier) until it closed.
SHADOW_LEAD_SECONDS = 60.0


def incident_values(
    journal: Journal,
    incident_id: int,
    now: float,
    approval_expires: float | None = None,
    policy: Policy | None = None,
    places: PolicyPlaces | None = None,
) -> dict[str, Any]:
    """The incident page's values; `why` is `watchdog explain`'s explanation of it."""
    record = find_incident(journal, incident_id)
    steps = journal.steps(incident_id)
    plan = journal.plan(incident_id)
    latest = {s.index: s for s in steps}
    pending = incident_summary(journal, record) if record.state == AWAITING else None
    # Refresh while a plan runs, and once the last needed approval is in (the daemon
    # starts the plan on its next tick), but never under someone typing a comment.
    decided = pending is not None and len(pending["approvers"]) >= pending["quorum"]
    running = record.is_open and (record.state in RUNNING_STATES or decided)
    findings = journal.findings(incident_id)
    approvals = journal.approvals(incident_id)
    events = journal.timeline(incident_id)
    facts = glance_facts(
        record, findings, plan, steps, approvals, events, approval_expires=approval_expires
    )
    return {
        "record": record,
        "findings": findings,
        "plan": plan,
        "runs": [latest.get(index) for index in range(len(plan.steps))] if plan else [],
        "steps": steps,
        "approvals": approvals,
        "events": events,
        "pending": pending,
        "refresh": REFRESH_SECONDS if running else 0,
        "rollback": rollback_summary(record, steps),
        "glance": glance(facts, now),
        "why": explain(explain_facts(record, findings=findings, plan=plan, steps=steps,
                                     events=events, policy=policy, places=places)),
        "shadow": [
            d for d in journal.shadow_decisions(limit=200)
            if d.key == record.key
            and record.opened_at - SHADOW_LEAD_SECONDS <= d.at <= (record.closed_at or now)
        ],
    }
