"""An incident at a glance: what was seen, what the watchdog did, what it needs from you.

The overview shows one line per incident and the incident page, `incidents show`
and the page sent to a pager open with the same three answers, so the engineer
woken at 3 a.m. reads the situation and the next action first and the reasoning
after. The next action is concrete: who must approve, by when, with which
command; or what to take over and where the runbook says how; or nothing, and
since when.

Pure: the incident's journaled facts and `now` go in, three sentences come out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.policy.durations import format_duration
from watchdog.policy.statusview import hhmm

AWAITING = "awaiting_approval"
RUNNING = ("detected", "triaged", "approved", "executing")


@dataclass(frozen=True, slots=True)
class GlanceFacts:
    """What the journal knows of one incident, as values."""

    incident_id: int
    state: str
    closed_at: float | None
    #: The first finding's headline (or reason, for findings journaled before headlines).
    seen: str
    #: Latest attempt of each step of the plan, in plan order: (name, status).
    steps: tuple[tuple[str, str], ...] = ()
    plan_steps: int = 0
    role: str | None = None
    quorum: int = 1
    approvers: tuple[str, ...] = ()
    #: When the incident began to wait for approval, and how long approval may take.
    waiting_since: float | None = None
    approval_expires: float | None = None
    #: Why it was escalated (the move's reason), and the runbook section of its plan.
    escalation: str = ""
    runbook: str = ""
    #: How to run the by-hand plan prepared with this one (scenario 5), if any.
    prepared: str = ""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Glance:
    seen: str
    did: str
    needs: str
    #: A person must act now (approve, or take over).
    urgent: bool


def glance(facts: GlanceFacts, now: float) -> Glance:
    needs, urgent = _needs(facts, now)
    return Glance(facts.seen, _did(facts), needs, urgent)


def _did(facts: GlanceFacts) -> str:
    if not facts.steps:
        if facts.plan_steps == 0:
            return "paged; nothing to run (notify only)"
        if facts.state == AWAITING:
            return f"prepared a plan of {_count(facts.plan_steps, 'step')}; ran nothing yet"
        return "ran nothing yet"
    done = [name for name, status in facts.steps if status == "succeeded"]
    skipped = [name for name, status in facts.steps if status == "skipped"]
    broken = [(name, status) for name, status in facts.steps if status in ("failed", "unknown")]
    running = [name for name, status in facts.steps if status == "started"]
    total = max(facts.plan_steps, len(facts.steps))
    if skipped and not done and not broken:
        return f"dry run: would have run {_count(len(skipped), 'step')}"
    said = f"{len(done)} of {_count(total, 'step')} done"
    if running:
        said += f"; running '{running[-1]}'"
    if broken:
        name, status = broken[-1]
        said += f"; '{name}' {'failed' if status == 'failed' else 'ended unknown'}"
    if facts.state == "verifying":
        said += "; verifying"
    elif facts.state == "resolved":
        said += "; verified"
    return said


def _needs(facts: GlanceFacts, now: float) -> tuple[str, bool]:
    number = facts.incident_id
    if facts.closed_at is not None:
        return f"nothing: {facts.state.replace('_', ' ')} at {hhmm(facts.closed_at)}", False
    if facts.state == AWAITING:
        role, quorum = facts.role or "an approver", max(1, facts.quorum)
        have = len(facts.approvers)
        got = f" ({have} of {quorum} so far: {', '.join(facts.approvers)})" if have else ""
        who = (
            f"{quorum} distinct people with role {role}" if quorum > 1
            else f"one person with role {role}"
        )
        deadline = ""
        if facts.waiting_since is not None and facts.approval_expires is not None:
            ends = facts.waiting_since + facts.approval_expires
            left = ends - now
            deadline = (
                f" by {hhmm(ends)} (in {format_duration(left)})"
                if left > 0 else f"; the approval window ended at {hhmm(ends)}"
            )
        return (
            f"approval by {who}{deadline}{got}: Approve on the incident page, or "
            f"`watchdog approve {number} --as NAME`"
        ), True
    if facts.state == "escalated":
        why = facts.escalation or "the watchdog stopped acting"
        where = f"; runbook: {facts.runbook}" if facts.runbook else ""
        where += f"; by hand: {facts.prepared}" if facts.prepared else ""
        return (
            f"take over: {why}{where}; when done, `watchdog incidents close {number} --as NAME`"
        ), True
    if facts.state == "notified":
        return "nothing to approve: read the finding, fix forward", False
    if facts.state == "verifying":
        return "nothing yet: the watchdog verifies its rollback", False
    if facts.state in RUNNING:
        return "nothing yet: the watchdog is acting", False
    return f"nothing yet ({facts.state.replace('_', ' ')})", False


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"





def latest_steps(steps: Sequence[tuple[int, str, str]]) -> tuple[tuple[str, str], ...]:
    """(index, name, status) of every attempt → the latest attempt of each step, in order."""
    latest: dict[int, tuple[str, str]] = {}
    for index, name, status in steps:
        latest[index] = (name, status)
    return tuple(latest[i] for i in sorted(latest))
