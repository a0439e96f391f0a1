"""The one place that turns a probe's answer into Observations.

`Stopwatch` fixes the two clocks once per probe run: `at` is wall time when the
answer (or failure) came, `duration_seconds` is monotonic, so a clock step never
shows up as a negative latency. Every Observation a run makes, one per series,
shares that stamp, and its evidence is clipped to one short line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from watchdog.model import Observation

EVIDENCE_LIMIT = 300


def clip(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    """Evidence on one line and short enough for a page or a journal row."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Stamp:
    """When one probe run got its answer, and how long it took; makes its Observations."""

    signal: str
    at: float
    duration_seconds: float

    def reading(self, value: float, *, series: str = "", detail: str = "") -> Observation:
        return Observation(
            signal=self.signal,
            at=self.at,
            value=value,
            series=series,
            detail=clip(detail),
            duration_seconds=self.duration_seconds,
        )

    def failure(
        self, error: str, *, value: float | None = None, series: str = "", detail: str = ""
    ) -> Observation:
        return Observation(
            signal=self.signal,
            at=self.at,
            value=value,
            series=series,
            error=clip(error),
            detail=clip(detail),
            duration_seconds=self.duration_seconds,
        )


class Stopwatch:
    """Started when a probe run begins; `stop()` when the answer or the failure comes."""

    def __init__(self, signal: str) -> None:
        self._signal = signal
        self._started = time.monotonic()

    def stop(self) -> Stamp:
        return Stamp(self._signal, time.time(), time.monotonic() - self._started)
