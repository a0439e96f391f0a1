"""Runbook scenario 1's question, in the pure core: did the failing service just change?

A service that fails right after its image or configuration changed is a bad
deploy (scenario 1: stop it, put back its last known good version, restart its
dependents); the same failure with nothing changed is a plain restart. The
difference is a fact about time, so it is decided here from values handed in:
a `changed` Docker reading (seconds since a replica stopped matching the
service's last known good record, read at `at`, so the change happened at
`at - value`) and the moment the rule's breach began. A reading that is stale,
missing or without a value (the service runs its last known good version) is
no change: a failure nobody can tie to a deploy stays a plain restart. A change
reading older than the failure is not yet an answer: the rule waits for the next
one (`change_unknown`), so two probes' timing never decides the route.

Change readings say what changed as "<what> changed: <words>", e.g. "image
changed: watchdog-test/web:broken, last good watchdog-test/web:good", so the
reason reads "web's image changed 42 s before it failed (watchdog-test/web:broken,
last good watchdog-test/web:good)".
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.policy.durations import format_duration
from watchdog.policy.scenariospecs import AfterChange
from watchdog.policy.windows import Windows

CHANGED = " changed: "


@dataclass(frozen=True, slots=True)
class RecentChange:
    """A change of `service` close enough before its failure to be its likely cause."""

    service: str
    changed_at: float
    failed_at: float
    detail: str

    def words(self) -> str:
        what, found, rest = self.detail.partition(CHANGED)
        lead = f"{self.service}'s {what} changed" if found else f"{self.service} changed"
        tail = rest if found else self.detail
        gap = self.failed_at - self.changed_at
        when = (
            f"{format_duration(gap)} before it failed"
            if gap >= 0
            else f"while it was failing ({format_duration(-gap)} after the failure began)"
        )
        return f"{lead} {when}" + (f" ({tail})" if tail else "")


def recent_change(
    spec: AfterChange,
    windows: Windows,
    service: str,
    failed_at: float,
    now: float,
    max_age: float,
) -> RecentChange | None:
    """The change of `service` at most `spec.within` before `failed_at`, or None.

    A change after the failure began counts too (a new version deployed onto a
    failing service that still fails is still a version to take back).
    """
    sample = windows.latest(spec.signal, service)
    if sample is None or sample.value is None or now - sample.at > max_age:
        return None
    changed_at = sample.at - sample.value
    if failed_at - changed_at > spec.within:
        return None
    return RecentChange(service, changed_at, failed_at, sample.detail)


def change_unknown(
    spec: AfterChange, windows: Windows, service: str, failed_at: float, now: float,
    max_age: float,
) -> bool:
    """The newest change reading predates the failure, and is still fresh: wait for one.

    The change and the failure are read by separate probes; a crash loop can be
    counted before the change probe has seen the new container. Deciding then
    would send a bad deploy to the plain restart, so a rule with `after_change`
    does not fire until a change reading taken since its breach began is in: one
    probe interval at most, and only when its `for` is shorter than that (the
    breach's start, not its latest reading: two probes polling out of phase must
    never hold a rule forever). A series never read (no Docker signals here) or
    gone stale (the probe stopped answering) waits for nothing.
    """
    sample = windows.latest(spec.signal, service)
    return sample is not None and sample.at < failed_at and now - sample.at <= max_age
