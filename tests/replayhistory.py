"""A synthetic but realistic recorded history of the songnodes stack, for replay's tests and bench.

Every probed signal the policy names is read at its own interval with a little jitter
(±2 %), each series from its own phase; latencies and rates wander as real ones do
(so most of their samples are changes the recorder keeps), counts and health flags hold
still (so the recorder keeps one per interval). Faults override a signal's value for a
stretch of time. Deterministic: one seed, one history.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tests.unit.helpers import HEALTHY
from watchdog.model import Observation
from watchdog.policy.schema import Policy

#: Healthy readings of the probed signals helpers.HEALTHY leaves out.
EXTRA: dict[str, float | dict[str, float]] = {
    "database_port_open": 1.0,
    "container_changed": {"dlq-manager": 0.0, "rest-api": 0.0},
}

#: Signals whose healthy value wanders (relative noise), as latencies and rates do.
WANDERING = ("_seconds", "_rate", "memory_used", "disk_used")


@dataclass(frozen=True, slots=True)
class Fault:
    """`signal` (its `series`, "" for a single value) reads `value` from `start` for `seconds`."""

    signal: str
    value: float
    start: float
    seconds: float
    series: str = ""


def readings() -> dict[str, dict[str, float]]:
    """Each probed signal's series and healthy value."""
    merged: dict[str, dict[str, float]] = {}
    for name, value in {**HEALTHY, **EXTRA}.items():
        merged[name] = dict(value) if isinstance(value, dict) else {"": value}
    return merged


def history(
    policy: Policy, start: float, seconds: float, faults: Sequence[Fault] = (), *, seed: int = 7
) -> Iterator[Observation]:
    """The observations of [start, start + seconds), oldest first."""
    rng = random.Random(seed)
    healthy = readings()
    due: list[tuple[float, str, str, float]] = []
    for signal in policy.signals:
        for series, _ in healthy.get(signal.name, {}).items():
            due.append((start + rng.uniform(0, signal.interval), signal.name, series,
                        signal.interval))
    heapq.heapify(due)
    end = start + seconds
    while due and due[0][0] < end:
        at, name, series, interval = heapq.heappop(due)
        value = healthy[name][series]
        if any(part in name for part in WANDERING):
            value = round(value * rng.uniform(0.8, 1.2), 4)
        for fault in faults:
            if fault.signal == name and fault.series == series and (
                fault.start <= at < fault.start + fault.seconds
            ):
                value = fault.value
        yield Observation(name, at, value, series=series)
        heapq.heappush(due, (at + interval * rng.uniform(0.98, 1.02), name, series, interval))


def stricter(text: str) -> str:
    """songnodes.yaml made stricter: a DLQ overflow needs 8000 messages, not 5000, and the
    dlq-manager must be down for 5 minutes, not 20 s, before an incident opens."""
    changed = text.replace(
        "    threshold: 5000\n    for: 10s", "    threshold: 8000\n    for: 10s"
    ).replace(
        "signal: dlq_manager_health, op: \"<\", threshold: 1, for: 20s",
        "signal: dlq_manager_health, op: \"<\", threshold: 1, for: 5m",
    )
    assert changed.count("threshold: 8000") == 1 and "threshold: 1, for: 5m" in changed
    return changed
