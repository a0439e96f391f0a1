"""Which follow-ups an incident owes when it becomes final: the runbook's later items.

The runbook's Post-Rollback Checklist has an immediate part (the verifier's
checklist) and two that only people can do: within 24 hours (post-mortem
scheduled, incident report filed ...) and within 1 week (post-mortem completed,
runbook updated ...). They are owed by every incident that ran at least one step,
whatever its end: resolved by its plan, or escalated and then closed by a person.
An incident that never acted (notified then closed, a dry run whose steps were all
skipped) changed nothing and owes nothing.

Pure: the incident's end, its steps' statuses, the policy's items and the moment
it became final go in; the follow-ups come out with their due times and why, and
the store writes them in the transaction of the move that made the incident final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.policy.durations import format_duration
from watchdog.policy.operatingspecs import FollowupSpec

#: A step with this status never touched the stack (a dry run's steps).
NOT_RUN = "skipped"


@dataclass(frozen=True, slots=True)
class FollowupDue:
    """One follow-up to write: what, owed by which role, by when, and why it is owed."""

    text: str
    owner: str
    due_at: float
    reason: str


def followups_owed(
    *,
    final_state: str,
    step_statuses: Sequence[str],
    items: Sequence[FollowupSpec],
    closed_at: float,
) -> tuple[FollowupDue, ...]:
    """The follow-ups of an incident that became final (`final_state`) at `closed_at`.

    None when no step ran: the runbook's list is a post-rollback checklist.
    """
    ran = [status for status in step_statuses if status != NOT_RUN]
    if not ran:
        return ()
    counted = f"{len(ran)} step{'' if len(ran) == 1 else 's'} ran"
    return tuple(
        FollowupDue(
            text=item.text,
            owner=item.owner,
            due_at=closed_at + item.due_after,
            reason=f"{final_state} after {counted}: due {format_duration(item.due_after)} "
            "after the incident ended (runbook: Post-Rollback Checklist)",
        )
        for item in items
    )
