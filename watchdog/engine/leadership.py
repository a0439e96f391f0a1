"""Terms of leadership: the engine that acts while this sidecar leads, one that watches otherwise.

Several sidecars on one PostgreSQL journal claim the stack's lease every
`lease / 4` seconds (`watchdog.store.pg_lease`). While this one follows, its engine
probes and evaluates but decides nothing (`Daemon(acting=False)`). When it takes the
lease it stops that engine and builds an acting one, on a journal handle fenced by
the new token, handing over the follower's windows and rule clocks: the new engine
recovers the open incidents exactly as a restarted daemon does (resume is a new
decision: guards and authority apply anew, a non-idempotent step left in flight
escalates). When it loses the lease (another holds it, the database refused a write
as fenced, or no renewal succeeded before the local deadline), it abandons the acting
engine at once, without waiting for steps in flight (their writes would be refused),
and follows again.

The local deadline is what stops a leader cut from its database: a renewal started at
monotonic time t extends the lease in the database no earlier than t, so this side
stops acting at t + lease − margin, before anyone else can take over at t + lease.
Claims run in a worker thread of their own; one hung on a dead connection is waited
for no longer than a claim interval while the deadline keeps counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import structlog

from watchdog.engine.alerts import AlertIntake
from watchdog.engine.daemon import Daemon
from watchdog.engine.health import Carried, Health
from watchdog.metrics import Metrics
from watchdog.model import Alert
from watchdog.store.pg_lease import Term

log = structlog.get_logger("watchdog.leadership")

#: How long before the database's expiry a leader stops acting on its own.
MARGIN_FRACTION = 0.25
RELEASE_TIMEOUT_S = 3.0


class Claims(Protocol):
    seconds: float
    instance: str

    def claim(self) -> Term: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


#: Builds an engine: acting on a journal fenced by `token`, or watching (`token` None).
MakeEngine = Callable[[int | None, Carried | None], Daemon]


class Terms:
    """Leads or follows, term by term, until `stop`; hands the lease over on a clean stop."""

    def __init__(
        self,
        lease: Claims,
        make_engine: MakeEngine,
        health: Health,
        metrics: Metrics,
        *,
        on_unclean: Callable[[Term], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.make_engine = make_engine
        self.health = health
        self.metrics = metrics
        self.on_unclean = on_unclean
        self.clock = clock
        self.monotonic = monotonic
        self.interval = lease.seconds / 4
        self.margin = lease.seconds * MARGIN_FRACTION
        self._deadline = 0.0
        self._engine: Daemon | None = None
        self._task: asyncio.Task[None] | None = None
        self._engine_stop = asyncio.Event()
        self._claims = ThreadPoolExecutor(1, thread_name_prefix="lease")

    @property
    def engine(self) -> Daemon | None:
        return self._engine

    async def run(self, stop: asyncio.Event, *, grace_seconds: float = 20.0) -> None:
        self.health.instance = self.lease.instance
        self._start(self.make_engine(None, None))
        self._set_role(None)
        pending: asyncio.Future[Term] | None = None
        try:
            while not stop.is_set():
                started = self.monotonic()
                if pending is None:
                    pending = asyncio.wrap_future(self._claims.submit(self.lease.claim))
                done, _ = await asyncio.wait({pending}, timeout=self.interval)
                term: Term | None = None
                if pending in done:
                    term = self._answer(pending)
                    pending = None
                await self._decide(term, started)
                left = self.interval - (self.monotonic() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, left))
        finally:
            await self._finish(grace_seconds)

    def _answer(self, pending: asyncio.Future[Term]) -> Term | None:
        try:
            return pending.result()
        except Exception as error:  # the database is away: the deadline decides
            log.warning("lease_unanswered", error=str(error))
            return None

    async def _decide(self, term: Term | None, started: float) -> None:
        engine = self._engine
        assert engine is not None
        if term is not None:
            self.health.leader = term.instance
            if term.leading:
                self._deadline = started + self.lease.seconds - self.margin
        if engine.acting:
            why = self._lost(engine, term)
            if why is not None:
                await self._step_down(engine, why)
        if self._engine is not None and not self._engine.acting and term and term.leading:
            await self._take_up(term)

    def _lost(self, engine: Daemon, term: Term | None) -> str | None:
        fenced = getattr(engine.journal, "fenced", None)
        if fenced:
            return str(fenced)
        if term is not None and not term.leading:
            return f"{term.instance} leads at token {term.token}"
        if term is not None and term.began:
            return f"this sidecar's lease lapsed; it leads again at token {term.token}"
        if self.monotonic() >= self._deadline:
            return "no renewal of the lease reached the journal in time"
        return None

    async def _take_up(self, term: Term) -> None:
        carried = await self._stop_engine(abandon=False)
        self._start(self.make_engine(term.token, carried))
        self._set_role(term)
        self.metrics.leadership_changes.inc()
        log.warning(
            "leadership_taken", instance=self.lease.instance, term=term.token,
            previous=term.previous, clean=term.clean,
        )
        if term.began and not term.clean and self.on_unclean is not None:
            try:
                await self.on_unclean(term)
            except Exception:
                log.exception("takeover_not_paged", term=term.token)

    async def _step_down(self, engine: Daemon, why: str) -> None:
        log.warning("leadership_lost", instance=self.lease.instance, term=self.health.token,
                    reason=why)
        carried = await self._stop_engine(abandon=True)
        self._start(self.make_engine(None, carried))
        self._set_role(None)
        self.metrics.leadership_changes.inc()

    def _start(self, engine: Daemon) -> None:
        self._engine = engine
        self._engine_stop = asyncio.Event()
        self._task = asyncio.create_task(engine.run(self._engine_stop), name="engine")

    async def _stop_engine(self, *, abandon: bool, grace_seconds: float = 20.0) -> Carried | None:
        engine, task = self._engine, self._task
        if engine is None or task is None:
            return None
        engine.abandon = abandon
        self._engine_stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds + 5)
        except Exception:
            log.exception("engine_stop_failed")
        if engine.acting:
            with contextlib.suppress(Exception):
                engine.journal.close()
        self._engine = self._task = None
        return engine.carried()

    def _set_role(self, term: Term | None) -> None:
        leading = term is not None
        self.health.role = "leader" if leading else "follower"
        self.health.token = term.token if term is not None else None
        self.health.since = term.since if term is not None else None
        if term is not None:
            self.health.leader = self.lease.instance
        self.metrics.leader.set(1 if leading else 0)

    async def _finish(self, grace_seconds: float) -> None:
        """A clean stop: steps in flight finish, then the lease is handed over."""
        engine = self._engine
        leading = engine is not None and engine.acting
        await self._stop_engine(abandon=False, grace_seconds=grace_seconds)
        if leading:
            release = asyncio.wrap_future(self._claims.submit(self.lease.release))
            try:
                await asyncio.wait_for(release, RELEASE_TIMEOUT_S)
                log.info("leadership_handed_over", instance=self.lease.instance)
            except Exception as error:
                log.warning("lease_not_released", error=str(error))
        self.metrics.leader.set(0)
        self._claims.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.lease.close()


LEADER_LOST_ALERT = "WatchdogLeaderLost"


async def page_unclean_takeover(alerts: AlertIntake, stack: str, instance: str, term: Term) -> None:
    """An unclean take-over is journaled as a firing alert of this sidecar's own: the
    policy's `WatchdogLeaderLost` rule turns it into a P2 incident and its page, the way
    any alert becomes one (policy is data: where it routes and how loud is the policy's)."""
    previous = term.previous or "the previous leader"
    summary = (
        f"{previous} stopped leading {stack} without handing over (dead, frozen or cut from "
        f"the journal); {instance} took over at token {term.token} and resumed its open "
        "incidents"
    )
    alert = Alert(
        fingerprint=f"watchdog-leader-lost:{stack}:{term.token}",
        status="firing",
        starts_at=term.since if term.since is not None else 0.0,
        ends_at=None,
        labels=tuple(sorted({"alertname": LEADER_LOST_ALERT, "instance": previous,
                             "stack": stack, "taken_by": instance}.items())),
        annotations=(("summary", summary),),
    )
    await alerts.receive([alert], group_key=f"watchdog:{stack}", receiver="watchdog", truncated=0)
    log.warning("takeover_paged", previous=previous, term=term.token)
