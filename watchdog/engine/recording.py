"""Journaling the observations that feed decisions, compactly, for `watchdog replay`.

The daemon hands every raw observation (probes and Alertmanager firings; derived
signals are derived again by replay) to `Recorder.add`, which keeps a sample only when
its value or error state changed for its (signal, series), or when the signal interval
has passed since the last kept one: a steady signal costs one row per interval, a
flapping one every change. `flush` writes a tick's kept samples in ONE transaction
(called once per tick), and every `PRUNE_EVERY_SECONDS` it deletes what is older than
the retention. A failed write is logged and the batch dropped: recording serves
replay, it must never stop the daemon from watching.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from watchdog.model import Observation
from watchdog.policy.schema import Policy
from watchdog.scrub import scrub_text
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.recording")

#: Two days: replaying "yesterday" stays possible all of today, and a Monday can still
#: replay Saturday night's incident, while the table stays small (a few MB a day for
#: songnodes, bench/replay.py). Set WATCHDOG_OBSERVATIONS_RETENTION (seconds) to change
#: it; 0 turns recording off.
DEFAULT_RETENTION_SECONDS = 2 * 86400.0
PRUNE_EVERY_SECONDS = 600.0
#: The policy as the daemon last ran it (its JSON, time scale applied): replay's baseline.
POLICY_FLAG = "policy_as_run"
#: The time scale the daemon ran its policy at (WATCHDOG_TIME_SCALE; 1 in production):
#: replay applies it to a new policy unless told otherwise.
TIME_SCALE_FLAG = "policy_time_scale"
#: When a watchdog that records observations first ran on this journal.
RECORDING_SINCE_FLAG = "observations_since"


def recorded_policy(policy: Policy) -> str:
    """The policy's JSON with every secret it holds replaced (the journal keeps no secret:
    tests/integration/test_no_secret_out.py), checked to load again as a policy.

    Every string is scrubbed (the secrets registered at start, which include each value
    the policy holds under a secret-like name, and credentials in URLs); the shape is
    kept, so the baseline still validates (`scrub_value` would blank whole fields)."""
    data = _scrubbed(policy.model_dump(mode="json"))
    Policy.model_validate(data)  # a replay's baseline must load: refuse here, not then
    return json.dumps(data, sort_keys=True)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    return value


class Recorder:
    """What to keep of the observations, buffered until the tick's one write."""

    def __init__(
        self,
        journal: Journal,
        intervals: Mapping[str, float],
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self.journal = journal
        self.intervals = dict(intervals)
        self.retention_seconds = retention_seconds
        self.enabled = retention_seconds > 0
        #: (signal, series) -> (value, error state, when last kept)
        self._last: dict[tuple[str, str], tuple[float | None, bool, float]] = {}
        self._buffer: list[Observation] = []
        self._pruned_at: float | None = None
        self.kept = 0
        self.seen = 0

    def start(self, policy: Policy, now: float, time_scale: float = 1.0) -> None:
        """At the daemon's start: the policy it runs (at `time_scale`), and since when
        recording exists."""
        if not self.enabled:
            return
        try:
            if self.journal.get_flag(RECORDING_SINCE_FLAG) is None:
                self.journal.set_flag(RECORDING_SINCE_FLAG, repr(now), at=now)
            self.journal.set_flag(POLICY_FLAG, recorded_policy(policy), at=now)
            self.journal.set_flag(TIME_SCALE_FLAG, repr(time_scale), at=now)
        except Exception as error:
            log.warning("policy_not_recorded", error=str(error))

    def add(self, observations: Iterable[Observation]) -> None:
        if not self.enabled:
            return
        for observation in observations:
            self.seen += 1
            if self.keeps(observation):
                self._buffer.append(observation)

    def keeps(self, observation: Observation) -> bool:
        """A change of value or of error state, or an interval since the last kept sample."""
        key = (observation.signal, observation.series)
        failed = observation.error is not None
        last = self._last.get(key)
        if last is not None:
            value, was_failed, at = last
            interval = self.intervals.get(observation.signal, 0.0)
            if value == observation.value and was_failed == failed and (
                observation.at - at < interval
            ):
                return False
        self._last[key] = (observation.value, failed, observation.at)
        return True

    def flush(self, now: float) -> int:
        """Write what the tick kept (one transaction); prune now and then. Never raises."""
        batch, self._buffer = self._buffer, []
        try:
            self.journal.record_observations(batch)
            self.kept += len(batch)
            if self.enabled and (
                self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY_SECONDS
            ):
                self._pruned_at = now
                self.journal.prune_observations(now - self.retention_seconds)
        except Exception as error:
            log.warning("observations_not_recorded", count=len(batch), error=str(error))
            return 0
        return len(batch)
