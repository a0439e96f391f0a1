"""When to put back what a scenario took out of use: a provider's way back in.

Disabling a failing provider stops the bleeding, but left alone it silently
costs every field that provider served best. When the policy says so (a
scenario's `reenable`), the daemon watches the provider after the incident
resolved and, once the policy's `healthy` checks have held for `healthy_for`
(by default the `clear_for` of the rule that fired), opens a follow-up incident
whose plan puts back exactly the rows the disable changed. This module decides
only *when*, from values: which resolved incidents still have their change in
place, the signal windows, and how long each has looked healthy so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.model import Finding, Severity
from watchdog.policy.durations import format_duration
from watchdog.policy.planner import render_checks
from watchdog.policy.schema import Policy, ReenableSpec
from watchdog.policy.triage import Open
from watchdog.policy.verify import assess
from watchdog.policy.windows import Windows

#: The group (and so the incident key prefix) of follow-up incidents.
GROUP = "reenable"


@dataclass(frozen=True, slots=True)
class Disabled:
    """A resolved incident whose change still stands, and the finding that opened it."""

    incident: int
    severity: Severity
    scenario: str
    subject: str
    resolved_at: float
    finding: Finding


@dataclass(frozen=True, slots=True)
class ReenableWatch:
    """One tick's verdicts: since when each change's cause has looked healthy, and what is due."""

    healthy_since: dict[int, float] = field(default_factory=dict)
    due: list[Open] = field(default_factory=list)


def watch_reenables(
    policy: Policy,
    disabled: Sequence[Disabled],
    windows: Windows,
    healthy_since: Mapping[int, float],
    now: float,
    max_age: float,
) -> ReenableWatch:
    """Which follow-ups to open now; a check that fails (or has no fresh data) restarts the hold."""
    watch = ReenableWatch()
    for change in disabled:
        spec = policy.scenarios[change.scenario].reenable
        if spec is None:
            continue
        words = {
            **change.finding.param_map(),
            "series": change.finding.series,
            "subject": change.subject,
            "incident": str(change.incident),
            "undoes": str(change.incident),
        }
        checks = render_checks(spec.healthy, words)
        verdict = assess(checks, windows, now, max_age)
        if not verdict.passed:
            continue
        since = max(healthy_since.get(change.incident, now), change.resolved_at)
        hold = healthy_for(policy, spec, change.finding.rule)
        if now - since < hold:
            watch.healthy_since[change.incident] = since
            continue
        reason = (
            f"{change.subject} healthy for {format_duration(now - since)} "
            f"(at least {format_duration(hold)}) since incident {change.incident} "
            f"resolved: {verdict.summary}; putting back what incident {change.incident} "
            "changed"
        )
        finding = Finding(
            rule=GROUP,
            signal=checks[0].signal,
            series=checks[0].series,
            severity=change.severity,
            scenario=spec.scenario,
            group=GROUP,
            subject=change.subject,
            since=since,
            reason=reason,
            evidence=tuple(r.reason for r in verdict.results),
            # `undoes`, not `incident`: the engine fills `{incident}` with the id of
            # the plan's own incident (the follow-up), under which it writes undo records.
            params=(*change.finding.params, ("undoes", str(change.incident))),
        )
        watch.due.append(
            Open(finding.key, change.severity, spec.scenario, change.subject, (finding,), reason)
        )
    return watch


def healthy_for(policy: Policy, spec: ReenableSpec, rule: str) -> float:
    """The policy's hold, or the `clear_for` of the rule that opened the incident."""
    if spec.healthy_for is not None:
        return spec.healthy_for
    return next((r.clear_for for r in policy.rules if r.name == rule), 0.0)
