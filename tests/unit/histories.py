"""Random histories: the real daemon, fakes at its edges, and the moves a history makes.

`History` is the machine both the hypothesis test (`test_histories.py`) and the
bench (`bench/histories.py`) drive: each public method is one move of the world
or of its people (a fault comes or goes, time passes, someone pauses, approves,
rejects or closes, an action starts failing, the daemon crashes and comes back,
maybe in dry-run), and `check()` returns the invariants' violations in words
after each. `finish()` ends a history as the issue says: the faults stop, the
hung actions answer, a human lifts the pause, time passes; then every incident
must be final.

The daemon is `watchdog.engine.daemon.Daemon` itself, with no probes (the world
feeds its windows), a real SQLite journal in a temporary directory, the fake
handlers of `history_world`, and an outbox whose channels only compose (a page
is its outbox rows, written in the move's transaction; nothing is sent). Its
asyncio parts run on an event loop whose clock is the history's, so a step's
timeout expires when the history lets time pass, and a crash is the loop
thrown away with whatever was in flight: the journal keeps the step 'started',
and the next daemon opens the same file anew.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.unit.helpers import songnodes
from tests.unit.history_checks import Checker
from tests.unit.history_world import FAULTS, ROSTER, World
from watchdog.engine.approvals import Refused, record_decision
from watchdog.engine.daemon import Daemon
from watchdog.metrics import Metrics
from watchdog.notify.outbox import Outbox
from watchdog.notify.page import Page
from watchdog.notify.retry import RetryPolicy
from watchdog.people import Person
from watchdog.policy.schema import Policy
from watchdog.store.codec import plan_digest
from watchdog.store.journal import Journal, open_journal
from watchdog.store.records import PAUSED_FLAG

#: How much time one `advance` may let pass, and how often the daemon ticks meanwhile.
DURATIONS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 600.0, 1800.0)
TICK = 10.0
#: Ticks per `advance` at most: a long wait is read in coarser ticks (rules need two readings).
TICKS = 12
#: `finish`: how long time passes, at most, for every incident to become final.
FINISH_LIMIT = 4 * 3600.0
FINISH_TICK = 120.0



class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is the history's clock: timeouts expire when time passes."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._fake = clock

    def time(self) -> float:
        return self._fake.now


@dataclass(frozen=True, slots=True)
class QuietChannel:
    """A pager channel that composes a body and is never sent to (the outbox never runs)."""

    name: str

    def body(self, page: Page) -> dict[str, Any]:
        return {"dedup_key": page.dedup_key, "event": page.event, "state": page.state}

    def request(self, delivery: Any) -> Any:
        raise AssertionError("a history never sends pages")

    def secrets(self) -> list[str]:
        return []


CHANNELS = {n: QuietChannel(n) for n in ("pagerduty", "opsgenie", "slack", "webhook")}


@functools.cache
def shared_client() -> httpx.AsyncClient:
    """One idle HTTP client for every daemon (none of them makes a request)."""
    return httpx.AsyncClient()


@functools.cache
def history_policy(actions_per_hour: int = 4) -> Policy:
    """songnodes.yaml, with an hourly budget small enough for a history to reach it."""
    policy = songnodes()
    guards = policy.guards.model_copy(update={"actions_per_hour": actions_per_hour})
    return policy.model_copy(update={"guards": guards})


class History:
    """One random history: a world, a daemon on a journal, and the checks after each move."""

    def __init__(self, policy: Policy | None = None, *, start: float = 1_700_000_000.0) -> None:
        self.policy = policy or history_policy()
        self.clock = Clock(start)
        self.world = World(self.clock)
        memory = "/dev/shm" if Path("/dev/shm").is_dir() else None  # fsync costs nothing there
        self.folder = Path(tempfile.mkdtemp(prefix="history-", dir=memory))
        self.path = self.folder / "journal.db"
        self.generation = 0
        self.loop: FakeTimeLoop | None = None
        self.journal: Journal | None = None
        self.daemon: Daemon | None = None
        self.dry_run = False
        self.steps = 0
        #: Ticks `finish` let pass before every incident was final.
        self.finish_ticks = 0
        self.refused = 0
        self.checker = Checker(self.policy, self.world)
        self.boot(dry_run=False)

    # ---- the daemon's life ------------------------------------------------------

    def boot(self, *, dry_run: bool) -> None:
        """Start a daemon on the journal file, as `watchdog run` after a crash would."""
        self._crash()
        self.generation += 1
        self.dry_run = dry_run
        self.loop = FakeTimeLoop(self.clock)
        self.journal = journal = open_journal(str(self.path))
        metrics = Metrics.for_policy(self.policy)
        outbox = Outbox(
            spec=self.policy.notify,
            stack=self.policy.stack.name,
            journal=journal,
            channels=CHANNELS,
            metrics=metrics,
            client=shared_client(),
            clock=self.clock,
            public_url="http://127.0.0.1:9",
            retry=RetryPolicy(base_seconds=1, cap_seconds=5, timeout_seconds=5, max_attempts=3),
            dry_run=dry_run,
        )
        handlers = self.world.handlers(journal, self.generation, dry_run=dry_run)
        daemon = Daemon(
            self.policy,
            journal,
            handlers,
            metrics=metrics,
            client=shared_client(),
            dry_run=dry_run,
            clock=self.clock,
            probes=[],
            outbox=outbox,
        )
        self.daemon = daemon
        self._run(self._start(daemon))

    async def _start(self, daemon: Daemon) -> None:
        daemon.recovery.run()
        daemon.reenabler.refresh()
        await self._settle(daemon)

    def _crash(self) -> None:
        """Throw the daemon away mid-flight: nothing it had started runs another line."""
        if self.loop is not None:
            for task in asyncio.all_tasks(self.loop):
                task._log_destroy_pending = False  # type: ignore[attr-defined]
                task.get_coro().close()
            self.loop.close()
        if self.journal is not None:
            self.journal.close()
        self.loop = self.journal = self.daemon = None
        self.world.hung = 0

    def close(self) -> None:
        self._crash()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        assert self.loop is not None
        self.loop.run_until_complete(work)

    async def _settle(self, daemon: Daemon) -> None:
        """Let the plans the tick started run until they finish or hang."""
        quiet = 0
        for _ in range(2000):
            await asyncio.sleep(0)
            tasks = daemon.incidents.tasks
            quiet = quiet + 1 if not tasks or self.world.hung >= len(tasks) else 0
            if quiet >= 2:
                return
        raise AssertionError(f"plans still running after 2000 rounds: {list(tasks)}")

    async def _tick(self, daemon: Daemon) -> None:
        daemon.record(self.world.observations(self.clock.now))
        await self._settle(daemon)  # timeouts that expired with the time that passed
        await daemon.tick()
        await self._settle(daemon)

    def _journal(self) -> Journal:
        assert self.journal is not None
        return self.journal

    # ---- the moves of a history --------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Time passes; the probes read the world (unless blind) and the daemon ticks."""
        assert self.daemon is not None
        end = self.clock.now + seconds
        tick = max(TICK, seconds / TICKS)
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + tick)
            self._run(self._tick(self.daemon))

    def inject(self, fault: str, *, transient: bool) -> None:
        """A fault starts; a transient one ends when the right action succeeds."""
        self.world.faults[fault] = transient

    def clear(self, fault: str) -> None:
        self.world.faults.pop(fault, None)

    def flap(self, fault: str, seconds: float) -> None:
        """The fault comes and goes, `seconds` each way, three times."""
        for _ in range(3):
            self.inject(fault, transient=False)
            self.advance(seconds)
            self.clear(fault)
            self.advance(seconds)

    def blind(self, on: bool) -> None:
        """The probes stop (or start again) reading: the evidence goes stale."""
        self.world.blind = on

    def pause(self, on: bool) -> None:
        self._journal().set_flag(PAUSED_FLAG, "1" if on else "0", at=self.clock.now)

    def flaky(self, action: str, how: str) -> None:
        """`how` is "fail", "hang" or "ok"."""
        self.world.failing.discard(action)
        self.world.hanging.discard(action)
        if how == "fail":
            self.world.failing.add(action)
        elif how == "hang":
            self.world.hanging.add(action)

    def release(self) -> None:
        """Hung actions answer now (then fail or succeed as they are told)."""
        self.world.answer_hung()
        assert self.daemon is not None
        self._run(self._settle(self.daemon))

    def restart(self, *, dry_run: bool) -> None:
        self.boot(dry_run=dry_run)

    def _pick(self, which: int) -> int | None:
        """An incident to act on: every other pick one that waits for approval, if any,
        so votes reach plans that can then run (and the approval invariant is exercised)."""
        incidents = self._journal().list_incidents(limit=20)
        waiting = [i for i in incidents if i.state in ("awaiting_approval", "approved")]
        if waiting and which % 2 == 0:
            incidents = waiting
        if not incidents:
            return None
        return incidents[which % len(incidents)].id

    def vote(self, which: int, person: str, decision: str) -> None:
        """A person approves or rejects, through the same checks as the API and CLI."""
        incident = self._pick(which)
        if incident is None:
            return
        journal = self._journal()
        plan = journal.plan(incident)
        if plan is not None:
            self.checker.shown(incident, plan_digest(plan))
        try:
            record_decision(
                journal,
                incident_id=incident,
                person=Person(person, ROSTER[person], ""),
                decision=decision,
                comment="from a random history",
                at=self.clock.now,
            )
        except Refused:
            self.refused += 1

    def stale_vote(self, which: int, person: str) -> None:
        """An approval of a plan the incident no longer has (or never had), with the
        plan's role: a page opened before a re-plan, approved late."""
        incident = self._pick(which)
        if incident is None:
            return
        journal = self._journal()
        plan = journal.plan(incident)
        role = plan.authorization.role if plan is not None else None
        current = plan_digest(plan) if plan is not None else ""
        older = [d for d in self.checker.digests.get(incident, []) if d != current]
        journal.record_approval(
            incident, at=self.clock.now, person=person, role=role or "oncall",
            decision="approve", comment="approving the plan I was shown",
            plan_digest=older[-1] if older else "0" * 16,
        )

    def wrong_role_vote(self, which: int, person: str) -> None:
        """An approval journaled under a role the plan does not ask for."""
        incident = self._pick(which)
        if incident is None:
            return
        journal = self._journal()
        plan = journal.plan(incident)
        needed = plan.authorization.role if plan is not None else None
        role = next(r for r in ("team", "lead", "oncall", "viewer") if r != needed)
        journal.record_approval(
            incident, at=self.clock.now, person=person, role=role, decision="approve",
            comment="not my call",
        )

    def close_by_human(self, which: int) -> None:
        incident = self._pick(which)
        if incident is None:
            return
        try:
            self._journal().close_by_human(
                incident, person="olga", role="oncall", comment="handled by hand",
                at=self.clock.now,
            )
        except ValueError:
            self.refused += 1
        else:
            self.checker.closed_by_human.add(incident)

    # ---- checks -----------------------------------------------------------------

    def check(self) -> dict[str, list[str]]:
        """The violations of every invariant since the last check."""
        self.steps += 1
        return self.checker.check(self._journal(), self.clock.now)

    def finish(self) -> dict[str, list[str]]:
        """Faults stop, hung actions answer, the pause is lifted, time passes: all final?"""
        world = self.world
        world.faults.clear()
        world.failing.clear()
        world.hanging.clear()
        world.blind = False
        self.release()
        self.pause(False)
        found = self.check()
        deadline = self.clock.now + FINISH_LIMIT
        while self._journal().open_incidents() and self.clock.now < deadline:
            self.advance(FINISH_TICK)
            self.finish_ticks += 1
            for name, violations in self.check().items():
                found.setdefault(name, []).extend(violations)
        still = [
            f"incident {i.id} ({i.scenario}) still {i.state} after "
            f"{FINISH_LIMIT / 3600:g} h without faults"
            for i in self._journal().open_incidents()
        ]
        found.setdefault("every incident final", []).extend(still)
        return found


FAULT_NAMES = tuple(FAULTS)


PEOPLE = tuple(ROSTER)
