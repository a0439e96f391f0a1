"""The post-rollback checklist, assessed against the signal windows.

A rollback is only done when the runbook's checklist holds — services healthy,
error rate below 5 %, DLQ stable, breakers CLOSED — and keeps holding for the
scenario's `verify_for`. This module says whether each line holds right now and
why; the daemon keeps the clock on how long it has held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.model import Check, Plan
from watchdog.policy.durations import format_duration
from watchdog.policy.rules import COMPARE
from watchdog.policy.windows import Windows, change_per_minute


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Assessment:
    passed: bool
    results: tuple[CheckResult, ...]

    @property
    def summary(self) -> str:
        return (
            "; ".join(f"{'ok' if r.passed else 'NOT YET'}: {r.reason}" for r in self.results)
            or "no checks"
        )


def assess(checks: Sequence[Check], windows: Windows, now: float, max_age: float) -> Assessment:
    """Whether every check holds on fresh data; a check with no fresh data fails."""
    results = tuple(_assess_one(check, windows, now, max_age) for check in checks)
    return Assessment(all(r.passed for r in results), results)


def _assess_one(check: Check, windows: Windows, now: float, max_age: float) -> CheckResult:
    compare = COMPARE[check.op]
    series = [
        (name, sample)
        for name, sample in windows.latest_all(check.signal)
        if not check.series or name == check.series
    ]
    if not series:
        return CheckResult(
            check, False, f"{check.description}: no observation of {check.signal} yet"
        )
    failing: list[str] = []
    for name, latest in series:
        if now - latest.at > max_age:
            failing.append(f"{name or check.signal} is stale ({now - latest.at:.1f} s old)")
            continue
        if check.measure == "change_per_minute":
            value = change_per_minute(windows.since(check.signal, name, now - check.window_seconds))
        else:
            value = latest.value
        if value is None:
            failing.append(f"{name or check.signal} has no value ({latest.error or 'no data'})")
        elif not compare(value, check.threshold):
            label = f"{name} " if name else ""
            failing.append(f"{label}{value:.4g} (needs {check.op} {check.threshold:g})")
    if failing:
        return CheckResult(check, False, f"{check.description}: " + ", ".join(failing))
    return CheckResult(check, True, check.description)


def stalled(plan: Plan, unchanged_since: float | None, now: float) -> str | None:
    """Why a plan's verification is given up early, or None to keep waiting.

    A checklist that still fails with the very same reading `give_up` after the
    steps says the steps did not change what the rule sees (a start of a running
    service, a restart that did not help): waiting out `verify_timeout` would leave
    the fault in place for nothing, so the plan climbs to its next rung or pages.
    """
    give_up, timeout = plan.give_up_seconds, plan.verify_timeout_seconds
    if give_up is None or give_up >= timeout or unchanged_since is None:
        return None
    if now - unchanged_since < give_up:
        return None
    return (
        f"checklist unchanged for {format_duration(now - unchanged_since)} after the steps "
        f"(give_up {format_duration(give_up)}): they did not change what the rule sees, so "
        f"the plan does not wait out its {format_duration(timeout)} timeout"
    )
