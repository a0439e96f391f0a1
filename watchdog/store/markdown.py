"""The incident report as Markdown: what `watchdog report ID` writes and the web page links.

The runbook's 24-hour list asks for an incident report; this is its first draft,
built only from the journal: summary, impact, the timeline with the reason of
every decision, the evidence, each step with its duration and output, the
approvals, what was verified, time to detect and time to recover, and the
follow-ups with their owners. Pure (records in, text out, no clock), sharing the
time formats of `watchdog.store.render` so the report and `incidents show` agree.

Time to detect runs from the earliest evidence (a finding's `since`: when its
signal first breached) to the incident's opening; time to recover from the
opening to the verified resolve, or says when it escalated instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.model import Finding, Plan
from watchdog.store.followups import FollowupRecord
from watchdog.store.journal import Journal
from watchdog.store.records import ApprovalRecord, EventRecord, IncidentRecord, StepRecord
from watchdog.store.render import age, clock_utc, iso_utc

SECTIONS = (
    "Summary",
    "Impact",
    "Timeline",
    "Evidence",
    "Steps",
    "Approvals",
    "Verification",
    "Time to detect and recover",
    "Follow-ups",
)
"""Every section the report has, in order; each is present even when it has nothing."""


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the journal holds of one incident, read by the caller."""

    record: IncidentRecord
    events: Sequence[EventRecord]
    steps: Sequence[StepRecord]
    plan: Plan | None
    findings: Sequence[Finding]
    approvals: Sequence[ApprovalRecord]
    followups: Sequence[FollowupRecord]
    #: Role → the people file's persons who hold it (empty without a people file).
    holders: Mapping[str, Sequence[str]] = field(default_factory=dict)


def incident_markdown(facts: ReportFacts, *, now: float) -> str:
    """The report; `now` marks which open follow-ups are overdue."""
    r = facts.record
    parts = [
        f"# Incident {r.id}: {r.severity.value} {r.scenario}",
        _section("Summary", _summary(facts)),
        _section("Impact", _impact(facts.plan)),
        _section("Timeline", _timeline(facts)),
        _section("Evidence", _evidence(facts)),
        _section("Steps", _steps(facts.steps)),
        _section("Approvals", _approvals(facts.approvals)),
        _section("Verification", _verification(facts)),
        _section("Time to detect and recover", _times(facts)),
        _section("Follow-ups", followups_table(facts.followups, facts.holders, now=now)),
    ]
    return "\n\n".join(parts) + "\n"


def owner_words(role: str, holders: Mapping[str, Sequence[str]]) -> str:
    """The owner as shown everywhere: the role, and who holds it if the people file says."""
    people = holders.get(role, ())
    return f"{role} ({', '.join(people)})" if people else role


def followups_table(
    followups: Sequence[FollowupRecord], holders: Mapping[str, Sequence[str]], *, now: float
) -> list[str]:
    if not followups:
        return ["None owed: no step of this incident ran."]
    lines = ["| ID | Item | Owner | Due | Status |", "|---|---|---|---|---|"]
    for f in followups:
        if f.done_at is not None:
            status = f"done by {f.done_by} at {iso_utc(f.done_at)}"
        elif f.overdue(now):
            status = f"**OVERDUE** by {age(now - f.due_at)}"
        else:
            status = "open"
        lines.append(
            f"| {f.id} | {_cell(f.text)} | {_cell(owner_words(f.owner, holders))} | "
            f"{iso_utc(f.due_at)} | {status} |"
        )
    return lines


def _section(title: str, body: list[str]) -> str:
    return "\n".join([f"## {title}", "", *body])


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, no bare pipe."""
    return " ".join(text.split()).replace("|", "\\|")


def _summary(facts: ReportFacts) -> list[str]:
    r = facts.record
    closed = f"{iso_utc(r.closed_at)}" if r.closed_at is not None else "still open"
    plan = facts.plan.title if facts.plan is not None else "none"
    return [
        f"- **Subject:** {r.subject or r.key}",
        f"- **Severity / scenario:** {r.severity.value} / {r.scenario} (rung {r.rung})",
        f"- **Outcome:** {r.state}",
        f"- **Why it opened:** {r.reason}",
        f"- **Plan:** {plan}",
        f"- **Opened:** {iso_utc(r.opened_at)}; **ended:** {closed}",
    ]


def _impact(plan: Plan | None) -> list[str]:
    if plan is None:
        return ["No plan was made: nothing was changed on the stack."]
    auth = plan.authorization
    lines = [f"- {line}" for line in plan.impact] or ["- the plan states no impact"]
    return [
        *lines,
        f"- authorization: {auth.mode.value}{f' by {auth.role}' if auth.role else ''}: "
        f"{auth.reason}",
    ]


def _timeline(facts: ReportFacts) -> list[str]:
    if not facts.events:
        return ["No event journaled."]
    opened = facts.record.opened_at
    lines = ["| Time (UTC) | Since open | What | Why / detail |", "|---|---|---|---|"]
    lines += [
        f"| {clock_utc(e.at)} | +{e.at - opened:.3f}s | {e.kind} | {_cell(e.summary)} |"
        for e in facts.events
    ]
    return lines


def _evidence(facts: ReportFacts) -> list[str]:
    lines: list[str] = []
    for finding in facts.findings:
        series = f" [{finding.series}]" if finding.series else ""
        lines.append(
            f"- {finding.severity.value} **{finding.rule}** on {finding.signal}{series}, "
            f"since {iso_utc(finding.since)}: {finding.reason}"
        )
        lines += [f"  - {item}" for item in finding.evidence]
    for event in facts.events:
        if event.kind == "step_evidence":
            lines.append(f"- {event.summary}: `{_cell(str(event.data))}`")
    return lines or ["No finding journaled."]


def _steps(steps: Sequence[StepRecord]) -> list[str]:
    if not steps:
        return ["No step ran."]
    lines = [
        "| # | Step | Action | Risk | Attempt | Started (UTC) | Duration | Status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        took = f"{s.finished_at - s.started_at:.3f}s" if s.finished_at is not None else "unfinished"
        lines.append(
            f"| {s.index + 1} | {_cell(s.name)} | {s.action} | {s.risk.value} | {s.attempt} | "
            f"{iso_utc(s.started_at)} | {took} | {s.status} |"
        )
    for s in steps:
        if s.output.strip():
            fence = "````" if "```" in s.output else "```"
            heading = f"Output of step {s.index + 1} {s.name} (attempt {s.attempt}):"
            lines += ["", heading, "", fence]
            lines += [*s.output.rstrip().splitlines(), fence]
    return lines


def _approvals(approvals: Sequence[ApprovalRecord]) -> list[str]:
    if not approvals:
        return ["None needed or given."]
    return [
        f"- {iso_utc(a.at)} **{a.person}** ({a.role}) {a.decision}"
        + (f": {a.comment}" if a.comment else "")
        for a in approvals
    ]


def _verification(facts: ReportFacts) -> list[str]:
    plan = facts.plan
    lines: list[str] = []
    if plan is not None and plan.checklist:
        lines.append(f"Checklist, to hold for {plan.verify_for_seconds:g} s:")
        lines += [
            f"- {c.description} ({c.signal} {c.measure} {c.op} {c.threshold:g})"
            for c in plan.checklist
        ]
    readings = [e for e in facts.events if e.kind == "verification"]
    if readings:
        lines += ["", "Readings:"] if lines else ["Readings:"]
        lines += [f"- {clock_utc(e.at)} {e.summary}" for e in readings]
    verdict = _first_state(facts.events, "resolved")
    if verdict is not None:
        lines += ["", f"Verified: {verdict.summary}"]
    return lines or ["Nothing was verified."]


def _times(facts: ReportFacts) -> list[str]:
    r = facts.record
    first = min((f.since for f in facts.findings), default=None)
    detect = (
        f"{age(r.opened_at - first)} (first evidence {iso_utc(first)} → opened "
        f"{iso_utc(r.opened_at)})"
        if first is not None
        else "unknown: no finding journaled"
    )
    resolved = _first_state(facts.events, "resolved")
    escalated = _first_state(facts.events, "escalated")
    if resolved is not None:
        recover = (
            f"{age(resolved.at - r.opened_at)} (opened → verified at {iso_utc(resolved.at)})"
        )
    elif escalated is not None:
        recover = f"not recovered: escalated at {iso_utc(escalated.at)}"
        if r.closed_at is not None:
            recover += f"; closed at {iso_utc(r.closed_at)}"
    elif r.closed_at is not None:
        recover = f"not verified: {r.state} at {iso_utc(r.closed_at)}"
    else:
        recover = "not recovered yet: the incident is open"
    return [f"- **Time to detect:** {detect}", f"- **Time to recover:** {recover}"]


def _first_state(events: Sequence[EventRecord], state: str) -> EventRecord | None:
    return next(
        (e for e in events if e.kind == "state" and e.data.get("to") == state), None
    )


def read_facts(
    journal: Journal, incident_id: int, holders: Mapping[str, Sequence[str]] | None = None
) -> ReportFacts:
    """Everything the report needs, read from the journal (KeyError names a wrong id)."""
    record = journal.incident(incident_id)
    return ReportFacts(
        record=record,
        events=journal.timeline(incident_id),
        steps=journal.steps(incident_id),
        plan=journal.plan(incident_id),
        findings=journal.findings(incident_id),
        approvals=journal.approvals(incident_id),
        followups=journal.followups(include_done=True, incident_id=incident_id),
        holders=holders or {},
    )
