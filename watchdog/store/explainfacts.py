"""One incident's journal records as the facts `policy.explain` reasons over.

Shared by `watchdog explain` and the web page's "why", so both say the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.model import Finding, Plan
from watchdog.policy.explain import explain
from watchdog.policy.explainvalues import (
    ExplainFacts,
    Explanation,
    Happened,
    PolicyPlaces,
    StepRun,
)
from watchdog.policy.schema import Policy
from watchdog.store.journal import Journal
from watchdog.store.records import EventRecord, IncidentRecord, StepRecord


def explain_facts(
    record: IncidentRecord,
    *,
    findings: Sequence[Finding],
    plan: Plan | None,
    steps: Sequence[StepRecord],
    events: Sequence[EventRecord],
    policy: Policy | None = None,
    places: PolicyPlaces | None = None,
) -> ExplainFacts:
    """The facts of one incident from records already read (the web page has them)."""
    return ExplainFacts(
        incident_id=record.id,
        key=record.key,
        severity=record.severity,
        scenario=record.scenario,
        subject=record.subject,
        state=record.state,
        reason=record.reason,
        opened_at=record.opened_at,
        closed_at=record.closed_at,
        findings=tuple(findings),
        plan=plan,
        steps=tuple(
            StepRun(
                index=s.index, name=s.name, action=s.action, risk=s.risk.value,
                status=s.status, attempt=s.attempt, started_at=s.started_at,
                finished_at=s.finished_at, output=s.output, rung=s.rung,
            )
            for s in steps
        ),
        events=tuple(Happened(e.at, e.kind, e.summary, e.data) for e in events),
        rung=record.rung,
        policy=policy,
        places=places,
    )


def read_explain_facts(
    journal: Journal,
    incident_id: int,
    policy: Policy | None = None,
    places: PolicyPlaces | None = None,
) -> ExplainFacts:
    """The facts of incident `incident_id` (KeyError naming it when there is none)."""
    record = journal.incident(incident_id)
    return explain_facts(
        record,
        findings=journal.findings(incident_id),
        plan=journal.plan(incident_id),
        steps=journal.steps(incident_id),
        events=journal.timeline(incident_id),
        policy=policy,
        places=places,
    )


def read_explanation(
    journal: Journal,
    incident_id: int,
    policy: Policy | None = None,
    places: PolicyPlaces | None = None,
) -> Explanation:
    return explain(read_explain_facts(journal, incident_id, policy, places))
