"""One drill: inject, follow the daemon through the journal, judge, record, page if failed.

The drill never acts itself beyond the fault: the daemon that guards the target
(on the same journal) must detect it, act and verify, exactly as on a bad day.
The drill follows that through the journal (the incidents opened after the fault,
their steps and events), which works the same on SQLite and PostgreSQL and needs
no API token. A drill passes when an incident opened (detected), a step of its
plan succeeded (acted) and it ended `resolved` (verified), within the timeout. The
incident says at once that it follows a drill's fault (a `drill_fault` event), so the
person its page reached reads on the web page that it is a rehearsal.

Results are stored without a new table (no migration beside the shadow table's):
as a `drill` event on the incident the fault caused (the data is the result), and
as the flag `drill:<name>` holding the latest result as JSON, which is what
"when did this drill last pass" needs. A failed drill opens its own incident
(`drill/<name>`, at the policy's `drills.page_severity`, P2 by default, state
`escalated`) so it is paged through the normal outbox path by the policy's routes,
and stays open until a person closes it. A drill failing again while that incident is
open adds an event to it and pages no one again: a staging stack drilled every hour must
not page every hour for the one fault a person already holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from watchdog.model import Severity
from watchdog.policy.drillspecs import DrillSpec
from watchdog.store.journal import Journal

FLAG = "drill:"
FAILED_SCENARIO = "drill_failed"
FINAL = ("resolved", "closed", "escalated", "failed")
PROGRESS_EVERY = 5.0  # seconds between "waiting" lines while nothing else happens


@dataclass(frozen=True, slots=True)
class DrillResult:
    name: str
    target: str
    fault: str
    injected: str
    started: float
    incident: int | None = None
    detected: bool = False
    acted: bool = False
    verified: bool = False
    detect_seconds: float | None = None
    recover_seconds: float | None = None
    state: str = "not detected"
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.detected and self.acted and self.verified

    @property
    def outcome(self) -> str:
        return "passed" if self.passed else "failed"

    def data(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}


def run_drill(
    name: str,
    spec: DrillSpec,
    inject: Callable[[DrillSpec], str],
    journal: Journal,
    *,
    target: str,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    progress: Callable[[str], None],
) -> DrillResult:
    """Inject `spec`'s fault and wait (at most `timeout`) for the daemon to resolve it."""
    newest = journal.list_incidents(limit=1)
    known = newest[0].id if newest else 0
    started = clock()
    try:
        injected = inject(spec)
    except Exception as error:  # a drill whose fault cannot be injected has failed
        progress(f"  +  0.0 s  not injected: {error}")
        return DrillResult(name, target, spec.fault, f"not injected: {error}", started,
                           state="not injected",
                           reason=f"the fault could not be injected: {error}")
    progress(f"  +  0.0 s  injected: {injected}")
    deadline = started + timeout
    seen: dict[int, int] = {}
    said = started
    result = DrillResult(name, target, spec.fault, injected, started)
    while True:
        ours = [i for i in journal.list_incidents(limit=20)
                if i.id > known and not i.key.startswith("drill/")]
        if ours:
            incident = min(ours, key=lambda i: i.id)
            if result.incident is None:
                progress(f"  +{incident.opened_at - started:5.1f} s  detected: incident "
                         f"{incident.id} {incident.severity.value} {incident.scenario}")
                # Said on the incident at once: whoever its page reached reads it is a drill.
                journal.add_event(incident.id, at=clock(), kind="drill_fault",
                                  summary=f"a drill: this follows drill {name}'s fault "
                                  f"({injected}); the drill waits for it to be resolved")
            timeline = journal.timeline(incident.id)  # once: a second read could skip one
            for event in timeline[seen.get(incident.id, 0):]:
                progress(f"  +{event.at - started:5.1f} s  {event.kind}: {event.summary}")
            seen[incident.id] = len(timeline)
            acted = any(s.status == "succeeded" for s in journal.steps(incident.id))
            closed = incident.closed_at is not None or incident.state in FINAL
            result = DrillResult(
                name, target, spec.fault, injected, started, incident.id, True, acted,
                incident.state == "resolved" and acted,
                incident.opened_at - started,
                (incident.closed_at or clock()) - started
                if incident.state == "resolved" else None,
                incident.state,
            )
            if closed:
                break
        now = clock()
        if now >= deadline:
            break
        if now >= said + PROGRESS_EVERY:
            said = now
            progress(f"  +{now - started:5.1f} s  waiting ({result.state})")
        sleep(0.25)
    return _with_reason(result, timeout)


def _with_reason(result: DrillResult, timeout: float) -> DrillResult:
    if result.passed:
        why = "detected, acted and verified"
    elif not result.detected:
        why = f"no incident within {timeout:g} s of the fault"
    elif not result.acted:
        why = f"incident {result.incident} ran no step that succeeded ({result.state})"
    else:
        why = f"incident {result.incident} did not resolve within {timeout:g} s ({result.state})"
    return DrillResult(**{**asdict(result), "reason": why})


def record(journal: Journal, result: DrillResult, *, at: float) -> None:
    """The result as the incident's `drill` event and as the flag `drill:<name>`."""
    summary = f"drill {result.name} {result.outcome}: {result.reason}"
    if result.incident is not None:
        journal.add_event(result.incident, at=at, kind="drill", summary=summary,
                          data=result.data())
    journal.set_flag(FLAG + result.name, json.dumps(result.data(), sort_keys=True), at=at)


def last_result(journal: Journal, name: str) -> dict[str, Any] | None:
    """The latest recorded result of drill `name`, or None if it never ran."""
    raw = journal.get_flag(FLAG + name)
    return None if raw is None else dict(json.loads(raw))


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed drill's own incident, and whether it was opened now (then it is paged)."""

    incident: int
    new: bool


def open_failure(
    journal: Journal, result: DrillResult, severity: Severity, *, at: float
) -> Failure:
    """The failed drill's own incident, escalated to a human (the caller pages a new one)."""
    reason = f"drill {result.name} failed: {result.reason}"
    existing = journal.find_open(f"drill/{result.name}")
    if existing is not None:
        incident = existing.id
    else:
        incident = journal.open_incident(
            key=f"drill/{result.name}", severity=severity, scenario=FAILED_SCENARIO,
            subject=result.name, state="escalated", reason=reason, at=at, findings=[],
        )
    journal.add_event(incident, at=at, kind="drill", summary=reason, data=result.data())
    return Failure(incident, existing is None)


def report(
    result: DrillResult, failure: Failure | None = None, channels: list[str] | None = None
) -> str:
    """The one-page Markdown report of a drill; `channels` its page was queued to, if any."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    def yes(value: bool) -> str:
        return "yes" if value else "**no**"

    lines = [
        f"# Drill {result.name}: {result.outcome.upper()}",
        "",
        f"- Target: {result.target}",
        f"- Fault: {result.fault} ({result.injected})",
        f"- Incident: {result.incident if result.incident is not None else '-'}"
        f" (final state: {result.state})",
        "",
        "| Detected | Acted | Verified | Time to detect | Time to recover |",
        "|---|---|---|---|---|",
        f"| {yes(result.detected)} | {yes(result.acted)} | {yes(result.verified)} "
        f"| {seconds(result.detect_seconds)} | {seconds(result.recover_seconds)} |",
        "",
        f"Verdict: {result.reason}.",
    ]
    if failure is not None:
        how = "Escalated as" if failure.new else "Not paged again: still open as"
        lines += ["", f"{how} incident {failure.incident} "
                      f"(`watchdog explain {failure.incident}`)."]
    if channels is not None:
        lines.append(f"Paged through: {', '.join(channels)} (delivered by the daemon)."
                     if channels else "NOT paged: the policy routes it to no channel that "
                     "is configured here (see the daemon's channel_off log lines).")
    return "\n".join(lines) + "\n"
