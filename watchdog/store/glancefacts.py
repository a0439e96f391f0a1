"""The journaled records of one incident, as the values `policy.glance` judges.

Shared by the web page's overview and incident page, `watchdog incidents`, and
the page sent to pagers, so all of them say the same next action in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from watchdog.model import Finding, Plan
from watchdog.policy.authorize import counted_approvers
from watchdog.policy.glance import AWAITING, GlanceFacts, latest_steps
from watchdog.policy.planner import FULL_ROLLBACK
from watchdog.store.records import ApprovalRecord, EventRecord, IncidentRecord, StepRecord

if TYPE_CHECKING:  # the journal renders with this module: no import cycle at run time
    from watchdog.store.journal import Journal


def seen_of(findings: Sequence[Finding], fallback: str) -> str:
    """An incident's headline: its first finding's, or `fallback` (its reason) with none."""
    return findings[0].said() if findings else fallback


def glance_facts(
    record: IncidentRecord,
    findings: Sequence[Finding],
    plan: Plan | None,
    steps: Sequence[StepRecord],
    approvals: Sequence[ApprovalRecord],
    timeline: Sequence[EventRecord],
    *,
    approval_expires: float | None = None,
) -> GlanceFacts:
    role = plan.authorization.role if plan is not None else None
    moves = [e for e in timeline if e.kind == "state"]
    waiting = [e.at for e in moves if e.data.get("to") == AWAITING]
    escalated = [e.summary for e in moves if e.data.get("to") == "escalated"]
    rung = record.rung
    return GlanceFacts(
        incident_id=record.id,
        state=record.state,
        closed_at=record.closed_at,
        seen=seen_of(findings, record.reason),
        steps=latest_steps([(s.index, s.name, s.status) for s in steps if s.rung == rung]),
        plan_steps=len(plan.steps) if plan is not None else 0,
        role=role,
        quorum=plan.authorization.quorum if plan is not None else 1,
        approvers=counted_approvers(((a.person, a.role, a.decision) for a in approvals), role),
        waiting_since=waiting[-1] if waiting and record.state == AWAITING else None,
        approval_expires=approval_expires,
        escalation=escalated[-1] if escalated else "",
        runbook=plan.runbook if plan is not None else "",
        prepared=_by_hand(record, plan),
    )


#: The actions `watchdog rollback --service` runs by hand (commands/manual.py).
SERVICE_ACTIONS = ("service.restart", "service.start", "service.recover", "service.revert")


def _by_hand(record: IncidentRecord, plan: Plan | None) -> str:
    """The command a person taking over runs: the prepared plan's, or for a plan on one
    service, the runbook's rollback of that service by hand."""
    if plan is None:
        return ""
    if plan.prepared:
        return f"`{FULL_ROLLBACK}`"
    if record.subject and any(s.action in SERVICE_ACTIONS for s in plan.steps):
        to_good = " --to-last-good" if any(s.action == "service.revert" for s in plan.steps) else ""
        return f"`watchdog rollback --service {record.subject}{to_good} --policy POLICY`"
    return ""


def read_glance_facts(
    journal: Journal, record: IncidentRecord, *, approval_expires: float | None = None
) -> GlanceFacts:
    """The same, read from the journal."""
    number = record.id
    return glance_facts(
        record,
        journal.findings(number),
        journal.plan(number),
        journal.steps(number),
        journal.approvals(number),
        journal.timeline(number),
        approval_expires=approval_expires,
    )
