"""Runs every probe on its own interval, and never lets one probe hold up another.

Each signal is its own APScheduler job on the asyncio loop, so each probe run is
its own coroutine: a probe that hangs until its timeout delays nobody else.
`max_instances=1` means a probe whose previous run is still going is skipped
(and the skip counted) instead of piling up; `coalesce=True` with a misfire
grace turns a backlog of missed runs into one run. Results go to the daemon's
queue as one list per probe run. A probe that raises (a bug of ours, since
probes turn every target failure into data) becomes an error Observation too,
so the daemon sees the gap instead of a silent job error.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from watchdog.model import Observation
from watchdog.probes.base import Probe
from watchdog.probes.stamp import Stopwatch

log = structlog.get_logger(__name__)

OnResult = Callable[[Probe, list[Observation]], None]


async def observe_safely(probe: Probe) -> list[Observation]:
    """The probe's Observations; an exception from the probe itself becomes one too."""
    watch = Stopwatch(probe.signal.name)
    try:
        return await probe.observe()
    except Exception as exc:  # the last line between a probe bug and a dead job
        log.exception("probe_crashed", signal=probe.signal.name)
        error = f"{probe.signal.name}: probe failed with {type(exc).__name__}: {exc}"
        return [watch.stop().failure(f"{error} (expected an Observation)")]


async def observe_all(probes: Iterable[Probe]) -> list[Observation]:
    """Every probe once, concurrently; Observations in the order of `probes`."""
    results = await asyncio.gather(*(observe_safely(probe) for probe in probes))
    return [observation for result in results for observation in result]


class ProbeScheduler:
    """Each probe at its signal's `interval`; each run's Observations onto `queue`.

    `start()` must be called from inside the running event loop. `skipped` and
    `missed` count, per signal, runs dropped because the previous run was still
    going or because the loop was too late to start them.
    """

    def __init__(
        self,
        probes: list[Probe],
        queue: asyncio.Queue[list[Observation]],
        *,
        on_result: OnResult | None = None,
    ) -> None:
        self._probes: dict[str, Probe] = {}
        for probe in probes:
            if probe.signal.name in self._probes:
                raise ValueError(f"two probes for signal {probe.signal.name!r}")
            self._probes[probe.signal.name] = probe
        self._queue = queue
        self._on_result = on_result
        self._scheduler: Any = None
        self.skipped: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        """Schedule every probe, the first run of each right away."""
        if self._scheduler is not None:
            return
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_listener(self._count, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        now = datetime.now(UTC)
        for name, probe in self._probes.items():
            interval = probe.signal.interval
            scheduler.add_job(
                self._run,
                trigger="interval",
                seconds=interval,
                args=[probe],
                id=name,
                name=f"probe {name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, math.ceil(interval)),
                next_run_time=now,
            )
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self) -> None:
        """Stop scheduling and cancel runs in flight; safe to call twice."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    async def run_once(self) -> list[Observation]:
        """Every probe once, concurrently, for `watchdog check`; nothing goes on the queue."""
        probes = list(self._probes.values())
        results = await asyncio.gather(*(observe_safely(probe) for probe in probes))
        for probe, observations in zip(probes, results, strict=True):
            self._report(probe, observations)
        return [observation for result in results for observation in result]

    async def _run(self, probe: Probe) -> None:
        try:
            observations = await observe_safely(probe)
        except asyncio.CancelledError:
            if self._scheduler is None:  # shut down: a run in flight is dropped on purpose,
                return  # not reported by APScheduler as a job that raised
            raise
        await self._queue.put(observations)
        self._report(probe, observations)

    def _report(self, probe: Probe, observations: list[Observation]) -> None:
        if self._on_result is not None:
            self._on_result(probe, observations)

    def _count(self, event: Any) -> None:
        counter = self.skipped if event.code == EVENT_JOB_MAX_INSTANCES else self.missed
        counter[event.job_id] += 1
        log.warning(
            "probe_run_dropped",
            signal=event.job_id,
            reason="previous run still going" if counter is self.skipped else "too late",
        )
