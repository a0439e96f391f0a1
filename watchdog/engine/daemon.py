"""The daemon loop: probes in, decisions through the core, incidents out.

This is the only place that reads the clock for the decision core: each tick
takes the time once, drains what the probes observed, and hands values to the
pure functions (derive, evaluate, triage, plan, assess). It wires adapters
together and owns no policy of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from watchdog.actions.base import ConfigStore, Handler, Reverter
from watchdog.actions.docker import LAST_GOOD_TABLE
from watchdog.engine.alerts import AlertIntake
from watchdog.engine.closing import closes_to_resolve
from watchdog.engine.executor import Executor, Preflight
from watchdog.engine.health import Carried, Health
from watchdog.engine.impactfacts import FactSource
from watchdog.engine.incidents import Incidents
from watchdog.engine.lastgood import LastGood, ServiceLastGood, healthy_services
from watchdog.engine.opening import apply_triage
from watchdog.engine.paging import Pages
from watchdog.engine.recording import DEFAULT_RETENTION_SECONDS, Recorder
from watchdog.engine.recovery import Recovery
from watchdog.engine.reenable import Reenabler
from watchdog.engine.shadow import Shadow
from watchdog.engine.statusbeat import DEFAULT_HEARTBEAT_SECONDS, StatusBeat
from watchdog.engine.subjects import Subjects
from watchdog.engine.watching import Watch
from watchdog.metrics import Metrics
from watchdog.model import Observation
from watchdog.notify.outbox import Outbox
from watchdog.policy.replay import horizon_for, tick_seconds_for
from watchdog.policy.rules import Evaluator, RuleState, Tick
from watchdog.policy.schema import Policy
from watchdog.policy.triage import rule_key, triage
from watchdog.policy.windows import Windows
from watchdog.probes.base import Probe, build_probes
from watchdog.probes.composeproject import report_empty_projects
from watchdog.probes.docker import DockerProbe, env_client_factory
from watchdog.probes.docker_events import DockerEvents
from watchdog.probes.docker_labels import LabelledProbe
from watchdog.probes.scheduler import ProbeScheduler
from watchdog.reporting import report_failed_rollback
from watchdog.store.journal import Journal
from watchdog.store.records import PAUSED_FLAG

log = structlog.get_logger("watchdog.daemon")


class Daemon:
    """One process's watch over one policy: probes, the decision tick, incidents, snapshots.

    Everything it needs is handed in (journal, action handlers, backends), so
    tests and `watchdog run` wire the same object; `run()` lasts until `stop`.
    """

    def __init__(
        self,
        policy: Policy,
        journal: Journal,
        handlers: Mapping[str, Handler],
        *,
        metrics: Metrics | None = None,
        client: httpx.AsyncClient | None = None,
        config_store: ConfigStore | None = None,
        reverter: Reverter | None = None,
        docker_factory: Callable[[], Any] | None = None,
        database_url: str | None = None,
        previews: Mapping[str, Handler] | None = None,
        preflights: Mapping[str, Preflight] | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        tick_seconds: float | None = None,
        probes: list[Probe] | None = None,
        outbox: Outbox | None = None,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        acting: bool = True,
        health: Health | None = None,
        alerts: AlertIntake | None = None,
        carried: Carried | None = None,
        shared_journal: bool = False,
        observations_retention: float = DEFAULT_RETENTION_SECONDS,
        time_scale: float = 1.0,
    ) -> None:
        self.policy = policy
        self.journal = journal
        self.metrics = metrics or Metrics.for_policy(policy)
        self.clock = clock
        self.client = client or httpx.AsyncClient()
        self._own_client = client is None
        self.tick_seconds = tick_seconds or tick_seconds_for(policy)
        horizon = horizon_for(policy)
        #: False: a follower's engine, which probes and evaluates but never decides or writes.
        self.acting = acting
        self.time_scale = time_scale  # the policy's, already applied: recorded for replay
        #: Set when leadership is lost: steps in flight are abandoned, not waited for.
        self.abandon = False
        self.windows = carried.windows if carried else Windows(horizon=horizon)
        self.evaluator = Evaluator(policy)
        self.states: dict[tuple[str, str], RuleState] = dict(carried.states) if carried else {}
        #: The raw observations journaled for `watchdog replay` (an acting daemon's only).
        self.recorder = Recorder(
            journal,
            {s.name: s.interval for s in policy.signals},
            retention_seconds=observations_retention if acting else 0.0,
        )
        self.queue: asyncio.Queue[list[Observation]] = asyncio.Queue()
        #: `run --shadow-policy`: fed what this engine records; acts on nothing.
        self.shadow: Shadow | None = None
        if probes is None:
            probes = build_probes(
                policy,
                self.client,
                read_rows=config_store.read_rows if config_store is not None else None,
                docker_client_factory=docker_factory,
                database_url=database_url,
                last_good=self._last_good_rows,
            )
        self.scheduler = ProbeScheduler(probes, self.queue)
        executor = Executor(
            journal,
            handlers,
            self.metrics,
            dry_run=dry_run,
            clock=clock,
            previews=previews,
            preflights=preflights,
        )
        self.incidents = Incidents(policy, journal, executor, self.metrics, self.windows, clock)
        self.reenabler = Reenabler(policy, journal, self.incidents, self.windows, clock)
        self.alerts = alerts or AlertIntake(policy, journal, clock)
        #: On a journal shared by sidecars the intake reads the journal anew each tick:
        #: another sidecar may have taken alerts in.
        self._shared_alerts = shared_journal
        self.subjects = Subjects(policy, config_store, self.windows, clock)
        self.incidents.known_subjects = self.subjects.known
        # The Docker orchestrator reverts too; its Compose graph feeds every plan's impact.
        graph = getattr(reverter, "dependency_map", None)
        self.facts = FactSource(policy, journal, self.windows, clock, graph_reader=graph)
        self.incidents.facts = self.facts
        self.outbox = outbox
        self.incidents.on_move = self._incident_moved
        if outbox is not None:
            composer = Pages(outbox)
            self.incidents.compose_page = composer.for_move
            self.incidents.compose_escalation = composer.for_escalation
        if outbox is not None:
            self.incidents.on_page = outbox.queued
            self.incidents.on_human_close = self._closed_by_human
        self.recovery = Recovery(self.incidents)
        self.watch = Watch(self.incidents)
        self.last_good = LastGood(policy, config_store, journal, clock, self.windows)
        self.service_last_good = ServiceLastGood(
            policy.last_good, reverter.record_last_good if reverter else None, clock
        )
        self._docker_probes = [p for p in probes if isinstance(p, DockerProbe)]
        labelled = [p for p in probes if isinstance(p, LabelledProbe)]
        self.incidents.found_protected = lambda: sorted(  # stateful by label or image
            {s for p in labelled for s in p.protected_services()})
        self._docker_factory = docker_factory
        self.docker_events: list[DockerEvents] = []
        self.health = health or Health(started_at=clock(), pid=os.getpid())
        self.health.dry_run = dry_run
        if health is None:
            self.health.stack = policy.stack.name
            self.health.since = self.health.started_at
        self.beat = StatusBeat(  # the status row `watchdog status` reads, with a heartbeat
            policy, journal, clock, dry_run=dry_run, heartbeat_seconds=heartbeat_seconds,
            channels=outbox.channels if outbox is not None else (),
        )

    async def run(self, stop: asyncio.Event, *, grace_seconds: float = 20.0) -> None:
        """Until `stop` is set; then let steps in flight finish for `grace_seconds`
        (none when leadership was lost: `abandon`)."""
        if not self.acting:
            await self._observe(stop)
            return
        recovered = self.recovery.run()
        self._resolve_human_closes()
        self.reenabler.refresh()
        self.recorder.start(self.policy, self.clock(), self.time_scale)
        log.info(
            "daemon_started",
            policy=self.policy.stack.name,
            signals=len(self.policy.signals),
            rules=len(self.policy.rules),
            recovered_incidents=recovered,
            dry_run=self.incidents.executor.dry_run,
        )
        self.beat.beat()
        self.scheduler.start()
        if self._docker_probes:  # a wrong project name is said at once, not silently read
            projects = sorted({p.signal.project for p in self._docker_probes})
            factory = self._docker_factory or env_client_factory(10.0)
            await asyncio.to_thread(report_empty_projects, factory, projects)
        self._follow_docker_events()
        outbox_stop = asyncio.Event()
        outbox = (
            asyncio.create_task(self.outbox.run(outbox_stop), name="outbox")
            if self.outbox is not None
            else None
        )
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:  # one bad tick is logged; the watchdog keeps watching
                    log.exception("tick_failed")
                self.beat.beat()
                await self._until_next_tick(stop)
        finally:
            await self._stop_probes()
            grace = 0.0 if self.abandon else grace_seconds
            await self._finish_in_flight(grace)
            if outbox is not None:  # pages of the last moves go out before the client closes
                outbox_stop.set()
                await asyncio.wait([outbox], timeout=grace)
                outbox.cancel()
            if self._own_client:
                await self.client.aclose()
            if not self.abandon:  # a lost term's writes are refused: nothing to mark
                self.beat.stopped()
            log.info("daemon_stopped")

    async def _observe(self, stop: asyncio.Event) -> None:
        """A follower's watch: probes and rules run, so a take-over starts with warm
        windows and the metrics show the stack; nothing is decided or written."""
        self.scheduler.start()
        self._follow_docker_events()
        try:
            while not stop.is_set():
                try:
                    self.observe(self.clock())
                except Exception:
                    log.exception("observe_failed")
                self.health.last_tick_at = self.clock()
                self.health.ticks += 1
                await self._until_next_tick(stop)
        finally:
            await self._stop_probes()

    async def _until_next_tick(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.tick_seconds)

    async def _stop_probes(self) -> None:
        self.scheduler.shutdown()
        for events in self.docker_events:
            await asyncio.to_thread(events.stop)

    def observe(self, now: float) -> Tick:
        """Probes and alerts through the rules: the part of a tick that decides nothing."""
        observed: list[Observation] = []
        while not self.queue.empty():
            observed.extend(self.queue.get_nowait())
        if self._shared_alerts:
            self.alerts.reload(now)
        observed.extend(self.alerts.observations(now))
        self.record(observed)
        self.recorder.add(observed)
        if self.shadow is not None:
            self.shadow.feed(observed)
        self.record(self.evaluator.derive(self.windows, now))
        result = self.evaluator.evaluate(self.windows, self.states, now)
        self.states = result.states
        return result

    def carried(self) -> Carried:
        """What the next term's engine inherits: the signal windows, and the clocks of the
        breaches still counting their `for`. A rule that already fired starts afresh, as
        after a restart: a follower never saw the leader close its incident (which resets
        it), so carried as fired it would reopen what was just resolved."""
        states = {k: RuleState(value=s.value) if s.active else s for k, s in self.states.items()}
        return Carried(self.windows, states)

    def _incident_moved(
        self, incident_id: int, from_state: str, to_state: str, reason: str
    ) -> None:
        """After a committed move: report failed rollbacks to Sentry."""
        if from_state == "failed" and to_state == "escalated":
            report_failed_rollback(incident_id, reason)

    def _closed_by_human(self, incident_id: int, was: str, state: str) -> None:
        """Resolve at the vendors what a human ended: the page says who and why.

        Written after the close (the close is the CLI's or the API's transaction);
        a crash before it is made good at the next start (`_resolve_human_closes`).
        """
        if self.outbox is None:
            return
        if any(d.event == "resolve" for d in self.incidents.journal.deliveries(incident_id)):
            return  # the start-up sweep queued it already
        try:
            self.outbox.incident_moved(incident_id, was, state, "ended by a human")
        except Exception:
            log.exception("page_not_queued", incident=incident_id, state=state)

    def _resolve_human_closes(self) -> None:
        """At start: queue the resolve pages owed for closes no running daemon paged about."""
        if self.outbox is None:
            return
        for incident_id, was in closes_to_resolve(self.incidents.journal):
            log.info("human_close_resolve_queued", incident=incident_id, was=was)
            self._closed_by_human(incident_id, was, "closed")

    def _follow_docker_events(self) -> None:
        """Container deaths and health changes are seen at once, not at the next poll."""
        if not self._docker_probes:
            return
        factory = self._docker_factory or env_client_factory(10.0)
        projects = {p.signal.project for p in self._docker_probes}
        for project in sorted(projects):
            probes = [p for p in self._docker_probes if p.signal.project == project]
            events = DockerEvents(probes, self.queue, asyncio.get_running_loop(), factory, project)
            events.start()
            self.docker_events.append(events)

    def _last_good_rows(self, service: str) -> list[dict[str, Any]] | None:
        """The service's last known good record: what a `changed` signal compares against."""
        found = self.journal.latest_snapshot(LAST_GOOD_TABLE.format(service=service))
        return None if found is None else list(found.rows)

    async def _finish_in_flight(self, grace_seconds: float) -> None:
        tasks = list(self.incidents.tasks.values())
        if not tasks:
            return
        log.info("waiting_for_steps_in_flight", count=len(tasks), grace_seconds=grace_seconds)
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()  # the step stays 'started' in the journal: recovery decides
        if pending:
            await asyncio.wait(pending, timeout=2)

    def record(self, observations: list[Observation]) -> None:
        for observation in observations:
            self.windows.record(observation)
            self.health.observations += 1
            if observation.error is not None:
                self.metrics.probe_errors.labels(observation.signal).inc()
            if observation.duration_seconds:
                self.metrics.probe_duration.labels(observation.signal).observe(
                    observation.duration_seconds
                )
            if observation.value is not None:
                self.metrics.signal_value.labels(observation.signal, observation.series).set(
                    observation.value
                )

    async def tick(self) -> None:
        began = time.perf_counter()
        now = self.clock()
        result = self.observe(now)
        for finding in result.fired:
            log.warning(
                "finding_fired", rule=finding.rule, series=finding.series, reason=finding.reason
            )
        for finding in result.cleared:
            log.info(
                "finding_cleared", rule=finding.rule, series=finding.series, reason=finding.reason
            )
        await self.subjects.before_triage(result.active, self.incidents.views)
        decisions = triage(result.active, self.incidents.open_views(), result.holding)
        apply_triage(self.incidents, decisions)
        if self.shadow is not None:  # beside the live decisions, before anything acts on them
            self.shadow.tick(now, decisions, self.incidents.views)
        self.watch.tick(result.active, self.states)
        self.recovery.tick()
        closed_findings = self.incidents.take_closed_findings()
        for closed in closed_findings:
            self.states[rule_key(closed)] = RuleState()
        if closed_findings:
            self.alerts.settle(closed_findings, now)
            self.reenabler.refresh()
        self.reenabler.tick()
        self.facts.refresh_due()
        paused = self.journal.get_flag(PAUSED_FLAG) == "1"
        self.metrics.paused.set(1 if paused else 0)
        self.metrics.followups_overdue.set(self.journal.overdue_followups(now))
        views = list(self.incidents.views.values())
        await self.last_good.tick(
            result.active, self.states, views, self.reenabler.pending.values()
        )
        await self.service_last_good.tick(healthy_services(self.policy, self.windows, now), views)
        self.recorder.flush(now)
        self.health.last_tick_at = now
        self.health.ticks += 1
        self.health.paused = paused
        self.health.open_incidents = len(self.incidents.views)
        self.metrics.tick_duration.observe(time.perf_counter() - began)
