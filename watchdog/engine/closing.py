"""Ending an incident by hand: the one rule set the CLI, the API and the web page share.

Any incident may need a person to end it: one wedged in a state nothing moves it
out of, a fault fixed by hand, a false alarm. `watchdog incidents close ID --as
NAME --comment TEXT`, `POST /api/incidents/{id}/close` and the Close form on the
incident's page all come here, and all refuse for the same reasons, with the HTTP
status each maps to (the CLI turns them into exit codes), checked in this order:

- 422: the comment is empty, too long or not text: a close always says why;
- 404: no such incident;
- 403: the person holds none of the policy's `close_roles` (default: oncall, lead);
- 409: the incident is already final (`lifecycle.FINAL`: resolved, closed).

What may be closed: any incident not in a final state, whatever it is doing
(awaiting approval, executing, failed, escalated ...). A refused close changes
nothing. `assess_close` decides, pure, from the facts; `close_incident` reads
those facts from the journal and, if allowed, writes the close.

The journal is the source of truth. A close is one journal transaction
(`Journal.close_by_human`: state 'closed', closed_at set, a 'closed_by_human'
event saying who, in which role, and why); nothing here talks to a daemon. A
running daemon picks the close up from the journal on its next tick: it drops
the incident from memory, cancels its plan if one is running, and lets the
fault's key go, so the same fault can open a new incident (the journal's own
"one open incident per key" check frees the key at once). A close made while
no daemon runs takes effect the same way when one starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.engine.approvals import COMMENT_LIMIT, Refused, find_incident
from watchdog.people import Person
from watchdog.policy.followups import followups_owed
from watchdog.policy.lifecycle import FINAL
from watchdog.policy.operatingspecs import runbook_followups
from watchdog.policy.schema import FollowupSpec, Policy
from watchdog.store.journal import Journal
from watchdog.store.records import CLOSED_BY_HUMAN, IncidentRecord

#: `close_roles` of a policy that does not name them; the CLI's roles without --policy.
DEFAULT_CLOSE_ROLES: tuple[str, ...] = tuple(
    Policy.model_fields["close_roles"].get_default(call_default_factory=True)
)


@dataclass(frozen=True, slots=True)
class CloseVerdict:
    """Whether a person may close an incident now; `status` is the HTTP status of a refusal."""

    allowed: bool
    status: int
    reason: str
    #: The role the person closes in: the first of `close_roles` they hold.
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """A close written to the journal."""

    incident_id: int
    person: str
    role: str
    was: str
    comment: str

    def summary(self) -> str:
        return (
            f"incident {self.incident_id}: closed by {self.person} ({self.role}), "
            f"it was {self.was}: {self.comment}; a running daemon lets go of it on its next tick"
        )


def comment_problem(comment: str) -> str:
    """What is wrong with a closing comment ('' if nothing): it is the record of why."""
    if not comment.strip():
        return "comment: empty; expected a few words on why the incident is closed"
    if len(comment) > COMMENT_LIMIT:
        return f"comment: {len(comment)} characters, expected at most {COMMENT_LIMIT}"
    if not all(c.isprintable() or c in "\n\r\t" for c in comment):
        # Also refuses lone surrogates, which no UTF-8 journal could store.
        return "comment: expected printable text, found control characters"
    return ""


def assess_close(
    *,
    incident_id: int,
    record: IncidentRecord | None,
    person: Person,
    comment: str,
    close_roles: Sequence[str],
) -> CloseVerdict:
    """May `person` close incident `incident_id` (`record`, None if there is none) now?"""
    problem = comment_problem(comment)
    if problem:
        return CloseVerdict(False, 422, problem)
    if record is None:
        return CloseVerdict(False, 404, f"no incident {incident_id}")
    role = next((r for r in close_roles if person.has_role(r)), None)
    if role is None:
        return CloseVerdict(
            False,
            403,
            f"{person.name} ({', '.join(person.roles)}) may not close incident {incident_id}: "
            f"closing needs one of the roles {', '.join(close_roles)} (policy close_roles)",
        )
    if record.state in FINAL or not record.is_open:
        return CloseVerdict(
            False,
            409,
            f"incident {incident_id} is already {record.state}; only an incident not yet "
            f"final ({', '.join(sorted(FINAL))}) can be closed",
        )
    return CloseVerdict(
        True, 200, f"{person.name} ({role}) closes incident {incident_id} ({record.state})", role
    )


def close_incident(
    journal: Journal,
    *,
    incident_id: int,
    person: Person,
    comment: str,
    close_roles: Sequence[str],
    at: float,
    followup_items: Sequence[FollowupSpec] | None = None,
) -> Closed:
    """Check that `person` may close the incident now, then journal the close; else Refused.

    The close writes the follow-ups the incident owes (`followup_items`: the policy's;
    None: the runbook's lists), in its own transaction, when a step of it ran."""
    try:
        record: IncidentRecord | None = find_incident(journal, incident_id)
    except KeyError:
        record = None
    verdict = assess_close(
        incident_id=incident_id,
        record=record,
        person=person,
        comment=comment,
        close_roles=close_roles,
    )
    if not verdict.allowed or verdict.role is None or record is None:
        raise Refused(verdict.status, verdict.reason)
    owed = followups_owed(
        final_state="closed by a person",
        step_statuses=[step.status for step in journal.steps(incident_id)],
        items=runbook_followups() if followup_items is None else followup_items,
        closed_at=at,
    )
    try:
        journal.close_by_human(
            incident_id, person=person.name, role=verdict.role, comment=comment.strip(), at=at,
            followups=owed,
        )
    except KeyError:
        raise Refused(404, f"no incident {incident_id}") from None
    except ValueError as error:  # the daemon ended it between the read and the write
        raise Refused(409, str(error)) from None
    return Closed(incident_id, person.name, verdict.role, record.state, comment.strip())


#: How many of the newest incidents a daemon start looks through for a close whose
#: resolve page was never queued (a close made while no daemon ran, or one the daemon
#: died before paging about).
RESOLVE_LOOKBACK = 50


def closes_to_resolve(journal: Journal, *, limit: int = RESOLVE_LOOKBACK) -> list[tuple[int, str]]:
    """Incidents a person ended that paged a trigger and have no resolve page yet, each with
    the state it was closed from: the vendor's alert is still open for them.

    The close is the CLI's or the API's own transaction and knows no pager; the daemon
    queues the resolve after it. Reading what is owed from the journal, rather than from
    the daemon's memory of the close, means a kill between the two loses nothing: the
    next start finds the same debt.
    """
    owed = []
    for record in journal.list_incidents(limit=limit):
        if record.state != "closed" or record.is_open:
            continue
        pages = {d.event for d in journal.deliveries(record.id)}
        if "trigger" not in pages or "resolve" in pages:
            continue
        ended = [e for e in journal.timeline(record.id) if e.kind == CLOSED_BY_HUMAN]
        if ended:
            owed.append((record.id, str(ended[-1].data.get("from", ""))))
    return owed
