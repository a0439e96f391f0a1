"""The impact assessment of a plan: the runbook's "assess before rolling back", in words.

The engine gathers the facts (the Compose dependency graph, the newest backup's
age, this stack's past runs of the scenario, the last recorded change, the
people file's holders per role) and passes them in; this module only words
them. A fact the engine could not gather arrives as `Unknown(why)` and is shown
as "unknown: why", never left out: a human weighing a rollback must see what
nobody checked as clearly as what was checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median

from watchdog.model import AuthMode, Plan
from watchdog.policy.catalogue import ACTIONS
from watchdog.policy.durations import format_duration

#: Past runs needed before their median replaces the runbook's table.
RUNS_FOR_MEDIAN = 3


@dataclass(frozen=True, slots=True)
class Unknown:
    """A fact the engine could not gather, and why."""

    why: str


@dataclass(frozen=True, slots=True)
class ImpactFacts:
    """What the engine read for one plan; every field may be `Unknown`."""

    #: service → every service that depends on it (directly or not).
    dependents: Mapping[str, Sequence[str]] | Unknown = field(
        default_factory=lambda: Unknown("not gathered")
    )
    #: Age in seconds of the newest backup (or snapshot) the plan would restore from.
    backup_age: float | Unknown = field(default_factory=lambda: Unknown("not gathered"))
    #: Durations (opened → resolved, seconds) of this stack's past resolved runs.
    past_durations: Sequence[float] | Unknown = ()
    #: When the last change was recorded, and what changed.
    last_change: tuple[float, str] | Unknown = field(
        default_factory=lambda: Unknown("not gathered")
    )
    #: role → the people holding it.
    holders: Mapping[str, Sequence[str]] | Unknown = field(
        default_factory=lambda: Unknown("no people file")
    )
    #: The emergency contacts the incident pages (`notify.contacts`: roles, or a notice).
    contacts: Sequence[str] = ()


def affected_services(plan: Plan) -> list[str]:
    """The services a plan's steps act on, in the order first named."""
    named: list[str] = []
    for step in plan.steps:
        if not step.action.startswith("service."):
            continue
        params = step.param_map()
        services = params.get("services", params.get("service", []))
        named += [services] if isinstance(services, str) else [str(s) for s in services]
    return list(dict.fromkeys(named))


def data_touch(plan: Plan) -> str:
    """How the plan touches data: "restore", "snapshot", "undoable" or "" (it does not),
    the gravest of its steps' (the catalogue's `data` of each action)."""
    touches = {ACTIONS[step.action].data for step in plan.steps if step.action in ACTIONS}
    return next((t for t in ("restore", "snapshot", "undoable") if t in touches), "")


def expected_duration(
    past: Sequence[float] | Unknown, table: float | None
) -> tuple[float | None, str]:
    """The expected duration and where it comes from: the median of three or more past
    runs, else the runbook's table (None when neither is there)."""
    runs = [] if isinstance(past, Unknown) else list(past)
    if len(runs) >= RUNS_FOR_MEDIAN:
        return median(runs), f"median of this stack's {len(runs)} past runs"
    count = "cannot read past runs: " + past.why if isinstance(past, Unknown) else (
        f"{len(runs)} past run{'s' if len(runs) != 1 else ''} so far"
    )
    if table is None:
        return None, f"no runbook time for this scenario; {count}"
    return table, f"runbook's table; {count}"


def assess_impact(
    plan: Plan,
    facts: ImpactFacts,
    now: float,
    *,
    expected: float | None,
    fix_forward: str,
) -> tuple[str, ...]:
    """The impact lines of the runbook's checklist for `plan`, from `facts`."""
    return (
        _services(plan, facts),
        _data_loss(plan, facts),
        _duration(facts, expected),
        _fix_forward(fix_forward, facts, now),
        _people(plan, facts),
    )


#: Actions that act on every service of the stack (scenario 5), not on named ones.
STACK_WIDE = ("system.emergency_stop", "system.rebuild")


def _services(plan: Plan, facts: ImpactFacts) -> str:
    services = affected_services(plan)
    wide = [step.action for step in plan.steps if step.action in STACK_WIDE]
    if wide:
        return "services affected: every service of the stack (" + ", ".join(wide) + ")"
    if not services:
        return "services affected: none (the plan stops or restarts no service)"
    head = "services affected: " + ", ".join(services)
    if isinstance(facts.dependents, Unknown):
        return f"{head}; their dependents: unknown: {facts.dependents.why}"
    found = dict.fromkeys(
        d for s in services for d in facts.dependents.get(s, ()) if d not in services
    )
    return f"{head}; their dependents: " + (", ".join(found) or "none in the Compose graph")


def _data_loss(plan: Plan, facts: ImpactFacts) -> str:
    touch = data_touch(plan)
    if not touch:
        return "data loss: none (the plan touches no data)"
    if touch == "undoable":
        return "data loss: none (the rows' before-images are journaled as undo first)"
    what = "backup" if touch == "restore" else "last known good snapshot"
    if isinstance(facts.backup_age, Unknown):
        return f"data loss: unknown: {facts.backup_age.why}"
    age = format_duration(max(0.0, facts.backup_age))
    return f"data loss: up to {age} of writes (the newest {what} is {age} old)"


def _duration(facts: ImpactFacts, table: float | None) -> str:
    seconds, source = expected_duration(facts.past_durations, table)
    if seconds is None:
        return f"expected duration: unknown: {source}"
    return f"expected duration: ~{format_duration(seconds)} ({source})"


def _fix_forward(note: str, facts: ImpactFacts, now: float) -> str:
    said = note or "the policy has no fix-forward note for this scenario"
    if isinstance(facts.last_change, Unknown):
        return f"fix forward vs rollback: {said}; last change: unknown: {facts.last_change.why}"
    at, what = facts.last_change
    ago = format_duration(max(0.0, now - at))
    return f"fix forward vs rollback: {said}; last change {ago} ago ({what})"


def _people(plan: Plan, facts: ImpactFacts) -> str:
    if isinstance(facts.holders, Unknown):
        named = f"; contacts paged: {', '.join(facts.contacts)}" if facts.contacts else ""
        return f"people: unknown: {facts.holders.why}{named}"
    holders = facts.holders
    oncall = ", ".join(holders.get("oncall", ())) or "nobody holds oncall"
    auth = plan.authorization
    if auth.mode is not AuthMode.APPROVAL or not auth.role:
        approve = "no approval needed" if auth.mode is AuthMode.AUTO else "nobody: never runs"
    else:
        who = ", ".join(holders.get(auth.role, ())) or f"nobody holds {auth.role}"
        approve = f"{auth.role} (quorum {max(1, auth.quorum)}): {who}"
    # The runbook's emergency contacts, by role: who the page reaches besides the on-call.
    paged = "; ".join(
        f"{role}: {', '.join(holders.get(role, ())) or f'nobody holds {role}'}"
        for role in facts.contacts
    )
    contacts = f"; contacts paged: {paged}" if paged else ""
    return f"on call: {oncall}; can approve now: {approve}{contacts}"
