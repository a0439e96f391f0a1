"""Last known good, scoped to what it protects: may this table be snapshotted now?

A snapshot is what `config.restore` puts back when the table is corrupted, so it
must be taken while the table is good; but "good" is a fact about the table,
not about the whole stack. Waiting until nothing breaches anywhere meant one
unrelated incident (a scraper down, a P3 disk warning) blocked every snapshot of
every table for as long as it stayed open, and the next corruption found
nothing, or something old, to restore.

So each table has its own guard, read from the policy: the rules whose signals
read the table (a `table` signal on it, a SQL query naming it, a derived signal
of those), the rules whose plan restores it (`config.restore` of the table, or
`database.restore`, which rewrites every table), and every rule of the same
groups. The table is snapshotted while its rows pass the policy's validation,
those rules are clear and no incident of those groups is open, whatever else is
breaching. A table nobody guards but the database rules is held back by those
alone.

A snapshot taken while the watchdog itself has a provider disabled in the table
is still a good table, but not the table people chose: it carries a caveat, and
a restore from it says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchdog.model import Finding
from watchdog.policy.rules import RuleStates
from watchdog.policy.schema import DerivedSignal, Policy, PostgresSignal, TableSignal

#: Actions whose plan puts a table back: their rules guard the table's snapshot.
RESTORES_TABLE = "config.restore"
#: Restores every table of the database: its rules guard every snapshot.
RESTORES_DATABASE = "database.restore"
#: The watchdog's own change to a table that a snapshot taken meanwhile must mention.
DISABLES_PROVIDER = "provider.disable"


@dataclass(frozen=True, slots=True)
class TableGuard:
    """What stands between one table and its last-known-good snapshot, from the policy."""

    table: str
    #: Rules whose breach holds the snapshot back.
    rules: frozenset[str]
    #: Their groups: an open incident of one of them holds it back too.
    groups: frozenset[str]
    #: Probed signals those rules read: each must have been seen before a snapshot.
    signals: frozenset[str]
    #: The policy validates this table's rows itself (a `table` signal reads it).
    validated: bool
    #: Scenarios whose `provider.disable` writes this table.
    disabled_by: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An open incident, as far as snapshots care: which group and rules it holds."""

    id: int
    group: str
    rules: frozenset[str]
    subject: str = ""


@dataclass(frozen=True, slots=True)
class StandingDisable:
    """A provider the watchdog took out of use and has not put back yet."""

    incident: int
    provider: str
    #: The scenario whose step disabled it (maps the change to its table).
    scenario: str
    #: Words added after the incident, e.g. "its re-enable, incident 9, is running".
    note: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotFacts:
    """What the engine knows this tick, for every table alike."""

    #: Every rule breaching now (active, or breaching and not yet held `for`): why.
    breaching: Mapping[str, str] = field(default_factory=dict)
    open_incidents: Sequence[OpenIncident] = ()
    #: Probed signals not observed even once since the daemon started.
    unseen: frozenset[str] = frozenset()
    #: The candidate's own validation problems (empty: valid, or not validated).
    problems: Sequence[str] = ()
    disables: Sequence[StandingDisable] = ()


@dataclass(frozen=True, slots=True)
class SnapshotVerdict:
    take: bool
    reason: str
    #: Why the snapshot is less than clean ("" if it is): kept with it, said on restore.
    caveat: str = ""


def breaching_rules(active: Sequence[Finding], states: RuleStates) -> dict[str, str]:
    """Every rule breaching now, with why: active findings, and breaches not yet held `for`."""
    breaching = {f.rule: f.reason for f in active}
    for (rule, series), state in sorted(states.items()):
        if state.breach_since is not None and rule not in breaching:
            on = f" on {series}" if series else ""
            breaching[rule] = f"breaching{on}, not yet for long enough to fire"
    return breaching


def assess_snapshot(guard: TableGuard, facts: SnapshotFacts) -> SnapshotVerdict:
    """Take the table's snapshot now? Only its own rules, incidents and rows count."""
    table = guard.table
    unseen = sorted(guard.signals & facts.unseen)
    if unseen:
        return SnapshotVerdict(
            False,
            f"{table}: not yet: {', '.join(unseen)} not observed since the start, so its "
            "rules cannot vouch for it",
        )
    breaching = sorted(r for r in facts.breaching if r in guard.rules)
    if breaching:
        return SnapshotVerdict(
            False,
            f"{table}: held back by its own rules: "
            + "; ".join(f"{rule} ({facts.breaching[rule]})" for rule in breaching),
        )
    holding = [
        i for i in facts.open_incidents if i.group in guard.groups or i.rules & guard.rules
    ]
    if holding:
        return SnapshotVerdict(
            False,
            f"{table}: held back by open incident(s) of its groups: "
            + ", ".join(f"{i.id} ({i.group})" for i in holding),
        )
    if facts.problems:
        shown = "; ".join(facts.problems[:5])
        more = f" (and {len(facts.problems) - 5} more)" if len(facts.problems) > 5 else ""
        return SnapshotVerdict(
            False, f"{table}: the rows fail the policy's validation: {shown}{more}"
        )
    others = sorted(r for r in facts.breaching if r not in guard.rules)
    ignoring = f"; not its concern: {', '.join(others)}" if others else ""
    checked = "its rows validate, " if guard.validated else ""
    clear = (
        f"its rules are clear ({', '.join(sorted(guard.rules))})"
        if guard.rules
        else "no rule guards it"
    )
    caveat = disable_caveat(guard, facts.disables)
    return SnapshotVerdict(True, f"{table}: {checked}{clear}{ignoring}", caveat)


def assess_service_image(
    service: str, healthy: bool, open_incidents: Sequence[OpenIncident]
) -> SnapshotVerdict:
    """Record the service's image now? While it is healthy and no open incident is about
    it; an incident about anything else (a table, a provider, another service) is not
    its concern."""
    if not healthy:
        return SnapshotVerdict(False, f"{service}: not healthy (or no fresh health)")
    about = [i.id for i in open_incidents if i.subject == service]
    if about:
        return SnapshotVerdict(
            False,
            f"{service}: held back by open incident(s) about it: "
            + ", ".join(str(i) for i in about),
        )
    return SnapshotVerdict(True, f"{service}: healthy, and no open incident is about it")


def disable_caveat(guard: TableGuard, disables: Sequence[StandingDisable]) -> str:
    """'taken while the watchdog had spotify disabled (incident 7)', or ''."""
    mine = sorted(
        (d for d in disables if d.scenario in guard.disabled_by),
        key=lambda d: (d.incident, d.provider),
    )
    if not mine:
        return ""
    parts = [
        f"{d.provider} disabled (incident {d.incident}{'; ' + d.note if d.note else ''})"
        for d in mine
    ]
    return "taken while the watchdog had " + " and ".join(parts)


def table_guards(policy: Policy) -> dict[str, TableGuard]:
    """The guard of each table the policy snapshots (`last_good.tables`)."""
    return {table: table_guard(policy, table) for table in policy.last_good.tables}


def table_guard(policy: Policy, table: str) -> TableGuard:
    readers = _signals_reading(policy, table)
    reading_rules = {r.name for r in policy.rules if r.signal in readers}
    protecting = {
        name
        for name, scenario in policy.scenarios.items()
        if any(
            step.action == RESTORES_DATABASE
            or (step.action == RESTORES_TABLE and step.params.get("table") == table)
            for step in scenario.steps
        )
    }
    groups = {
        r.group or r.scenario
        for r in policy.rules
        if r.name in reading_rules or r.scenario in protecting
    }
    rules = {r.name for r in policy.rules if (r.group or r.scenario) in groups} | reading_rules
    probed = {s.name for s in policy.probed_signals()}
    signals = {
        leaf
        for r in policy.rules
        if r.name in rules
        for leaf in _leaves(policy, r.signal)
        if leaf in probed
    }
    disabled_by = {
        name
        for name, scenario in policy.scenarios.items()
        if any(
            s.action == DISABLES_PROVIDER and s.params.get("table") == table
            for s in scenario.steps
        )
    }
    return TableGuard(
        table=table,
        rules=frozenset(rules),
        groups=frozenset(groups),
        signals=frozenset(signals),
        validated=any(
            isinstance(s, TableSignal) and s.table == table and s.enabled for s in policy.signals
        ),
        disabled_by=frozenset(disabled_by),
    )


def reenable_scenarios(policy: Policy) -> dict[str, str]:
    """Each follow-up scenario that undoes a disable, and the scenario whose disable it undoes."""
    return {
        spec.reenable.scenario: name
        for name, spec in policy.scenarios.items()
        if spec.reenable is not None
    }


def _signals_reading(policy: Policy, table: str) -> set[str]:
    """Signals that read the table: a table signal, a query naming it, a derived one of those."""
    names = {table, table.rsplit(".", 1)[-1]}
    pattern = re.compile(
        r"(?<![\w.])(?:\w+\.)?(" + "|".join(re.escape(n) for n in sorted(names)) + r")(?!\w)",
        re.IGNORECASE,
    )
    reading: set[str] = set()
    for signal in policy.signals:
        if (isinstance(signal, TableSignal) and signal.table == table) or (
            isinstance(signal, PostgresSignal)
            and signal.query is not None
            and pattern.search(signal.query)
        ):
            reading.add(signal.name)
    derived = [s for s in policy.signals if isinstance(s, DerivedSignal)]
    grew = True
    while grew:
        grew = False
        for signal in derived:
            if signal.name not in reading and reading.intersection(signal.of):
                reading.add(signal.name)
                grew = True
    return reading


def _leaves(policy: Policy, name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The signals a rule's signal comes from: itself, or a derived signal's inputs."""
    if name in seen:
        return set()
    try:
        signal = policy.signal(name)
    except KeyError:
        return set()
    if isinstance(signal, DerivedSignal):
        return {leaf for part in signal.of for leaf in _leaves(policy, part, seen | {name})}
    return {name}
