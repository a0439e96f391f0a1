"""The policy's scheduled drills inside `watchdog run`, on APScheduler.

A drill waits on the daemon for minutes (that is the point), so each runs in a
worker thread with its own journal handle, never on the event loop that runs the
daemon. Drills due together run one after another: each follows the first incident
opened after its fault, so two faults at once would each claim the other's. A failed
drill's page is composed on the loop afterwards, by an outbox that only journals (the
daemon's outbox worker delivers it, as every page). A policy whose drills would hit a
live target (songnodes.yaml on the real stack) is not scheduled at all: the refusal is
logged once at start as a warning, as `watchdog drill` would print it; its staging copy
(`stack.drill: true`) runs them. Every drill's latest result, by hand or scheduled, is
read from the journal every RESULTS_EVERY seconds into two gauges, so Grafana can say
"q3-config last passed 80 days ago" without a textfile collector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from watchdog.commands.drillcmd import DrillRefused, drill_once, drill_target
from watchdog.commands.runner import build_outbox
from watchdog.drill.run import last_result
from watchdog.drill.schedule import schedule_drills, trigger
from watchdog.metrics import Metrics
from watchdog.policy.schema import Policy
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal

log = structlog.get_logger("watchdog.drill")
RESULTS_EVERY = 15.0  # seconds between reads of the drills' latest results


def refresh_results(policy: Policy, journal: Journal, metrics: Metrics) -> None:
    """Each drill's latest result from the journal into its gauges (none until it ran)."""
    for name in policy.drills.scenarios:
        found = last_result(journal, name)
        if found is not None:
            metrics.drill_last_run.labels(name).set(float(found["started"]))
            metrics.drill_last_passed.labels(name).set(float(found["outcome"] == "passed"))


def start_drills(
    policy: Policy, settings: Settings, journal: Journal, client: httpx.AsyncClient,
    metrics: Metrics, source: str, leading: Callable[[], bool] = lambda: True,
) -> AsyncIOScheduler | None:
    """A started scheduler of the policy's scheduled drills and of their results' gauges,
    or None if the policy has no drills.

    Every sidecar sharing a journal schedules them; only the one `leading` when a drill
    is due runs it, so a fault is injected once, by the sidecar that will act on it."""
    if not policy.drills.scenarios:
        return None
    scheduler = AsyncIOScheduler(timezone=UTC)

    def results() -> None:
        try:
            refresh_results(policy, journal, metrics)
        except Exception as error:  # the journal away: the gauges keep their last values
            log.warning("drill_results_unread", error=str(error))

    scheduler.add_job(results, "interval", seconds=RESULTS_EVERY, id="drill-results",
                      next_run_time=datetime.now(UTC), coalesce=True, max_instances=1)
    names = [n for n, spec in policy.drills.scenarios.items() if trigger(spec) is not None]
    try:
        for name in names:
            drill_target(policy, settings, name, source)
    except DrillRefused as error:
        log.warning("drills_not_scheduled", reason=str(error), drills=names)
        names = []
    if names and not settings.scheduled_drills:
        log.info("drills_not_scheduled", reason="WATCHDOG_SCHEDULED_DRILLS=false", drills=names)
        names = []
    if names:
        _schedule(scheduler, policy, settings, journal, client, metrics, source, leading)
    scheduler.start()
    for found in scheduler.get_jobs():
        if found.id.startswith("drill:"):
            log.info("drill_scheduled", drill=found.name, next_run=str(found.next_run_time))
    return scheduler


def _schedule(
    scheduler: AsyncIOScheduler, policy: Policy, settings: Settings, journal: Journal,
    client: httpx.AsyncClient, metrics: Metrics, source: str, leading: Callable[[], bool],
) -> None:
    """One job per scheduled drill, run one at a time by the leading sidecar."""
    outbox = build_outbox(policy, settings, journal, client, metrics)
    one_at_a_time = asyncio.Lock()

    def in_thread(name: str) -> tuple[int | None, str]:
        handle = open_journal(settings.state)
        try:
            result, failure = drill_once(
                policy, name, drill_target(policy, settings, name, source), handle,
                outbox=None, metrics=metrics, time_scale=settings.time_scale,
                progress=lambda line: log.info("drill_progress", drill=name, line=line.strip()),
            )
        finally:
            handle.close()
        return (failure.incident if failure is not None and failure.new else None), result.reason

    async def job(name: str) -> None:
        async with one_at_a_time:
            if not leading():
                log.info("drill_skipped", drill=name,
                         reason="this sidecar follows; the leader runs it")
                return
            try:
                paged, reason = await asyncio.to_thread(in_thread, name)
            except Exception as error:  # the journal failed under it: nothing to record in
                log.error("drill_error", drill=name, error=str(error))
                return
        if paged is not None:
            outbox.incident_moved(paged, "detected", "escalated", f"drill {name} failed: {reason}")

    schedule_drills(scheduler, policy, job, time_scale=settings.time_scale)
