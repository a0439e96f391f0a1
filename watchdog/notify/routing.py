"""When to page and where: the policy's `notify:` section applied to one incident move.

Pure: the move, the severity and the channels already paged go in; a list of
(channel, event) with the reason comes out, which is journaled with the page.
The same routes say where a page goes when a channel refuses it or gives up.
A trigger also goes to the channels of the contacts the incident pages (its
severity's or its scenario's: `notify.contacts`), and names them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from watchdog.model import Severity
from watchdog.policy.contacts import contact_channels, contact_responders, paged_contacts
from watchdog.policy.schema import NotifySpec, Responder

CLOSED_STATES = frozenset({"resolved", "closed"})


@dataclass(frozen=True, slots=True)
class PageDecision:
    """Send `event` on each of `channels`, because of `reason`."""

    event: str
    channels: tuple[str, ...]
    reason: str
    #: The contacts (roles, or a notice such as the status page) this trigger pages.
    contacts: tuple[str, ...] = ()
    #: Their Opsgenie responders, named on the page besides the policy's own.
    responders: tuple[Responder, ...] = ()


def _routed(spec: NotifySpec, severity: Severity, scenario: str) -> tuple[tuple[str, ...], str]:
    """The severity's channels plus its contacts' own, and the contacts in words."""
    contacts = paged_contacts(spec, severity, scenario)
    channels = (*spec.routes.get(severity, ()), *contact_channels(spec, contacts))
    said = f"; contacts: {', '.join(contacts)}" if contacts else ""
    return tuple(dict.fromkeys(channels)), said


def _trigger(
    spec: NotifySpec, channels: tuple[str, ...], why: str, severity: Severity, scenario: str
) -> PageDecision:
    contacts = paged_contacts(spec, severity, scenario)
    responders = contact_responders(spec, contacts)
    return PageDecision("trigger", channels, why, contacts, responders)


def decide_pages(
    spec: NotifySpec,
    *,
    severity: Severity,
    from_state: str,
    to_state: str,
    move_reason: str,
    triggered: Collection[str],
    scenario: str = "",
) -> PageDecision | None:
    """What (if anything) to send when an incident moves from `from_state` to `to_state`.

    `triggered` holds the channels this incident has already paged (a trigger
    journaled and not refused): acknowledgements and resolves go to those only,
    so a channel never hears of an incident's end without its beginning.
    """
    routed, said = _routed(spec, severity, scenario)
    if to_state in CLOSED_STATES:
        if not spec.resolve_on_close or not triggered:
            return None
        return PageDecision("resolve", _ordered(triggered), f"incident {to_state}: {move_reason}")
    if to_state == "approved":
        if not spec.acknowledge_on_approval or not triggered:
            return None
        return PageDecision("acknowledge", _ordered(triggered), f"approved: {move_reason}")
    if not routed:
        return None
    if from_state == "detected" and to_state == "triaged" and severity in spec.on_open:
        paged_on = ", ".join(s.value for s in spec.on_open)
        why = f"{severity.value} opened (paged on open: {paged_on}){said}"
        return _trigger(spec, routed, why, severity, scenario)
    if to_state == "awaiting_approval" and spec.on_approval:
        why = f"the plan waits for approval: {move_reason}{said}"
        return _trigger(spec, routed, why, severity, scenario)
    if to_state == "escalated" and spec.on_escalation:
        why = f"escalated to a human: {move_reason}{said}"
        return _trigger(spec, routed, why, severity, scenario)
    return None


def _ordered(channels: Collection[str]) -> tuple[str, ...]:
    return tuple(sorted(set(channels)))


def decide_escalation_page(
    spec: NotifySpec,
    *,
    from_severity: Severity,
    to_severity: Severity,
    triggered: Collection[str],
    scenario: str = "",
) -> PageDecision | None:
    """A trigger to the channels the new, higher severity routes to and that have not
    been paged yet (those that have hear of it with the incident's next page)."""
    if not spec.on_escalation or not to_severity.more_severe_than(from_severity):
        return None
    routed, said = _routed(spec, to_severity, scenario)
    fresh = tuple(c for c in routed if c not in triggered)
    if not fresh:
        return None
    why = f"escalated from {from_severity.value} to {to_severity.value}{said}"
    return _trigger(spec, fresh, why, to_severity, scenario)


def decide_fallback(
    spec: NotifySpec,
    *,
    severity: Severity,
    event: str,
    failed: str,
    why: str,
    on_page: Collection[str],
    available: Collection[str],
    incident_open: bool = True,
) -> PageDecision | None:
    """Where a page goes when `failed` refused it or gave up (`why`: "refused: ..." or
    "gave up: ..."): the channels routed for `severity` that were not already part of
    this page and that this daemon can reach, or None when none is left (the page is
    then lost, loudly). Only a trigger falls back: an acknowledgement or a resolve
    goes to channels that heard the trigger, never to one that did not; and not once the
    incident is closed (its resolve has gone out: a late trigger would stay open)."""
    if event != "trigger" or not incident_open:
        return None
    fresh = tuple(
        c for c in spec.routes.get(severity, ()) if c not in on_page and c in available
    )
    if not fresh:
        return None
    return PageDecision("trigger", fresh, f"fallback: {failed} {why}")
