"""Terms of leadership, claim by claim: when a sidecar takes up the lead and when it lets go.

`Terms` (watchdog/engine/leadership.py) with a scripted lease and stand-in engines,
on a clock that advances one claim interval per claim: each case is the sequence of
what the database answered, and the assertions are which engines ran, acting or
watching, and what /healthz and the metrics say. The real lease, the database's fence
and real daemons are tests/integration/test_pg_journal.py and test_ha_failover.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from watchdog.engine.daemon import Daemon
from watchdog.engine.health import Carried, Health
from watchdog.engine.leadership import Terms
from watchdog.metrics import Metrics
from watchdog.policy.windows import Windows
from watchdog.store.pg_base import JournalUnavailable
from watchdog.store.pg_lease import Term

SECONDS = 4.0
AWAY = JournalUnavailable("the journal is away")


def follow(leader: str = "wd-b", token: int = 1) -> Term:
    return Term(False, token, leader, 100.0)


def take(token: int, *, clean: bool = True, previous: str | None = None) -> Term:
    return Term(True, token, "wd-a", 200.0, began=True, clean=clean, previous=previous)


def renew(token: int) -> Term:
    return Term(True, token, "wd-a", 200.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedLease:
    """Answers each claim from the script (a Term or an exception), then stops the run."""

    seconds = SECONDS
    instance = "wd-a"

    def __init__(self, script: list[Term | Exception], clock: FakeClock,
                 stop: asyncio.Event) -> None:
        self.script = list(script)
        self.clock = clock
        self.stop = stop
        self.released = 0

    def claim(self) -> Term:
        self.clock.now += SECONDS / 4
        answer = self.script.pop(0)
        if not self.script:
            self.stop.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def release(self) -> None:
        self.released += 1

    def close(self) -> None:
        pass


class FakeJournal:
    def __init__(self) -> None:
        self.fenced: str | None = None
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeEngine:
    """What Terms uses of a Daemon: run until stopped, `abandon`, `carried`, its journal."""

    def __init__(self, token: int | None, carried: Carried | None) -> None:
        self.token = token
        self.acting = token is not None
        self.inherited = carried
        self.abandon = False
        self.journal = FakeJournal()
        self.stopped_abandoning: bool | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stopped_abandoning = self.abandon

    def carried(self) -> Carried:
        return Carried(Windows(horizon=60.0), {})


def run_terms(
    script: list[Term | Exception], *, on_claim: Callable[[list[FakeEngine]], None] | None = None
) -> tuple[list[FakeEngine], Health, Metrics, ScriptedLease, list[Term]]:
    engines: list[FakeEngine] = []
    paged: list[Term] = []
    health = Health(started_at=0.0)
    metrics = Metrics()

    def make(token: int | None, carried: Carried | None) -> Daemon:
        engine = FakeEngine(token, carried)
        engines.append(engine)
        return cast(Daemon, engine)

    async def page(term: Term) -> None:
        paged.append(term)

    async def main() -> ScriptedLease:
        stop = asyncio.Event()
        clock = FakeClock()
        lease = ScriptedLease(script, clock, stop)
        if on_claim is not None:
            claim = lease.claim

            def claimed() -> Term:
                on_claim(engines)
                return claim()

            lease.claim = claimed  # type: ignore[method-assign]
        terms = Terms(lease, make, health, metrics, on_unclean=page, monotonic=clock)
        await asyncio.wait_for(terms.run(stop), 10)
        return lease

    lease = asyncio.run(main())
    return engines, health, metrics, lease, paged


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def kinds(engines: list[FakeEngine]) -> list[Any]:
    return [engine.token for engine in engines]


def test_a_follower_takes_up_an_expired_lease_with_warm_windows_and_pages_once() -> None:
    engines, health, metrics, lease, paged = run_terms(
        [follow(), follow(), take(2, clean=False, previous="wd-b"), renew(2), renew(2)])
    assert kinds(engines) == [None, 2]  # watched, then acted at token 2
    assert engines[1].inherited is not None  # the follower's windows and rule clocks
    assert engines[0].stopped_abandoning is False
    assert [t.token for t in paged] == [2]
    assert (health.role, health.token, health.since, health.leader) == ("leader", 2, 200.0,
                                                                        "wd-a")
    assert lease.released == 1  # the clean stop at the end hands over
    assert engines[1].stopped_abandoning is False  # ... after letting steps finish
    assert sample(metrics, "watchdog_leader") == 0  # stopped
    assert sample(metrics, "watchdog_leadership_changes_total") == 1


def test_a_clean_hand_over_is_not_paged() -> None:
    engines, _, _, _, paged = run_terms([take(3, clean=True, previous="wd-b"), renew(3)])
    assert kinds(engines) == [None, 3] and paged == []


def test_a_leader_that_sees_another_leading_abandons_its_engine_at_once() -> None:
    engines, health, metrics, lease, _ = run_terms([take(1), follow("wd-b", 2), follow("wd-b", 2)])
    assert kinds(engines) == [None, 1, None]
    assert engines[1].stopped_abandoning is True  # steps in flight are not waited for
    assert engines[1].journal.closed
    assert (health.role, health.token, health.leader) == ("follower", None, "wd-b")
    assert lease.released == 0  # nothing of its own to hand over
    assert sample(metrics, "watchdog_leadership_changes_total") == 2


def test_a_leader_cut_from_the_journal_steps_down_before_its_lease_ends() -> None:
    # Each claim advances the clock a quarter lease (1 s of 4). The last renewal that
    # answered was sent at t=0 and ran at t=1: the database keeps the lease until 5;
    # this side lets go at 0 + 4 - 1 = 3, with no answer from the database at all.
    seen: list[list[int | None]] = []
    engines, health, _, _, _ = run_terms(
        [take(1), AWAY, AWAY, AWAY], on_claim=lambda engines: seen.append(kinds(engines)))
    assert kinds(engines) == [None, 1, None]
    assert engines[1].stopped_abandoning is True
    assert seen == [[None], [None, 1], [None, 1], [None, 1, None]]
    assert health.role == "follower"


def test_a_write_refused_as_fenced_ends_the_term_at_the_next_claim() -> None:
    def fence(engines: list[FakeEngine]) -> None:
        if len(engines) == 2:
            engines[1].journal.fenced = "fenced: wd-b leads it at token 2"

    engines, _, _, _, _ = run_terms([take(1), renew(1), renew(1)], on_claim=fence)
    assert kinds(engines)[:3] == [None, 1, None]
    assert engines[1].stopped_abandoning is True


def test_a_lapsed_lease_taken_again_is_a_new_term_with_a_new_engine() -> None:
    engines, health, _, _, paged = run_terms([take(1), take(2), renew(2)])
    assert kinds(engines) == [None, 1, None, 2]  # never two terms in one engine
    assert health.token == 2 and paged == []
