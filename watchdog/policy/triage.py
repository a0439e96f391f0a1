"""Triage: active findings and open incidents in, what to open or escalate out.

One open incident per key; a finding whose key already has an open incident
joins it, and if it is more severe it escalates that incident instead of opening
a second one. A finding may supersede whole groups (a complete outage absorbs the
single-service failures it explains), so one fault pages once. The function is
called with every active finding on every tick and returns only what changed, so
it is safe to call again and again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from watchdog.model import Finding, Severity


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """What triage needs to know of an incident that is already open."""

    key: str
    severity: Severity
    scenario: str
    finding_ids: frozenset[str]
    supersedes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Open:
    key: str
    severity: Severity
    scenario: str
    subject: str
    findings: tuple[Finding, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Escalate:
    key: str
    severity: Severity
    scenario: str
    finding: Finding
    reason: str


@dataclass(frozen=True, slots=True)
class Attach:
    key: str
    finding: Finding
    reason: str


TriageDecision = Open | Escalate | Attach


def finding_id(finding: Finding) -> str:
    """Stable identity of a finding within an incident: its rule and series."""
    return f"{finding.rule}/{finding.series}" if finding.series else finding.rule


def rule_key(identity: str) -> tuple[str, str]:
    """The (rule, series) a `finding_id` names: the key of that rule's state."""
    rule, _, series = identity.partition("/")
    return rule, series


def triage(
    findings: Iterable[Finding],
    incidents: Sequence[OpenIncident],
    holding: Collection[str] = frozenset(),
) -> list[TriageDecision]:
    """Decide, for every active finding not yet placed, where it belongs.

    `holding` names the groups a superseding rule is about to absorb (its breach
    has begun, its `for` not yet met): a finding of such a group opens nothing
    yet. It still joins an incident already open for it. The hold ends when the
    superseding rule fires (the finding joins its incident) or stops breaching.
    """
    ordered = sorted(findings, key=lambda f: (f.severity.rank, f.key, finding_id(f)))
    by_key = {incident.key: incident for incident in incidents}
    absorbers: list[tuple[str, frozenset[str]]] = [
        (incident.key, incident.supersedes) for incident in incidents if incident.supersedes
    ]
    decisions: list[TriageDecision] = []
    opening: dict[str, list[Finding]] = {}
    for finding in ordered:
        key = _home(finding, absorbers)
        incident = by_key.get(key)
        if incident is not None:
            if finding_id(finding) in incident.finding_ids:
                continue
            decisions.append(_join(incident, finding))
            if finding.severity.more_severe_than(incident.severity):
                by_key[key] = OpenIncident(
                    key,
                    finding.severity,
                    finding.scenario,
                    incident.finding_ids | {finding_id(finding)},
                    incident.supersedes,
                )
            continue
        if key in opening:
            opening[key].append(finding)
            continue
        if finding.group in holding and not finding.supersedes:
            continue
        opening[key] = [finding]
        if finding.supersedes:
            absorbers.append((key, frozenset(finding.supersedes)))
    for key, members in opening.items():
        lead = members[0]
        others = f"; with {len(members) - 1} related finding(s)" if len(members) > 1 else ""
        decisions.append(
            Open(
                key=key,
                severity=lead.severity,
                scenario=lead.scenario,
                subject=lead.subject,
                findings=tuple(members),
                reason=f"{lead.reason}{others}",
            )
        )
    return decisions


def _home(finding: Finding, absorbers: Sequence[tuple[str, frozenset[str]]]) -> str:
    for key, groups in absorbers:
        if finding.group in groups and key != finding.key:
            return key
    return finding.key


def _join(incident: OpenIncident, finding: Finding) -> TriageDecision:
    if finding.severity.more_severe_than(incident.severity):
        return Escalate(
            key=incident.key,
            severity=finding.severity,
            scenario=finding.scenario,
            finding=finding,
            reason=(f"escalated {incident.severity} → {finding.severity}: {finding.reason}"),
        )
    return Attach(
        key=incident.key,
        finding=finding,
        reason=f"joins the open {incident.severity} incident {incident.key}: {finding.reason}",
    )
