"""The invariants of a random history, each a function that returns its violations in words.

They judge the world's log of calls (each with the journal's facts at the
instant it was made) and the journal itself; none trusts the engine's own
accounting where the world can say: the budget is counted from the plans that
acted, not from the journal's `actions` rows. A *run* is one rung's plan of one
incident acting; its first call in a daemon's life is a start (a new plan, or a
resume after a restart), which is where the guards and the authority apply.

Pages: the daemon has an outbox whose channels compose and never send, so "a
human was paged" means a trigger row in the outbox (pending or sent, not a
dry run's "would page") written with or after the move, for that incident.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from tests.unit.history_world import ROSTER, SERVICE_ACTIONS, Call, World
from watchdog.policy.guards import backoff
from watchdog.policy.schema import Policy
from watchdog.store.journal import Journal

HOUR = 3600.0
INVARIANTS = (
    "hourly budget",
    "protected service untouched",
    "nothing acts while paused",
    "nothing acts in dry-run",
    "nothing acts on stale evidence",
    "no restart faster than the backoff",
    "an approval authorises the plan shown",
    "nothing left down unpaged",
    "every incident final",
)


class Checker:
    """Keeps what the checks need between steps; `check` returns new violations by name."""

    def __init__(self, policy: Policy, world: World) -> None:
        self.policy = policy
        self.world = world
        self.max_age = max((s.staleness_limit() for s in policy.signals), default=60.0)
        self.seen = 0
        self.runs: dict[tuple[int, int], float] = {}  # run -> when it first acted
        self.auto_runs: list[float] = []
        self.generation_runs: set[tuple[int, int, int]] = set()
        #: service -> auto runs that acted on it: (start, run)
        self.service_runs: dict[str, list[tuple[float, tuple[int, int]]]] = defaultdict(list)
        self.digests: dict[int, list[str]] = defaultdict(list)
        self.closed_by_human: set[int] = set()
        self.reported_down: set[tuple[str, int, float]] = set()

    def shown(self, incident: int, digest: str) -> None:
        """A person was shown this plan of the incident (before deciding on it)."""
        if digest not in self.digests[incident]:
            self.digests[incident].append(digest)

    def check(self, journal: Journal, now: float) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        calls = self.world.calls[self.seen :]
        self.seen = len(self.world.calls)
        for call in calls:
            for name, violation in self._call(call):
                found.setdefault(name, []).append(violation)
        down = left_down_unpaged(self, journal)
        if down:
            found["nothing left down unpaged"] = down
        return found

    def _call(self, call: Call) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        first_ever = call.run not in self.runs
        if first_ever:
            self.runs[call.run] = call.at
        start = (call.generation, *call.run) not in self.generation_runs
        self.generation_runs.add((call.generation, *call.run))
        checks: list[tuple[str, Callable[[], str | None]]] = [
            ("nothing acts in dry-run", lambda: dry_run(call)),
            ("protected service untouched", lambda: protected(self.policy, call)),
        ]
        if start:
            checks += [
                ("nothing acts while paused", lambda: paused(call)),
                ("nothing acts on stale evidence", lambda: stale(call, self.max_age)),
                ("an approval authorises the plan shown", lambda: approved(call)),
            ]
        if first_ever and call.auto:
            checks.append(("hourly budget", lambda: budget(self, call)))
        if call.auto and call.action in SERVICE_ACTIONS:
            checks.append(("no restart faster than the backoff", lambda: too_soon(self, call)))
        for name, check in checks:
            violation = check()
            if violation is not None:
                out.append((name, violation))
        return out


def _who(call: Call) -> str:
    return f"{call.action} {dict(call.params)} for incident {call.incident} (rung {call.rung})"


def dry_run(call: Call) -> str | None:
    if call.dry_run:
        return f"{_who(call)} was carried out by a daemon in dry-run"
    return None


def protected(policy: Policy, call: Call) -> str | None:
    touched = call.names() & set(policy.stack.protected_services)
    if touched and call.auto:
        return f"{_who(call)} touched protected {', '.join(sorted(touched))} automatically"
    return None


def paused(call: Call) -> str | None:
    if call.paused:
        return f"{_who(call)} started while automatic actions were paused"
    return None


def stale(call: Call, max_age: float) -> str | None:
    if call.auto and call.evidence_age > max_age:
        return (
            f"{_who(call)} started on evidence {call.evidence_age:.0f} s old "
            f"(limit {max_age:.0f} s)"
        )
    return None


def approved(call: Call) -> str | None:
    """A plan that needs people runs only with enough votes for this very plan, since it
    last asked, from people who hold the role, and no rejection among them."""
    if call.auto:
        return None
    if call.role is None:
        return f"{_who(call)} ran a plan nobody may authorise"
    since = call.awaiting_since if call.awaiting_since is not None else float("inf")
    counted = [
        a
        for a in call.approvals
        if a.plan_digest == call.plan_digest and a.at >= since and a.role == call.role
    ]
    if any(a.decision == "reject" for a in counted):
        return f"{_who(call)} ran although it was rejected"
    approvers = {
        a.person
        for a in counted
        if a.decision == "approve" and call.role in ROSTER.get(a.person, ())
    }
    if len(approvers) < call.quorum:
        return (
            f"{_who(call)} ran with {len(approvers)} of {call.quorum} approvals of plan "
            f"{call.plan_digest} by a {call.role} since it asked "
            f"(votes: {[(a.person, a.role, a.decision, a.plan_digest) for a in call.approvals]})"
        )
    return None


def budget(checker: Checker, call: Call) -> str | None:
    checker.auto_runs.append(call.at)
    within = [t for t in checker.auto_runs if t > call.at - HOUR]
    limit = checker.policy.guards.actions_per_hour
    if len(within) > limit:
        return f"{_who(call)} is the {len(within)}th automatic plan within an hour (limit {limit})"
    return None


def too_soon(checker: Checker, call: Call) -> str | None:
    """An automatic plan's first rung acts on a service no sooner than the backoff after
    the last automatic plan that did (the ladder's next rung is the same remediation)."""
    start = checker.runs[call.run]
    violation = None
    for service in call.names():
        runs = checker.service_runs[service]
        if any(run == call.run for _, run in runs):
            continue
        earlier = [t for t, _ in runs if t <= start]
        if earlier and call.rung == 0:
            times = sum(1 for t in earlier if t > start - HOUR)
            wait = backoff(checker.policy.guards, max(1, times))
            elapsed = start - max(earlier)
            if elapsed < wait:
                violation = (
                    f"{_who(call)}: {service} acted on again after {elapsed:.0f} s; "
                    f"backoff after {times} action(s) this hour is {wait:.0f} s"
                )
        runs.append((start, call.run))
    return violation


def left_down_unpaged(checker: Checker, journal: Journal) -> list[str]:
    """Whatever a failed plan left stopped or disabled has a human paged about it."""
    found = []
    for name, (incident_id, since) in checker.world.down.items():
        if incident_id in checker.closed_by_human:
            continue
        incident = journal.incident(incident_id)
        if incident.is_open and incident.state in ("detected", "triaged", "executing"):
            continue  # its plan is still under way
        steps = journal.steps(incident_id)
        # A step interrupted by a restart and run again to success did not fail the plan.
        redone = {(s.rung, s.index) for s in steps if s.status == "succeeded"}
        failed = [
            s
            for s in steps
            if s.status in ("failed", "unknown")
            and s.started_at >= since
            and (s.status == "failed" or (s.rung, s.index) not in redone)
        ]
        if not failed:
            continue
        paged = [
            d
            for d in journal.deliveries(incident_id)
            if d.event == "trigger" and d.status in ("pending", "sent") and d.created_at >= since
        ]
        key = (name, incident_id, since)
        if not paged and key not in checker.reported_down:
            checker.reported_down.add(key)
            found.append(
                f"{name} left down since {since:.0f} by incident {incident_id} "
                f"({incident.state}) after step '{failed[0].name}' {failed[0].status}; "
                "no human paged"
            )
    return found
