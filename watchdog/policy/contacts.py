"""Who besides the on-call hears of an incident: the runbook's "Emergency Contacts".

The policy's `notify.contacts` gives each contact role (DBA, DevOps lead,
engineering manager) and the status page its own route and says when it is
paged: by severity (P0 pages the engineering manager) or by scenario (the
database scenarios page the DBA). Pure: the paging decision, the page's Opsgenie
responders and the impact assessment's "who is on call" all ask here, so they
name the same contacts for the same incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from watchdog.model import Severity
from watchdog.policy.problems import Problem
from watchdog.policy.schema import Channel, NotifySpec, Policy, Responder


def paged_contacts(spec: NotifySpec, severity: Severity, scenario: str) -> tuple[str, ...]:
    """The contacts an incident of `severity` running `scenario` pages, in policy order."""
    return tuple(
        name
        for name, contact in spec.contacts.items()
        if severity in contact.severities or (scenario and scenario in contact.scenarios)
    )


def contact_channels(spec: NotifySpec, names: Iterable[str]) -> tuple[Channel, ...]:
    """The channels of the named contacts, each once, in the order first named."""
    return tuple(dict.fromkeys(c for n in names for c in spec.contacts[n].channels))


def contact_responders(spec: NotifySpec, names: Iterable[str]) -> tuple[Responder, ...]:
    """The Opsgenie responders of the named contacts, each once."""
    return tuple(dict.fromkeys(r for n in names for r in spec.contacts[n].opsgenie_responders))


def contact_problems(policy: Policy) -> Iterator[Problem]:
    """A contact is a role (the people file says who holds it) or a notice; its scenarios
    are the policy's own."""
    for name, contact in policy.notify.contacts.items():
        path = f"notify.contacts.{name}"
        if not contact.notice and name not in policy.roles:
            yield Problem(
                path, repr(name),
                f"one of the roles {policy.roles} (or notice: true for a channel nobody "
                "holds, such as a status page)",
            )
        if not contact.severities and not contact.scenarios:
            yield Problem(path, "no severities and no scenarios", "when this contact is paged")
        for index, scenario in enumerate(contact.scenarios):
            if scenario not in policy.scenarios:
                yield Problem(
                    f"{path}.scenarios[{index}]", repr(scenario),
                    f"one of the scenarios {sorted(policy.scenarios)}",
                )
