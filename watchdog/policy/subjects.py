"""Alert labels may name what to page about, never what to act on beyond what is known.

An Alertmanager alert's labels are the sender's to choose: `CircuitBreakerOpen
{provider=X}` becomes a series, an incident and, through the rule's
`params: {provider: "{series}"}`, the provider a `provider.disable` step takes
out. So every provider and service a plan made from an alert's finding would act
on must be one the policy or the live stack already knows: the policy's services
(targets, Docker signals, the stack's lists, the services its scenarios name)
and the containers the Docker probe sees; the providers the configuration tables
name. Otherwise the finding is kept, the plan loses its steps and the incident
pages as "unknown subject", acting on nothing.

Pure: the known sets are facts the engine gathers and hands in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from watchdog.model import Finding, Plan
from watchdog.policy.configrows import providers_of
from watchdog.policy.schema import AlertSignal, DockerSignal, Policy, TableSignal

#: Step parameters that name what a step acts on, and the kind of subject each names.
SUBJECT_PARAMS = {"provider": "provider", "service": "service", "services": "service"}


@dataclass(frozen=True, slots=True)
class SubjectVerdict:
    """Whether a value an alert steers names something known, and why."""

    known: bool
    reason: str
    kind: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class KnownSubjects:
    """What the policy and the live stack know, with where each set comes from."""

    services: frozenset[str]
    providers: frozenset[str]
    services_from: str = "the policy or the running containers"
    providers_from: str = "the configuration tables"


def assess_subject(kind: str, value: str, known: Collection[str], where: str) -> SubjectVerdict:
    """`value` (a provider or a service, from an alert label) against the `known` set."""
    if value in known:
        return SubjectVerdict(True, f"{kind} {value!r} is one {where} names", kind, value)
    names = sorted(known)
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return SubjectVerdict(
        False,
        f"unknown subject: {kind} {value!r} (from an alert's labels) is not one {where} "
        f"names ({shown or 'none'}); paging, acting on nothing",
        kind,
        value,
    )


def steered_by_labels(policy: Policy, finding: Finding) -> bool:
    """Whether the finding comes from an Alertmanager alert (its series is a label)."""
    signal = next((s for s in policy.signals if s.name == finding.signal), None)
    return isinstance(signal, AlertSignal)


def plan_subjects(plan: Plan) -> Iterator[tuple[str, str]]:
    """(kind, value) of every provider and service the plan's steps would act on."""
    for step in plan.steps:
        for name, value in step.params:
            kind = SUBJECT_PARAMS.get(name)
            if kind is None:
                continue
            for item in value if isinstance(value, list | tuple) else [value]:
                yield kind, str(item)


def assess_plan(plan: Plan, known: KnownSubjects) -> SubjectVerdict:
    """The first unknown subject of the plan, or that all of them are known."""
    checked = 0
    for kind, value in plan_subjects(plan):
        verdict = (
            assess_subject(kind, value, known.providers, known.providers_from)
            if kind == "provider"
            else assess_subject(kind, value, known.services, known.services_from)
        )
        if not verdict.known:
            return verdict
        checked += 1
    return SubjectVerdict(True, f"all {checked} subjects of the plan are known")


def acting_on_nothing(plan: Plan, verdict: SubjectVerdict) -> Plan:
    """The plan as paged for an unknown subject: no step, no checklist, the reason said."""
    return replace(
        plan,
        title=f"Unknown subject: {verdict.kind} {verdict.value!r}; page, act on nothing",
        steps=(),
        checklist=(),
        reason=f"{plan.reason}; {verdict.reason}",
        impact=(verdict.reason, "nothing was changed"),
    )


def policy_services(policy: Policy) -> frozenset[str]:
    """Every Compose service the policy names: targets, Docker signals, the stack's lists
    and the literal services of its scenarios' steps (templates such as `{subject}` are
    not names)."""
    names = {t.service for t in policy.targets.values() if t.service}
    names |= set(policy.stack.protected_services) | set(policy.stack.schema_coupled_services)
    for signal in policy.signals:
        if isinstance(signal, DockerSignal):
            names |= set(signal.services)
    for scenario in policy.scenarios.values():
        for step in scenario.steps:
            for key in ("service", "services"):
                value = step.params.get(key)
                values = value if isinstance(value, list) else [value]
                names |= {v for v in values if isinstance(v, str) and "{" not in v}
    return frozenset(names)


def docker_signals(policy: Policy) -> list[str]:
    """The signals whose series are the Compose services the Docker probe sees."""
    return [s.name for s in policy.signals if isinstance(s, DockerSignal)]


def provider_tables(policy: Policy) -> list[str]:
    """The configuration tables whose rows name the providers: those the policy's steps
    and table signals read, and those it keeps last-known-good copies of."""
    tables = set(policy.last_good.tables)
    tables |= {s.table for s in policy.signals if isinstance(s, TableSignal)}
    for scenario in policy.scenarios.values():
        for step in scenario.steps:
            table = step.params.get("table")
            if isinstance(table, str) and "{" not in table:
                tables.add(table)
    return sorted(tables)


def providers_in(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """The providers rows name: a waterfall's priorities, or a provider table's name."""
    found: set[str] = set()
    for row in rows:
        found.update(providers_of(row))
        name = row.get("provider_name")
        if isinstance(name, str) and name:
            found.add(name)
    return found
