"""Near misses: the rules on an incident's signals that did not fire, and why not.

"Why P1 and not P0?" is the question an engineer asks of a page. Every other rule
reading the same signal (and series) as one of the incident's findings is weighed
against what the journal recorded: the finding's measured value (`Finding.value`,
kept since explain exists; an older journal has none, and says so), the time its
condition had held when the incident opened, and the groups its rules supersede.
Pure: the policy and the findings in, one `NearMiss` per rule out, in policy order.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.model import Finding
from watchdog.policy.durations import format_duration
from watchdog.policy.explainvalues import NearMiss, PolicyPlaces
from watchdog.policy.reenable import GROUP as REENABLE
from watchdog.policy.rules import COMPARE
from watchdog.policy.schema import Policy, RuleSpec

_MISSED = {">": "below threshold", ">=": "below threshold", "<": "above threshold",
           "<=": "above threshold"}


def near_misses(
    policy: Policy,
    findings: Sequence[Finding],
    opened_at: float,
    places: PolicyPlaces | None = None,
) -> tuple[NearMiss, ...]:
    """Each rule on a finding's (signal, series) that is not among the findings, and why."""
    fired = {(f.rule, f.series) for f in findings}
    measures = {rule.name: rule.measure for rule in policy.rules}
    enabled = {signal.name: signal.enabled for signal in policy.signals}
    seen: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        if finding.rule == REENABLE:  # a re-enable watch's checks, not a rule's reading
            continue
        seen.setdefault((finding.signal, finding.series), []).append(finding)
    misses: list[NearMiss] = []
    for (signal, series), witnesses in seen.items():
        for rule in policy.rules:
            if rule.signal != signal or (rule.name, series) in fired:
                continue
            place = places.rules.get(rule.name) if places is not None else None
            if not enabled.get(signal, True):
                why = f"its signal {signal} is disabled (enabled: false)"
                misses.append(NearMiss(rule.name, signal, series, "disabled", why, place))
                continue
            # The witness measured as this rule measures: a value or a change per minute.
            same = [w for w in witnesses if measures.get(w.rule, "value") == rule.measure]
            kind, why = _weigh(rule, same, findings, opened_at)
            misses.append(NearMiss(rule.name, signal, series, kind, why, place))
    return tuple(misses)


def _weigh(
    rule: RuleSpec, witnesses: Sequence[Finding], findings: Sequence[Finding], opened_at: float
) -> tuple[str, str]:
    condition = f"{rule.op} {rule.threshold:g}" + (
        " per minute" if rule.measure == "change_per_minute" else ""
    )
    if not witnesses:
        return "no recorded value", (
            f"it measures {rule.measure.replace('_', ' ')} and no finding of this incident "
            f"does, so nothing recorded can be weighed against {condition}"
        )
    witness = witnesses[0]
    if witness.value is None:
        return "no recorded value", (
            f"{witness.rule}'s finding was journaled without its measured value (before "
            f"`watchdog explain` kept it); its evidence: {'; '.join(witness.evidence) or '-'}"
        )
    value = witness.value
    recorded = f"recorded {value:g} (when {witness.rule} fired)"
    if not COMPARE[rule.op](value, rule.threshold):
        return _MISSED.get(rule.op, "threshold not met"), f"{recorded} is not {condition}"
    held = max(0.0, opened_at - witness.since)
    if rule.for_ > held:
        return "for not yet met", (
            f"{recorded} is {condition}, but had held {format_duration(held)} when the "
            f"incident opened, short of its `for` of {format_duration(rule.for_)}"
        )
    group = rule.group or rule.scenario
    for finding in findings:
        if group in finding.supersedes and finding.group != group:
            return "superseded", (
                f"{recorded} is {condition}, but its group {group!r} is superseded by rule "
                f"{finding.rule} (group {finding.group!r}): one fault, one incident"
            )
    if all(f.group != group for f in findings):
        return "in another incident", (
            f"{recorded} is {condition}: its findings belong to group {group!r}, an incident "
            "of their own, not this one"
        )
    return "not recorded here", (
        f"{recorded} is {condition} and its `for` ({format_duration(rule.for_)}) was met, "
        "but no finding of it joined this incident: it waited on something else "
        "(a change reading, fresh data) or its value changed before it fired"
    )
