"""The incident lifecycle's decisions: facts in, the next moves out, each with its reason.

The engine tells this module what just happened to an incident (a plan is ready,
its preflight answered, it finished, the checklist was read, votes were counted,
the daemon restarted, its findings cleared) together with the facts of the
moment: the state, the plan and its rung, the guard facts, the switches (paused,
dry run) and the clock. `decide` answers with the moves to journal, in order, in
one transaction, and the one piece of work to start once they are committed.
The engine applies that and decides nothing: every rule of how a plan starts,
resumes, climbs, holds, times out, escalates and closes is here, testable
without I/O.

Three rules from ARCHITECTURE.md are decided here: a failed preflight acts on
nothing and escalates; a plan that failed half-way escalates with what its
compensations put back; and a resume after a restart is a new decision, under
the same guards and the same authority as a new plan, never a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from watchdog.model import AuthMode, Plan
from watchdog.policy.authorize import counted_approvers
from watchdog.policy.durations import format_duration
from watchdog.policy.guards import GuardFacts, assess_guards
from watchdog.policy.move_events import (
    Checklist,
    Event,
    FindingsCleared,
    PlanFinished,
    PlanReady,
    PreflightDone,
    Restarted,
    Vote,
    Votes,
)
from watchdog.policy.schema import GuardSpec
from watchdog.policy.verify import stalled

__all__ = [
    "HOLD",
    "MANUAL_KEY_PREFIX",
    "Checklist",
    "Decision",
    "Event",
    "FindingsCleared",
    "Incident",
    "Move",
    "PlanFinished",
    "PlanReady",
    "PreflightDone",
    "Restarted",
    "Switches",
    "Vote",
    "Votes",
    "Work",
    "counted_votes",
    "decide",
]

#: Incidents opened by `watchdog rollback`: the command was the authority, once.
MANUAL_KEY_PREFIX = "manual/"


class Work(StrEnum):
    """What the engine starts once the moves are committed."""

    NOTHING = "nothing"
    RUN = "run"  # run the plan from `Decision.start`
    PREFLIGHT = "preflight"  # check the plan before putting it to a human
    VERIFY = "verify"  # start reading the checklist
    REPLAN = "replan"  # make the plan for the incident's (new) scenario, then decide again


@dataclass(frozen=True, slots=True)
class Move:
    """One lifecycle trigger to journal, with why."""

    trigger: str
    reason: str
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The moves (one transaction) and the work that follows them.

    `note` is journaled with the moves when there is something to say without a
    move (a guard verdict, a hold); `count_budget` charges the plan to the hourly
    budget and the cooldowns in the same transaction; `mark_unknown` finishes the
    step left in flight as 'unknown'; `climb` puts the incident on its next rung.
    """

    moves: tuple[Move, ...] = ()
    work: Work = Work.NOTHING
    start: int = 0
    note: str = ""
    count_budget: bool = False
    mark_unknown: bool = False
    climb: str | None = None
    #: The timeline kind of `note`: "guards" for a guard verdict, else "decision".
    note_kind: str = "decision"

    @property
    def reason(self) -> str:
        return self.moves[-1].reason if self.moves else self.note


HOLD = Decision()


@dataclass(frozen=True, slots=True)
class Incident:
    """What the core needs to know of one incident."""

    key: str
    state: str
    plan: Plan | None
    rung: int = 0
    #: The next rung of the remediation ladder for the current scenario, if any.
    next_rung: str | None = None
    #: When the incident entered its current state (approval expiry counts from here).
    entered_at: float = 0.0
    #: Protected (stateful) services the plan would stop, restart or recreate.
    protected: tuple[str, ...] = ()

    @property
    def manual(self) -> bool:
        return self.key.startswith(MANUAL_KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class Switches:
    """The guard facts and switches of this instant, as the engine read them."""

    guards: GuardSpec
    facts: GuardFacts
    dry_run: bool = False
    #: Whether the plan has checks that must run before it is put to a human.
    has_preflight: bool = False


def decide(incident: Incident, event: Event, switches: Switches, now: float) -> Decision:
    """The next moves for `incident` after `event`, with their reasons."""
    if isinstance(event, PlanReady):
        return _escalate(event.refused) if event.refused else _start(incident, switches, now)
    if isinstance(event, PreflightDone):
        if incident.state != "triaged":
            return HOLD
        if event.blocked is not None:
            return _escalate(
                f"the plan cannot run, so it is not put to approval: {event.blocked}"
            )
        return Decision((Move("request_approval", _plan(incident).authorization.reason),))
    if isinstance(event, PlanFinished):
        return _finished(incident, event)
    if isinstance(event, Checklist):
        return _verified(incident, event, now)
    if isinstance(event, Votes):
        return _counted(incident, event, switches, now)
    if isinstance(event, Restarted):
        return _resume(incident, event, switches, now)
    return _cleared(incident)


def _plan(incident: Incident) -> Plan:
    if incident.plan is None:
        raise ValueError(f"incident {incident.key!r} has no plan in state {incident.state}")
    return incident.plan


def _escalate(reason: str, *before: Move) -> Decision:
    return Decision((*before, Move("escalate", reason)))


def _start(incident: Incident, switches: Switches, now: float) -> Decision:
    """How a new plan starts: never, by approval, refused as protected, or by the guards."""
    plan = _plan(incident)
    auth = plan.authorization
    if not plan.steps:
        return Decision((Move("notify_only", f"{plan.title}: nothing to run; {auth.reason}"),))
    if auth.mode is AuthMode.NEVER:
        return Decision((Move("notify_only", auth.reason),))
    if auth.mode is AuthMode.APPROVAL:
        if switches.has_preflight:
            return Decision(work=Work.PREFLIGHT, note="checking the plan before asking a human")
        return Decision((Move("request_approval", auth.reason),))
    if incident.protected:
        return _escalate(
            f"{', '.join(incident.protected)} is protected (stateful): never stopped, restarted "
            "or recreated automatically; paging with the plan instead"
        )
    verdict = assess_guards(switches.guards, switches.facts, now)
    if not verdict.allowed:
        return Decision(
            (Move("escalate", verdict.reason),), note=verdict.reason, note_kind="guards"
        )
    return Decision(
        (Move("execute", f"{plan.title}: {auth.reason}"),),
        work=Work.RUN,
        note=verdict.reason,
        note_kind="guards",
        count_budget=not switches.dry_run,
    )


def _failure(incident: Incident, why: str, *, fail: bool = True) -> Decision:
    """After a failed plan: the next rung of the ladder, or a human."""
    failed = (Move("fail", why),) if fail else ()
    if incident.next_rung is None:
        return _escalate(f"rollback failed, paging a human: {why}", *failed)
    reason = f"{incident.next_rung} is the next rung of the ladder: {why}"
    return Decision(
        (*failed, Move("next_rung", reason)), work=Work.REPLAN, climb=incident.next_rung
    )


def _finished(incident: Incident, event: PlanFinished) -> Decision:
    if incident.state != "executing":
        return HOLD  # closed by a human meanwhile: nothing to do
    if event.ok:
        return Decision((Move("verify", event.reason),), work=Work.VERIFY)
    if event.blocked is not None:
        why = f"the preflight refused, nothing was changed: {event.blocked}"
        return _escalate(f"paging a human: {why}", Move("fail", why))
    why = event.reason
    if event.compensated:
        why += f"; put back: {'; '.join(event.compensated)}"
    if event.compensation_failed:
        left = "; ".join(event.compensation_failed)
        why += f"; NOT put back: {left}"
        return _escalate(f"a human must put back what is still down: {why}", Move("fail", why))
    return _failure(incident, why)


def _verified(incident: Incident, event: Checklist, now: float) -> Decision:
    if incident.state != "verifying":
        return HOLD
    plan = _plan(incident)
    if event.passed:
        since = event.passing_since if event.passing_since is not None else now
        if now - since >= plan.verify_for_seconds:
            return Decision(
                (
                    Move(
                        "resolve",
                        f"checklist held for {format_duration(plan.verify_for_seconds)}: "
                        f"{event.summary}",
                        closed=True,
                    ),
                )
            )
        return HOLD
    timeout = plan.verify_timeout_seconds
    if now - event.started > timeout:
        return _failure(
            incident, f"checklist did not hold within {format_duration(timeout)}: {event.summary}"
        )
    stuck = stalled(plan, event.unchanged_since, now)
    return _failure(incident, f"{stuck}: {event.summary}") if stuck else HOLD


def counted_votes(incident: Incident, votes: Votes) -> list[Vote]:
    """The votes that count: cast for this plan as shown, since approval was asked."""
    return [
        v for v in votes.votes if v.plan_digest == votes.plan_digest and v.at >= incident.entered_at
    ]


def _counted(incident: Incident, event: Votes, switches: Switches, now: float) -> Decision:
    plan = _plan(incident)
    needed = plan.authorization
    if incident.state == "approved":
        if switches.facts.paused:
            return HOLD  # approved, held until `watchdog resume`
        return Decision((Move("execute", "approved plan starts"),), work=Work.RUN)
    if incident.state != "awaiting_approval":
        return HOLD
    votes = counted_votes(incident, event)
    rejected = [v for v in votes if v.decision == "reject"]
    if rejected:
        who = rejected[-1]
        return _escalate(
            "plan rejected: a human takes over",
            Move("reject", f"rejected by {who.person} ({who.role}): {who.comment}"),
        )
    role = needed.role or ""
    approvers = counted_approvers(((v.person, v.role, v.decision) for v in votes), role)
    if len(approvers) >= max(1, needed.quorum):
        approve = Move("approve", f"approved by {', '.join(approvers)} ({role})")
        if switches.facts.paused:
            return Decision(
                (approve,), note="approved while automatic actions are paused: it waits for resume"
            )
        return Decision((approve, Move("execute", "approved plan starts")), work=Work.RUN)
    expires = switches.guards.approval_expires
    if now - incident.entered_at > expires:
        return _escalate(
            "approval expired: paging again",
            Move("expire", f"no approval within {format_duration(expires)}"),
        )
    return HOLD


def _resume(incident: Incident, event: Restarted, switches: Switches, now: float) -> Decision:
    """After a restart: a new decision from the journal, never a replay."""
    state = incident.state
    if incident.plan is None and state in ("executing", "approved", "verifying", "failed"):
        why = f"{state} with no plan in the journal: a human must look"
        return _escalate(why, Move("fail", why)) if state == "verifying" else _escalate(why)
    if state == "detected":
        return Decision((Move("triage", "triaged after restart"),), work=Work.REPLAN)
    if state == "triaged":
        return Decision(work=Work.REPLAN, note="planned again after restart")
    if state == "failed":
        return _failure(incident, "the plan had failed before the restart", fail=False)
    if state in ("rejected", "expired"):
        return _escalate(f"{state} before the restart: a human takes over")
    if state == "approved":
        return _counted(incident, Votes((), ""), switches, now)
    if state == "verifying":
        return Decision(work=Work.VERIFY, note="verifying again after restart")
    if state != "executing":
        return HOLD  # awaiting approval, escalated, notified: the tick goes on with them
    return _resume_executing(incident, event, switches, now)


def _resume_executing(
    incident: Incident, event: Restarted, switches: Switches, now: float
) -> Decision:
    plan = _plan(incident)
    if event.in_flight is not None and not event.in_flight[1]:
        name = event.in_flight[0]
        return Decision(
            (
                Move("fail", f"step '{name}' was interrupted; its outcome is unknown"),
                Move("escalate", "a human must check what the interrupted step did"),
            ),
            mark_unknown=True,
        )
    if event.failed_step is not None:
        return _failure(incident, f"step '{event.failed_step}' had failed before the restart")
    if event.next_step >= len(plan.steps):
        return Decision(
            (Move("verify", "every step had finished before the restart"),), work=Work.VERIFY
        )
    done = f"interrupted by a restart after {event.next_step} of {len(plan.steps)} steps"
    if incident.manual or plan.authorization.mode is AuthMode.APPROVAL:
        who = "its operator's command" if incident.manual else "an approval"
        return Decision(
            (
                Move(
                    "reapprove",
                    f"{done}; the plan ran on {who}, which does not carry over a restart: "
                    "it needs a fresh approval of the plan as shown",
                ),
            ),
            mark_unknown=event.in_flight is not None,
        )
    if switches.dry_run:
        return _escalate(f"{done}; this daemon runs dry: a human finishes or undoes it")
    resumed = GuardFacts(
        paused=switches.facts.paused,
        actions_last_hour=0,  # the plan was charged when it started
        last_action_at={},  # its own earlier steps are no cooldown
        evidence_age_seconds=switches.facts.evidence_age_seconds,
        evidence_max_age_seconds=switches.facts.evidence_max_age_seconds,
    )
    verdict = assess_guards(switches.guards, resumed, now)
    waiting = not event.evidence_fresh and event.uptime < switches.guards.resume_grace
    if not verdict.allowed and not switches.facts.paused and waiting:
        return Decision(note=f"{done}; waiting for fresh evidence before deciding")
    if not verdict.allowed:
        return Decision(
            (Move("escalate", f"{done}; not resumed: {verdict.reason}"),),
            mark_unknown=event.in_flight is not None,
        )
    return Decision(
        work=Work.RUN,
        start=event.next_step,
        note=f"{done}; resumed: {verdict.reason}",
        mark_unknown=event.in_flight is not None,
    )


def _cleared(incident: Incident) -> Decision:
    if incident.state == "notified":
        return Decision((Move("close", "every finding cleared", closed=True),))
    if incident.state == "escalated":
        return Decision(
            (Move("resolve", "every finding cleared (recovered outside the plan)", closed=True),)
        )
    return HOLD
