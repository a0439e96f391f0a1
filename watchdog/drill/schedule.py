"""When the policy's drills run: APScheduler triggers from each drill's `schedule`.

A quarter (`Q1`..`Q4`, the runbook's quarterly rollback tests) is a yearly cron
trigger on `day` of the quarter's first month at `at` UTC; `every DURATION` is an
interval trigger whose first run is one interval after the start (the interval divided
by the time scale, as every policy duration is); anything else is a crontab line.
`next_runs` computes the coming runs without a scheduler or a clock (the caller gives
`now`), so the schedule is checked by a unit test; `schedule_drills` adds one job per
scheduled drill to the daemon's scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from watchdog.policy.drillspecs import QUARTERS, DrillSpec
from watchdog.policy.schema import Policy


def trigger(spec: DrillSpec, start: datetime | None = None,
            time_scale: float = 1.0) -> BaseTrigger | None:
    """The drill's trigger (UTC), or None when it runs only by hand.

    `start` is when an `every` schedule starts counting (None: when the scheduler adds it)."""
    if spec.schedule is None:
        return None
    if spec.interval is not None:
        seconds = spec.interval / time_scale
        first = None if start is None else start + timedelta(seconds=seconds)
        return IntervalTrigger(seconds=seconds, start_date=first, timezone=UTC)
    if spec.schedule in QUARTERS:
        month = 1 + 3 * QUARTERS.index(spec.schedule)
        hour, minute = spec.at.split(":")
        return CronTrigger(
            month=month, day=spec.day, hour=int(hour), minute=int(minute), timezone=UTC
        )
    try:
        return CronTrigger.from_crontab(spec.schedule, timezone=UTC)
    except ValueError as error:
        raise ValueError(f"drill schedule {spec.schedule!r}: {error}") from error


def next_runs(policy: Policy, now: datetime, count: int = 1) -> dict[str, list[datetime]]:
    """Each scheduled drill's next `count` runs after `now`, by drill name."""
    runs: dict[str, list[datetime]] = {}
    for name, spec in policy.drills.scenarios.items():
        found = trigger(spec, start=now)
        if found is None:
            continue
        times: list[datetime] = []
        previous: datetime | None = None
        at = now
        while len(times) < count:
            fire: datetime | None = found.get_next_fire_time(previous, at)
            if fire is None:
                break
            times.append(fire)
            previous, at = fire, fire + timedelta(seconds=1)
        runs[name] = times
    return runs


def schedule_drills(
    scheduler: BaseScheduler, policy: Policy, run: Callable[[str], object],
    time_scale: float = 1.0,
) -> list[str]:
    """One job per scheduled drill, calling `run(name)`; the names scheduled."""
    scheduled = []
    for name, spec in policy.drills.scenarios.items():
        found = trigger(spec, time_scale=time_scale)
        if found is None:
            continue
        scheduler.add_job(
            run, found, args=[name], id=f"drill:{name}", name=f"drill {name}",
            max_instances=1, coalesce=True, misfire_grace_time=3600,
        )
        scheduled.append(name)
    return scheduled
