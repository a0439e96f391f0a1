"""The runbook's pre-rollback checklist, judged before a plan starts.

Each item of a scenario's `prechecks` names the fact that satisfies it
(`watchdog.policy.impactspecs.PrecheckFact`); `judge` turns the facts the
engine gathered into one verdict per item: satisfied, not applicable, or not
satisfied with why. The verdicts are journaled with the move that starts the
plan; an item the policy marks `required` that is not satisfied keeps the plan
from acting (`blocking`): it pages with the reason instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.model import AuthMode, Plan, PreCheck
from watchdog.policy.catalogue import ACTIONS
from watchdog.policy.durations import format_duration
from watchdog.policy.impact import ImpactFacts, Unknown, affected_services, data_touch
from watchdog.policy.impactspecs import PrecheckSpec

SATISFIED = "satisfied"
NOT_APPLICABLE = "not_applicable"
NOT_SATISFIED = "not_satisfied"


@dataclass(frozen=True, slots=True)
class PrecheckFacts:
    """What the engine holds when the plan is made, besides the impact facts."""

    impact: ImpactFacts
    #: When the fault behind the plan was first seen.
    breach_since: float
    #: signal → (latest value or None, its age in seconds), for the signals items name.
    readings: Mapping[str, tuple[float | None, float]] = field(default_factory=dict)
    #: Whether the policy pages someone for the incident's severity.
    paged: bool = False


def judge(
    specs: Sequence[PrecheckSpec], plan: Plan, facts: PrecheckFacts, now: float
) -> tuple[PreCheck, ...]:
    """One verdict per item, in the policy's order."""
    return tuple(
        PreCheck(spec.item, *_verdict(spec, plan, facts, now), required=spec.required)
        for spec in specs
    )


def blocking(results: Sequence[PreCheck]) -> str | None:
    """Why the plan must not act: the required items not satisfied, or None."""
    missing = [
        f"{r.item}: {r.reason}" for r in results if r.required and r.verdict == NOT_SATISFIED
    ]
    if not missing:
        return None
    return "pre-rollback checklist not satisfied: " + "; ".join(missing)


def summary(results: Sequence[PreCheck]) -> str:
    """One line for the timeline: how many items stand how."""
    counts = {v: sum(1 for r in results if r.verdict == v) for v in (SATISFIED, NOT_APPLICABLE)}
    missing = [r.item for r in results if r.verdict == NOT_SATISFIED]
    words = f"{counts[SATISFIED]} satisfied, {counts[NOT_APPLICABLE]} not applicable"
    return words + (f", not satisfied: {', '.join(missing)}" if missing else "")


def _verdict(
    spec: PrecheckSpec, plan: Plan, facts: PrecheckFacts, now: float
) -> tuple[str, str]:
    impact = facts.impact
    if spec.fact == "backup":
        return _backup(spec, plan, impact)
    if spec.fact == "dependents":
        if not affected_services(plan):
            return NOT_APPLICABLE, "the plan stops or restarts no service"
        if isinstance(impact.dependents, Unknown):
            return NOT_SATISFIED, f"unknown: {impact.dependents.why}"
        return SATISFIED, "read from the Compose graph (shown in the impact)"
    if spec.fact == "captured":
        capturing = [s.name for s in plan.steps
                     if s.action in ACTIONS and ACTIONS[s.action].data == "captures"]
        if capturing:
            return SATISFIED, f"step '{capturing[0]}' keeps them before anything changes"
        return NOT_SATISFIED, "no step of the plan captures them"
    if spec.fact == "change":
        if isinstance(impact.last_change, Unknown):
            return NOT_SATISFIED, f"unknown: {impact.last_change.why}"
        at, what = impact.last_change
        return SATISFIED, f"{what}, {format_duration(max(0.0, now - at))} ago"
    if spec.fact == "approval":
        auth = plan.authorization
        if auth.mode is AuthMode.APPROVAL:
            return SATISFIED, f"the plan waits for {auth.role or 'a human'}'s approval"
        return NOT_SATISFIED, f"the plan runs without approval: {auth.reason}"
    if spec.fact == "notify":
        if facts.paged:
            return SATISFIED, "the policy pages for this severity"
        return NOT_SATISFIED, "the policy pages nobody for this severity"
    if spec.fact == "reading":
        return _reading(spec.signal, facts)
    if spec.fact == "waited":
        lasted = max(0.0, now - facts.breach_since)
        if lasted >= spec.wait:
            return SATISFIED, f"the fault has lasted {format_duration(lasted)}"
        return NOT_SATISFIED, (
            f"the fault has lasted {format_duration(lasted)}, under {format_duration(spec.wait)}"
        )
    return NOT_SATISFIED, "left to a person: nothing the daemon reads answers it"


def _backup(spec: PrecheckSpec, plan: Plan, impact: ImpactFacts) -> tuple[str, str]:
    touch = data_touch(plan)
    if touch in ("", "undoable"):
        return NOT_APPLICABLE, "the plan restores no data"
    if isinstance(impact.backup_age, Unknown):
        return NOT_SATISFIED, f"unknown: {impact.backup_age.why}"
    age = format_duration(max(0.0, impact.backup_age))
    if spec.max_age is not None and impact.backup_age > spec.max_age:
        return NOT_SATISFIED, f"the newest is {age} old, over {format_duration(spec.max_age)}"
    return SATISFIED, f"the newest is {age} old"


def _reading(signal: str, facts: PrecheckFacts) -> tuple[str, str]:
    if not signal:
        return NOT_SATISFIED, "the item names no signal to read"
    value, age = facts.readings.get(signal, (None, -1.0))
    if age < 0:
        return NOT_SATISFIED, f"{signal} has not been read"
    if value is None:
        return NOT_SATISFIED, f"{signal} could not be read {format_duration(age)} ago"
    return SATISFIED, f"{signal} = {value:g}, read {format_duration(age)} ago"
