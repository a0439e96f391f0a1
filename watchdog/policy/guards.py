"""Guards: the reasons the daemon may refuse to act even when a plan allows it.

Blind restarters make outages worse by acting too often, on stale data, or while
a human is working. Before every automatic plan the daemon gathers the facts
(paused? actions in the last hour? last action on these targets? age of the data
that triggered it?) and this pure function decides, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchdog.policy.durations import format_duration
from watchdog.policy.schema import GuardSpec


@dataclass(frozen=True, slots=True)
class GuardFacts:
    paused: bool
    actions_last_hour: int
    last_action_at: Mapping[str, float]
    evidence_age_seconds: float
    evidence_max_age_seconds: float
    #: How often each target was acted on in the last hour (for the backoff).
    recent_actions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    allowed: bool
    reason: str


def assess_guards(guards: GuardSpec, facts: GuardFacts, now: float) -> GuardVerdict:
    if facts.paused:
        return GuardVerdict(False, "automatic actions are paused (watchdog resume to lift)")
    if facts.actions_last_hour >= guards.actions_per_hour:
        return GuardVerdict(
            False,
            f"hourly budget spent: {facts.actions_last_hour} automatic plans in the last hour "
            f"(limit {guards.actions_per_hour}); paging instead",
        )
    # Services first: "rest-api was acted on" says more than the incident's key.
    for target, at in sorted(facts.last_action_at.items(), key=lambda i: (":" in i[0], i[0])):
        elapsed = now - at
        times = facts.recent_actions.get(target, 1)
        wait = backoff(guards, times)
        if elapsed < wait:
            grown = f" (grown {times - 1}x after {times} actions this hour)" if times > 1 else ""
            return GuardVerdict(
                False,
                f"{target} was acted on {format_duration(elapsed)} ago; cooldown is "
                f"{format_duration(wait)}{grown}: paging instead of acting again",
            )
    if facts.evidence_age_seconds > facts.evidence_max_age_seconds:
        return GuardVerdict(
            False,
            f"the evidence is {format_duration(facts.evidence_age_seconds)} old (limit "
            f"{format_duration(facts.evidence_max_age_seconds)}): not acting on stale data",
        )
    return GuardVerdict(
        True,
        f"guards pass: {facts.actions_last_hour}/{guards.actions_per_hour} actions this hour, "
        "no target in cooldown, evidence fresh",
    )


def backoff(guards: GuardSpec, times: int) -> float:
    """The cooldown after a target's `times`-th action this hour: it doubles each time.

    A crash-looping service is restarted after 1, 2, 4, 8 ... cooldowns, never in
    a tight loop, up to `max_cooldown`; the hourly budget caps the total.
    """
    grown = guards.cooldown * guards.backoff_factor ** max(0, times - 1)
    return float(min(guards.max_cooldown, grown))


def budget_remaining(guards: GuardSpec, actions_last_hour: int) -> int:
    return max(0, guards.actions_per_hour - actions_last_hour)
