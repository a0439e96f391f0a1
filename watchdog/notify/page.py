"""What a page says, composed from the journal's records: pure, no I/O, no clock.

A page answers the questions of someone woken at night, in this order: what
was seen (findings with their evidence), how bad it is and why, what the
watchdog did or what waits for a human (who: role and quorum), what the plan
risks (the impact assessment), and how to approve or reject it (the web page
and the CLI command). Every vendor body is rendered from one `Page`, so the
channels never disagree about the facts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watchdog.model import Finding, Plan, Severity
from watchdog.policy.glance import glance
from watchdog.policy.schema import Responder
from watchdog.store.glancefacts import glance_facts
from watchdog.store.records import ApprovalRecord, EventRecord, IncidentRecord, StepRecord

EVENTS = ("trigger", "acknowledge", "resolve")
RECENT_EVENTS = 8
MAX_EVIDENCE = 5
MAX_FINDINGS = 50
MAX_LINE = 1000
"""Bounds that keep the largest page far below PagerDuty's 512 KB per event."""
DEDUP_MAX = 255
"""PagerDuty's limit on a dedup key (Opsgenie's alias allows 512): one key fits both."""


def dedup_key(key: str, limit: int = DEDUP_MAX) -> str:
    """`key` as a vendor dedup key; a key too long keeps a hash of the rest."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: limit - 17]}~{digest}"


def incident_dedup_key(stack: str, incident_id: int) -> str:
    """The key every vendor folds one incident's pages by: `<stack>/<incident id>`.

    Never the incident's fault key: two incidents of the same fault share that key,
    and a late resolve of the first would close the alert the second had raised.
    """
    return dedup_key(f"{stack}/{incident_id}")


@dataclass(frozen=True, slots=True)
class Page:
    """Everything one page says about one incident at one moment."""

    event: str
    incident_id: int
    key: str
    stack: str
    #: What the vendors fold this incident's pages by (see `incident_dedup_key`).
    dedup_key: str
    severity: Severity
    scenario: str
    subject: str
    state: str
    at: float
    why_now: str
    headline: str
    seen: tuple[str, ...]
    severity_why: str
    plan_title: str
    plan_steps: tuple[str, ...]
    done: tuple[str, ...]
    awaiting: str
    impact: tuple[str, ...]
    link: str
    approve_command: str
    reject_command: str
    approvals: tuple[str, ...] = ()
    recent: tuple[str, ...] = field(default=())
    #: The pre-rollback checklist's verdicts, one line each ("item: verdict: why").
    prechecks: tuple[str, ...] = field(default=())
    #: A by-hand plan prepared with this one: its command, then its steps.
    prepared: tuple[str, ...] = field(default=())
    #: The runbook's emergency contacts this page goes to (`notify.contacts`), and
    #: their Opsgenie responders, named besides the policy's own.
    contacts: tuple[str, ...] = field(default=())
    responders: tuple[Responder, ...] = field(default=())

    def sections(self) -> list[tuple[str, str]]:
        """The page as titled sections of plain text, in reading order."""
        how = f"{self.link}\n{self.approve_command}\n{self.reject_command}"
        sections = [("Next action", self.awaiting)] if self.awaiting else []
        sections += [
            ("What was seen", _lines(self.seen) or "no finding recorded"),
            (f"Severity {self.severity.value}", self.severity_why),
            ("What was done", _lines(self.done) or "nothing has run yet"),
        ]
        if self.plan_title:
            sections.append((f"Plan: {self.plan_title}", _lines(self.plan_steps) or "no steps"))
        if self.prepared:
            head, *steps = self.prepared
            sections.append(("Prepared plan", f"{head}\n{_lines(steps)}"))
        sections.append(("Impact", _lines(self.impact) or "none assessed"))
        if self.prechecks:
            sections.append(("Pre-rollback checklist", _lines(self.prechecks)))
        if self.approvals:
            sections.append(("Approvals so far", _lines(self.approvals)))
        if self.contacts:
            sections.append(("Contacts paged", ", ".join(self.contacts)))
        sections.append(("How to approve", how))
        return sections

    def text(self) -> str:
        """The whole page as plain text: the headline, why now, then each section."""
        parts = [self.headline, f"Why this page: {self.why_now}"]
        parts += [f"{title}:\n{body}" for title, body in self.sections()]
        return "\n\n".join(parts)

    def details(self) -> dict[str, Any]:
        """The page as a JSON object, for custom_details and the generic webhook."""
        return {
            "incident": self.incident_id,
            "key": self.key,
            "dedup_key": self.dedup_key,
            "stack": self.stack,
            "severity": self.severity.value,
            "severity_why": self.severity_why,
            "scenario": self.scenario,
            "subject": self.subject,
            "state": self.state,
            "why_now": self.why_now,
            "seen": list(self.seen),
            "plan": {"title": self.plan_title, "steps": list(self.plan_steps)},
            "done": list(self.done),
            "awaiting": self.awaiting,
            "impact": list(self.impact),
            "prechecks": list(self.prechecks),
            "prepared": list(self.prepared),
            "approvals": list(self.approvals),
            "contacts": list(self.contacts),
            "link": self.link,
            "approve": self.approve_command,
            "reject": self.reject_command,
            "timeline": list(self.recent),
        }


def compose_page(
    *,
    event: str,
    why_now: str,
    stack: str,
    incident: IncidentRecord,
    findings: Sequence[Finding],
    plan: Plan | None,
    steps: Sequence[StepRecord],
    approvals: Sequence[ApprovalRecord],
    timeline: Sequence[EventRecord],
    public_url: str,
    at: float,
    dedup_key: str | None = None,
    approval_expires: float | None = None,
    contacts: tuple[str, ...] = (),
    responders: tuple[Responder, ...] = (),
) -> Page:
    """The page for `event` (trigger, acknowledge or resolve) about `incident` as journaled.

    `dedup_key` defaults to the incident's own (`incident_dedup_key`); the outbox passes
    the key the incident was first paged with, so every page of one incident folds together.
    """
    if event not in EVENTS:
        raise ValueError(f"page event {event!r} is not one of {', '.join(EVENTS)}")
    link = f"{public_url.rstrip('/')}/ui/incidents/{incident.id}"
    facts = glance_facts(
        incident, findings, plan, steps, approvals, timeline, approval_expires=approval_expires
    )
    told = glance(facts, at)
    return Page(
        event=event,
        incident_id=incident.id,
        key=incident.key,
        stack=stack,
        dedup_key=dedup_key or incident_dedup_key(stack, incident.id),
        severity=incident.severity,
        scenario=incident.scenario,
        subject=incident.subject,
        state=incident.state,
        at=at,
        why_now=why_now,
        headline=headline(event, stack, incident, findings[0].headline if findings else ""),
        seen=seen(findings),
        severity_why=severity_reason(incident, timeline),
        plan_title=plan.title if plan is not None else "",
        plan_steps=tuple(
            f"{i + 1}. {s.name}: {s.action} [{s.risk.value}]"
            for i, s in enumerate(plan.steps if plan else ())
        ),
        done=tuple(
            f"{s.name} (attempt {s.attempt}): {s.status}"
            + (f": {_first_line(s.output)}" if s.output.strip() else "")
            for s in steps
        ),
        awaiting=told.needs if told.urgent else "",
        impact=plan.impact if plan is not None else (),
        prepared=plan.prepared if plan is not None else (),
        prechecks=tuple(c.line() for c in (plan.prechecks if plan is not None else ())),
        link=link,
        approve_command=f"watchdog approve {incident.id} --as NAME",
        reject_command=f"watchdog reject {incident.id} --as NAME",
        approvals=tuple(
            f"{a.person} ({a.role}) {a.decision}" + (f": {a.comment}" if a.comment else "")
            for a in approvals
        ),
        recent=tuple(f"{iso_utc(e.at)} {e.kind}: {e.summary}" for e in timeline[-RECENT_EVENTS:]),
        contacts=contacts,
        responders=responders,
    )


def headline(event: str, stack: str, incident: IncidentRecord, seen: str = "") -> str:
    """One line that fits a phone's lock screen: severity, stack, what was seen, state."""
    where = f" on {incident.subject}" if incident.subject else ""
    what = seen if seen else f"{incident.scenario}{where}"
    word = {"trigger": incident.state.replace("_", " "), "acknowledge": "acknowledged"}.get(
        event, "resolved"
    )
    return f"[{incident.severity.value}] {stack}: {what} ({word})"


def seen(findings: Sequence[Finding]) -> tuple[str, ...]:
    """The findings, one line each, the first fifty, and how many more there were."""
    lines = [describe_finding(f) for f in findings[:MAX_FINDINGS]]
    if len(findings) > MAX_FINDINGS:
        lines.append(f"(+{len(findings) - MAX_FINDINGS} more findings on the incident page)")
    return tuple(lines)


def describe_finding(finding: Finding) -> str:
    """A finding as one line: its rule and reason, then up to five pieces of evidence."""
    evidence = "; ".join(finding.evidence[:MAX_EVIDENCE])
    more = len(finding.evidence) - MAX_EVIDENCE
    tail = f" (+{more} more)" if more > 0 else ""
    line = f"{finding.severity.value} {finding.rule}: {finding.reason}" + (
        f" [evidence: {evidence}{tail}]" if evidence else ""
    )
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def severity_reason(incident: IncidentRecord, timeline: Sequence[EventRecord]) -> str:
    """Why the incident has its severity: the latest escalation, or the triage reason."""
    escalations = [e for e in timeline if e.kind == "escalated"]
    if escalations:
        return escalations[-1].summary
    return incident.reason


def iso_utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0]


def _lines(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)
