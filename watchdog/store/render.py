"""The journal as text for the CLI: `watchdog incidents` and `watchdog explain`.

Pure functions from records to strings: no I/O, no clock (the table's "now" is
passed in). Times are shown in UTC so that two operators in two time zones read
the same timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from watchdog.model import Finding, Plan, Step
from watchdog.policy.glance import glance
from watchdog.store.glancefacts import glance_facts
from watchdog.store.records import ApprovalRecord, EventRecord, IncidentRecord, StepRecord

TABLE_COLUMNS = ("ID", "SEVERITY", "SCENARIO", "SUBJECT", "STATE", "OPENED", "AGE", "SEEN")
#: The longest headline a table row shows; `incidents show ID` has the whole of it.
SEEN_WIDTH = 72
NO_INCIDENTS = "no incidents"
_INDENT = "    "


def incidents_table(
    records: Sequence[IncidentRecord], now: float, seen: Mapping[int, str] | None = None
) -> str:
    """An aligned table of incidents, one per line, or an explicit "no incidents".

    `seen`: each incident's headline (its first finding's), clipped to SEEN_WIDTH.
    """
    if not records:
        return NO_INCIDENTS
    said = seen or {}
    rows = [TABLE_COLUMNS] + [
        (
            str(record.id),
            record.severity.value,
            record.scenario,
            record.subject or record.key,
            record.state if record.is_open else f"{record.state} (closed)",
            iso_utc(record.opened_at),
            age(now - record.opened_at),
            _clip(said.get(record.id, ""), SEEN_WIDTH),
        )
        for record in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def incident_report(
    record: IncidentRecord,
    *,
    events: Sequence[EventRecord],
    steps: Sequence[StepRecord],
    plan: Plan | None,
    findings: Sequence[Finding],
    approvals: Sequence[ApprovalRecord],
    now: float | None = None,
    approval_expires: float | None = None,
) -> str:
    """Everything the journal knows about one incident, with every reason spelled out.

    With `now`, it opens with the glance: what was seen, what was done, what is next.
    """
    lines = _header(record)
    if now is not None:
        facts = glance_facts(
            record, findings, plan, steps, approvals, events, approval_expires=approval_expires
        )
        told = glance(facts, now)
        lines[1:1] = [f"  seen:     {told.seen}", f"  done:     {told.did}",
                      f"  next:     {told.needs}"]
    lines += ["", f"Findings ({len(findings)})"]
    lines += [line for finding in findings for line in _finding(finding)] or ["  none"]
    lines += ["", *_plan(plan)]
    if approvals:
        lines += ["", f"Approvals ({len(approvals)})"]
        lines += [
            f"  {iso_utc(a.at)}  {a.person} ({a.role}) {a.decision}"
            + (f": {a.comment}" if a.comment else "")
            for a in approvals
        ]
    lines += ["", f"Timeline ({len(events)} events)"]
    lines += _timeline(record, events, steps)
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def iso_utc(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_utc(at: float) -> str:
    """HH:MM:SS.mmm in UTC."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"


def age(seconds: float) -> str:
    """A short duration: 42s, 5m03s, 2h07m, 3d04h."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _header(record: IncidentRecord) -> list[str]:
    closed = (
        f"{iso_utc(record.closed_at)} (after {age(record.closed_at - record.opened_at)})"
        if record.closed_at is not None
        else "open"
    )
    return [
        f"Incident {record.id}: {record.severity.value} {record.scenario}",
        f"  key:      {record.key}",
        f"  subject:  {record.subject}",
        f"  state:    {record.state}",
        f"  reason:   {record.reason}",
        f"  opened:   {iso_utc(record.opened_at)}",
        f"  updated:  {iso_utc(record.updated_at)}",
        f"  closed:   {closed}",
    ]


def _finding(finding: Finding) -> list[str]:
    series = f" [{finding.series}]" if finding.series else ""
    lines = [
        f"  - {finding.severity.value} {finding.rule} on {finding.signal}{series}, "
        f"since {iso_utc(finding.since)}: {finding.reason}"
    ]
    lines += [f"{_INDENT}evidence: {item}" for item in finding.evidence]
    if finding.params:
        lines.append(f"{_INDENT}params: {_pairs(finding.params)}")
    return lines


def plan_lines(plan: Plan | None) -> list[str]:
    """The plan as `incidents show` prints it: steps with risks, checklist, impact."""
    return _plan(plan)


def _plan(plan: Plan | None) -> list[str]:
    if plan is None:
        return ["Plan: none"]
    auth = plan.authorization
    who = f" by {auth.role}" if auth.role else ""
    quorum = f" (quorum {auth.quorum})" if auth.quorum else ""
    lines = [
        f"Plan: {plan.title}",
        f"  reason: {plan.reason}",
        f"  authorization: {auth.mode.value}{who}{quorum}: {auth.reason}",
        "  steps:",
    ]
    lines += [
        f"{_INDENT}{number}. {_step_line(step)}" for number, step in enumerate(plan.steps, start=1)
    ] or [f"{_INDENT}none"]
    if plan.checklist:
        lines.append(f"  verify for {plan.verify_for_seconds:g} s:")
        lines += [
            f"{_INDENT}- {check.description} ({check.signal} {check.measure} "
            f"{check.op} {check.threshold:g})"
            for check in plan.checklist
        ]
    if plan.impact:
        lines.append("  impact:")
        lines += [f"{_INDENT}- {line}" for line in plan.impact]
    if plan.prechecks:
        lines.append("  pre-rollback checklist:")
        lines += [f"{_INDENT}- {c.line()}" for c in plan.prechecks]
    if plan.prepared:
        head, *steps = plan.prepared
        lines += [f"  prepared plan: {head}", *(f"{_INDENT}{line}" for line in steps)]
    return lines


def _timeline(
    record: IncidentRecord, events: Sequence[EventRecord], steps: Sequence[StepRecord]
) -> list[str]:
    outputs = {step.id: step.output for step in steps}
    deltas = [f"+{event.at - record.opened_at:.3f}s" for event in events]
    delta_width = max(map(len, deltas), default=0)
    kind_width = max((len(event.kind) for event in events), default=0)
    lines: list[str] = []
    for event, delta in zip(events, deltas, strict=True):
        lines.append(
            f"  {clock_utc(event.at)} {delta.ljust(delta_width)} "
            f"{event.kind.ljust(kind_width)} {event.summary}".rstrip()
        )
        step_id = event.data.get("step_id")
        if event.kind.startswith("step_") and event.kind != "step_started":
            output = outputs.get(step_id, "") if isinstance(step_id, int) else ""
            lines += [f"{_INDENT}{_INDENT}| {line}".rstrip() for line in output.splitlines()]
    return lines


def _step_line(step: Step) -> str:
    return f"{step.name} [{step.risk.value}] {step.action} {_pairs(step.params)}".rstrip()


def _pairs(pairs: Sequence[tuple[str, Any]]) -> str:
    """Step parameters as a person reads them: `services=dlq-manager, rest-api`, not a tuple."""
    return " ".join(f"{name}={_value(value)}" for name, value in pairs)


def _value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ", ".join(_value(item) for item in value) or "(none)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)
