"""Triage's decisions applied: open an incident, attach a finding, raise its severity.

Opening journals the incident with its findings, then makes its plan and lets
the core decide how it starts (`Incidents.plan`), the triage move and that
decision in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import structlog

from watchdog.engine.incidents import Incidents, View
from watchdog.policy import moves
from watchdog.policy.lifecycle import Lifecycle
from watchdog.policy.triage import Attach, Escalate, Open, TriageDecision, finding_id
from watchdog.store.records import MoveRecord

log = structlog.get_logger("watchdog.incidents")


def apply_triage(incidents: Incidents, decisions: Iterable[TriageDecision]) -> None:
    """Apply what triage decided, in order."""
    for decision in decisions:
        if isinstance(decision, Open):
            _open(incidents, decision)
        elif isinstance(decision, Escalate):
            _escalate(incidents, decision)
        else:
            _attach(incidents, decision)


def _open(incidents: Incidents, decision: Open) -> None:
    now = incidents.clock()
    first_breach = min(f.since for f in decision.findings)
    incident_id = incidents.journal.open_incident(
        key=decision.key,
        severity=decision.severity,
        scenario=decision.scenario,
        subject=decision.subject,
        state="detected",
        reason=decision.reason,
        at=now,
        findings=decision.findings,
    )
    view = View(
        incident_id,
        decision.key,
        decision.severity,
        decision.scenario,
        decision.subject,
        "detected",
        frozenset(finding_id(f) for f in decision.findings),
        frozenset(g for f in decision.findings for g in f.supersedes),
        first_breach,
        now,
    )
    incidents.views[decision.key] = view
    incidents.metrics.incidents_opened.labels(decision.severity.value, decision.scenario).inc()
    delay = max(0.0, now - first_breach)
    incidents.metrics.detection_delay.labels(decision.scenario).observe(delay)
    log.info(
        "incident_opened",
        incident=incident_id,
        key=decision.key,
        severity=decision.severity.value,
        scenario=decision.scenario,
        reason=decision.reason,
    )
    incidents.plan(view, decision.findings[0], trigger=moves.Move("triage", decision.reason))


def _attach(incidents: Incidents, decision: Attach) -> None:
    view = incidents.views[decision.key]
    incidents.journal.add_finding(view.id, decision.finding, incidents.clock())
    incidents.views[decision.key] = replace(
        view, finding_ids=view.finding_ids | {finding_id(decision.finding)}
    )


def _escalate(incidents: Incidents, decision: Escalate) -> None:
    """A rise in severity: the finding, the new severity and its page in one transaction."""
    view = incidents.views[decision.key]
    now = incidents.clock()
    compose = incidents.compose_escalation
    page = compose(view.id, view.severity, decision.severity) if compose is not None else None
    incidents.journal.commit_move(
        view.id,
        MoveRecord(
            at=now,
            findings=(decision.finding,),
            severity=(decision.severity, decision.scenario, decision.reason),
            pages=(page,) if page is not None else (),
        ),
    )
    if page is not None and incidents.on_page is not None:
        incidents.on_page(view.id, page)
    view = replace(
        view,
        severity=decision.severity,
        scenario=decision.scenario,
        finding_ids=view.finding_ids | {finding_id(decision.finding)},
    )
    incidents.views[decision.key] = view
    incidents.count_open()
    log.warning("incident_escalated", incident=view.id, reason=decision.reason)
    if Lifecycle(view.state).can("retriage"):
        why = f"re-planned after escalation to {decision.severity}"
        incidents.plan(view, decision.finding, trigger=moves.Move("retriage", why))
