"""Recent values per signal series, and the arithmetic done over them.

The daemon appends every observation here; rules read the latest value and, for
rates of change, the samples of the last minute. Old samples are dropped as new
ones arrive, so memory stays bounded by `horizon` whatever the uptime. Counter
arithmetic (rates that survive a counter reset) lives here too, because a probe
and a rule must agree on it exactly.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from watchdog.model import Observation


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    value: float | None
    error: str | None
    detail: str


class Windows:
    """Observations kept per (signal, series) for `horizon` seconds."""

    def __init__(self, horizon: float = 600.0) -> None:
        self.horizon = horizon
        self._series: dict[str, dict[str, deque[Sample]]] = {}

    def record(self, observation: Observation) -> None:
        by_series = self._series.setdefault(observation.signal, {})
        samples = by_series.get(observation.series)
        if samples is None:
            samples = by_series[observation.series] = deque()
        samples.append(
            Sample(observation.at, observation.value, observation.error, observation.detail)
        )
        oldest = observation.at - self.horizon
        while len(samples) > 2 and samples[0].at < oldest:
            samples.popleft()

    def record_all(self, observations: Iterable[Observation]) -> None:
        for observation in observations:
            self.record(observation)

    def forget_series(self, signal: str, keep: Iterable[str]) -> None:
        """Drop series a probe no longer reports (a provider removed from the gateway)."""
        by_series = self._series.get(signal)
        if by_series is not None:
            kept = set(keep)
            for series in [s for s in by_series if s not in kept]:
                del by_series[series]

    def series(self, signal: str) -> dict[str, deque[Sample]]:
        return self._series.get(signal, {})

    def latest(self, signal: str, series: str = "") -> Sample | None:
        samples = self._series.get(signal, {}).get(series)
        return samples[-1] if samples else None

    def latest_reading(self, signal: str, series: str = "") -> Sample | None:
        """The latest sample that carries a value: the evidence a decision rests on."""
        samples = self._series.get(signal, {}).get(series)
        return next((s for s in reversed(samples or ()) if s.value is not None), None)

    def latest_all(self, signal: str) -> Iterator[tuple[str, Sample]]:
        for series, samples in self._series.get(signal, {}).items():
            if samples:
                yield series, samples[-1]

    def since(self, signal: str, series: str, start: float) -> list[Sample]:
        samples = self._series.get(signal, {}).get(series, ())
        return [s for s in samples if s.at >= start]


def change_per_minute(samples: Sequence[Sample]) -> float | None:
    """Slope of the values over the samples, per minute; None without two valued samples."""
    valued = [s for s in samples if s.value is not None]
    if len(valued) < 2:
        return None
    first, last = valued[0], valued[-1]
    elapsed = last.at - first.at
    if elapsed <= 0:
        return None
    assert first.value is not None and last.value is not None
    return (last.value - first.value) / elapsed * 60.0


def counter_increase(values: Sequence[float]) -> float:
    """How much a counter grew over consecutive readings, counting through resets.

    As in Prometheus' rate(): a reading lower than the one before means the
    process restarted and the counter began again from zero, so the new reading
    is all increase.
    """
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


def counter_rate(points: Sequence[tuple[float, float]]) -> float | None:
    """Per-second rate of a counter from (time, value) points; None with fewer than two."""
    if len(points) < 2:
        return None
    elapsed = points[-1][0] - points[0][0]
    if elapsed <= 0:
        return None
    return counter_increase([value for _, value in points]) / elapsed
