"""Carrying incidents through their lifecycle: the core decides, this module applies.

For every thing that happens to an incident (a plan made, a preflight answered,
a plan finished, the checklist read, votes counted, findings cleared) this
module gathers the facts, asks `watchdog.policy.moves.decide`, writes the moves
it returns in ONE journal transaction (state changes, plan, rung, budget and
cooldown charges, interrupted steps, events and the pages the moves call for),
and only then starts the work that follows (a plan run in its own task, so a
slow step never stalls detection). Each incident's state lives in the journal;
the views here are a cache, rebuilt from it at start (`recovery.Recovery`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from watchdog.engine.executor import Executor, PlanRun
from watchdog.engine.impactfacts import FactSource, assess
from watchdog.metrics import Metrics
from watchdog.model import Finding, Plan, Severity
from watchdog.policy import moves
from watchdog.policy.followups import FollowupDue, followups_owed
from watchdog.policy.guards import GuardFacts, budget_remaining
from watchdog.policy.lifecycle import Lifecycle
from watchdog.policy.planner import plan_for, plan_targets, protected_in
from watchdog.policy.schema import Policy
from watchdog.policy.subjects import (
    KnownSubjects,
    acting_on_nothing,
    assess_plan,
    steered_by_labels,
)
from watchdog.policy.triage import OpenIncident
from watchdog.policy.windows import Windows
from watchdog.store.journal import Journal
from watchdog.store.records import PAUSED_FLAG, EventRow, MoveRecord, PageRows

log = structlog.get_logger("watchdog.incidents")

#: The journal's action target that counts automatic plans against the hourly budget.
PLAN_BUDGET = "budget:automatic-plan"
#: Composes the page a move calls for (before the move is committed), or None.
PageComposer = Callable[[int, str, str, str, Plan | None], PageRows | None]


@dataclass(frozen=True, slots=True)
class View:
    """What the daemon keeps in memory of one open incident."""

    id: int
    key: str
    severity: Severity
    scenario: str
    subject: str
    state: str
    finding_ids: frozenset[str]
    supersedes: frozenset[str]
    first_breach: float
    entered_at: float
    rung: int = 0

    def for_triage(self) -> OpenIncident:
        return OpenIncident(
            self.key, self.severity, self.scenario, self.finding_ids, self.supersedes
        )


@dataclass(slots=True)
class Verification:
    started: float
    passing_since: float | None = None
    last_verdicts: tuple[bool, ...] = ()
    #: The failing checklist's last reading, and since when it has read so.
    reading: str = ""
    reading_since: float | None = None
    plan: Plan | None = None


class Incidents:
    def __init__(
        self,
        policy: Policy,
        journal: Journal,
        executor: Executor,
        metrics: Metrics,
        windows: Windows,
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.journal = journal
        self.executor = executor
        self.metrics = metrics
        self.windows = windows
        self.clock = clock
        self.started_at = clock()
        self.views: dict[str, View] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.verifying: dict[int, Verification] = {}
        #: Incidents a human ended while their plan ran: its step in flight is 'unknown'.
        self.ended_by_humans: set[int] = set()
        #: Executing incidents found at start whose resume waits for a decision.
        self.resuming: set[int] = set()
        # Findings of incidents just closed. A verified recovery is the authoritative
        # clear: the daemon resets these rules, so a fault that comes back must fire
        # anew (after its `for`) and opens a new incident.
        self.closed_findings: set[str] = set()
        self.max_evidence_age = max((s.staleness_limit() for s in policy.signals), default=60.0)
        #: Composes the pages of a move, written in the move's own transaction.
        self.compose_page: PageComposer | None = None
        #: Composes the page a rise in severity calls for (id, from, to), likewise.
        self.compose_escalation: Callable[[int, Severity, Severity], PageRows | None] | None = (
            None
        )
        #: Told of every committed move (id, from, to, reason): Sentry's hook.
        self.on_move: Callable[[int, str, str, str], None] | None = None
        #: Told when a human ended an incident (id, state the daemon knew, state now).
        self.on_human_close: Callable[[int, str, str], None] | None = None
        #: Told of every page committed with a move: the pager logs it and sends it now.
        self.on_page: Callable[[int, PageRows], None] | None = None
        #: The providers and services known: plans made from an alert act on no other.
        self.known_subjects: Callable[[], KnownSubjects] | None = None
        self.facts: FactSource | None = None  #: what the impact and pre-checklist rest on
        #: Services found stateful by their labels or image (a policy with `discovery:`).
        self.found_protected: Callable[[], list[str]] = list

    # ---- bookkeeping -------------------------------------------------------

    def open_views(self) -> list[OpenIncident]:
        return [view.for_triage() for view in self.views.values()]

    def take_closed_findings(self) -> set[str]:
        closed, self.closed_findings = self.closed_findings, set()
        return closed

    def count_open(self) -> None:
        for severity in Severity:
            count = sum(1 for v in self.views.values() if v.severity is severity)
            self.metrics.incidents_open.labels(severity.value).set(count)

    def paused(self) -> bool:
        return self.journal.get_flag(PAUSED_FLAG) == "1"

    # ---- the one way an incident moves --------------------------------------

    def commit(
        self,
        view: View,
        decision: moves.Decision,
        *,
        plan: Plan | None = None,
        targets: Sequence[str] = (),
        unknown_steps: Sequence[tuple[int, str]] = (),
        events: Sequence[EventRow] = (),
    ) -> View:
        """Journal a decision's moves in one transaction, then update the cache."""
        now = self.clock()
        states: list[tuple[str, str]] = []
        pages: list[PageRows] = []
        state = view.state
        for move in decision.moves:
            after = Lifecycle(state).move(move.trigger)
            states.append((after, move.reason))
            if self.compose_page is not None:
                page = self.compose_page(view.id, state, after, move.reason, plan)
                if page is not None and page.status == "dry_run" and self.touched(view.id):
                    page = replace(page, status="pending")  # real damage is paged for real
                if page is not None:
                    pages.append(page)
            state = after
        notes = [EventRow(decision.note_kind, decision.note)] if decision.note else []
        climb = (view.rung + 1, decision.climb) if decision.climb is not None else None
        if climb is not None:
            notes.append(EventRow("rung", f"{view.scenario} → {decision.climb} (rung {climb[0]})"))
        closed = any(m.closed for m in decision.moves)
        record = MoveRecord(
            at=now,
            states=tuple(states),
            closed=closed,
            plan=plan,
            climb=climb,
            actions=tuple(targets) if decision.count_budget else (),
            unknown_steps=tuple(unknown_steps) if decision.mark_unknown else (),
            events=(*events, *notes),
            pages=tuple(pages),
            followups=self.owed(view.id, state, now) if closed else (),
        )
        self.journal.commit_move(view.id, record)
        before = view.state
        for after, reason in states:
            log.info("incident_state", incident=view.id, key=view.key, state=after, reason=reason)
            if self.on_move is not None:
                self.on_move(view.id, before, after, reason)
            before = after
        for page in pages:
            if self.on_page is not None:
                self.on_page(view.id, page)
        if climb is not None:
            view = replace(view, rung=climb[0], scenario=climb[1])
        if states:
            view = replace(view, state=state, entered_at=now)
        if record.closed:
            self.forget(view)
        else:
            self.views[view.key] = view
        if record.actions:
            hour_ago = now - 3600
            spent = self.journal.actions_since(hour_ago, target=PLAN_BUDGET)
            self.metrics.budget_remaining.set(budget_remaining(self.policy.guards, spent))
        self.count_open()
        return view

    def owed(self, incident_id: int, final_state: str, at: float) -> tuple[FollowupDue, ...]:
        """The follow-ups an incident ending now owes (written with the move that ends it)."""
        return followups_owed(
            final_state=final_state,
            step_statuses=[s.status for s in self.journal.steps(incident_id)],
            items=self.policy.followups,
            closed_at=at,
        )

    def touched(self, incident_id: int) -> bool:
        """Whether a step of this incident really ran (a dry run's steps are 'skipped')."""
        return any(s.status != "skipped" for s in self.journal.steps(incident_id))

    def forget(self, view: View) -> None:
        """Drop a closed incident: its findings reset, its key free for the next fault."""
        self.views.pop(view.key, None)
        self.verifying.pop(view.id, None)
        self.resuming.discard(view.id)
        self.closed_findings |= view.finding_ids

    def decide(
        self, view: View, event: moves.Event, plan: Plan | None, finding: Finding | None = None
    ) -> moves.Decision:
        """Ask the core, with the facts of this instant."""
        rung = self.policy.scenarios.get(view.scenario)
        incident = moves.Incident(
            key=view.key,
            state=view.state,
            plan=plan,
            rung=view.rung,
            next_rung=rung.next if rung is not None else None,
            entered_at=view.entered_at,
            protected=tuple(protected_in(
                plan, [*self.policy.stack.protected_services, *self.found_protected()]
            )) if plan is not None else (),
        )
        switches = moves.Switches(
            guards=self.policy.guards,
            facts=self.guard_facts(view, plan, finding, climbing=view.rung > 0),
            dry_run=self.executor.dry_run,
            has_preflight=plan is not None and self.executor.has_preflight(plan),
        )
        return moves.decide(incident, event, switches, self.clock())

    def guard_facts(
        self, view: View, plan: Plan | None, finding: Finding | None, *, climbing: bool
    ) -> GuardFacts:
        now = self.clock()
        hour_ago = now - 3600
        targets = plan_targets(plan, view.key) if plan is not None else []
        last = {
            t: at
            for t in ([] if climbing else targets)
            if (at := self.journal.last_action_at(t)) is not None
        }
        return GuardFacts(
            paused=self.paused(),
            actions_last_hour=self.journal.actions_since(hour_ago, target=PLAN_BUDGET),
            last_action_at=last,
            evidence_age_seconds=max(0.0, now - self.evidence_time(finding))
            if finding is not None
            else 0.0,
            evidence_max_age_seconds=self.max_evidence_age,
            recent_actions={t: self.journal.actions_since(hour_ago, target=t) for t in last},
        )

    def evidence_time(self, finding: Finding) -> float:
        latest = self.windows.latest_reading(finding.signal, finding.series)
        return latest.at if latest is not None else finding.since

    def perform(self, view: View, decision: moves.Decision, plan: Plan | None) -> None:
        """Start the work a committed decision calls for."""
        if decision.work is moves.Work.RUN and plan is not None:
            self.resuming.discard(view.id)
            self.spawn(view, self._run(view.key, plan, decision.start), "run")
        elif decision.work is moves.Work.PREFLIGHT and plan is not None:
            self.spawn(view, self._preflight(view.key, plan), "preflight")
        elif decision.work is moves.Work.VERIFY:
            self.resuming.discard(view.id)
            self.verifying[view.id] = Verification(started=self.clock())
        elif decision.work is moves.Work.REPLAN:
            self.resuming.discard(view.id)
            findings = self.journal.findings(view.id)
            if findings:
                self.plan(view, findings[0])
            else:
                self.commit(
                    view, moves.Decision((moves.Move("escalate", "no finding to plan from"),))
                )

    def spawn(self, view: View, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(work, name=f"incident-{view.id}-{what}")
        self.tasks[view.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(view.id, None))

    # ---- plans -------------------------------------------------------------

    def plan(self, view: View, finding: Finding, *, trigger: moves.Move | None = None) -> None:
        """Make the plan for the incident's scenario and decide how it starts: one commit."""
        plan = plan_for(
            self.policy,
            scenario=view.scenario,
            severity=view.severity,
            subject=view.subject,
            # `incident`: the plan's own id, under which provider.disable writes its undo.
            params={"series": finding.series, **finding.param_map(), "incident": str(view.id)},
            why=finding.reason,
        )
        refused = None
        if self.known_subjects is not None and steered_by_labels(self.policy, finding):
            verdict = assess_plan(plan, self.known_subjects())
            if not verdict.known:  # an alert label named it: page, act on nothing
                plan, refused = acting_on_nothing(plan, verdict), verdict.reason
                self.metrics.unknown_subjects.labels(verdict.kind).inc()
                log.warning("unknown_subject", incident=view.id, reason=verdict.reason)
        plan, blocked, prechecked = assess(self.facts, plan, view.severity, finding)
        refused, moved = refused or blocked, view
        if trigger is not None:  # the triage move goes in the same transaction
            moved = replace(view, state=Lifecycle(view.state).move(trigger.trigger))
        decision = self.decide(moved, moves.PlanReady(refused), plan, finding)
        if trigger is not None:
            decision = replace(decision, moves=(trigger, *decision.moves))
        auth = plan.authorization
        event = EventRow(
            "authorization",
            auth.reason,
            {"mode": auth.mode.value, "role": auth.role, "quorum": auth.quorum},
        )
        targets = [PLAN_BUDGET, *plan_targets(plan, view.key)]
        view = self.commit(view, decision, plan=plan, targets=targets, events=(event, *prechecked))
        self.perform(view, decision, plan)

    async def _preflight(self, key: str, plan: Plan) -> None:
        """Before asking a human: check what the plan depends on and say so on the page."""
        view = self.views[key]
        try:
            assessment = await self.executor.assess(plan)
            blocked, impact = assessment.blocked, assessment.impact
        except Exception as error:  # a bug of ours: page rather than wait forever
            log.exception("preflight_crashed", incident=view.id)
            blocked, impact = f"the preflight failed: {type(error).__name__}: {error}", ()
        current = self.views.get(key)
        if current is None or current.id != view.id or current.state != "triaged":
            return
        view = current
        shown = replace(plan, impact=(*plan.impact, *impact)) if impact else None
        decision = self.decide(view, moves.PreflightDone(blocked), shown or plan)
        event = EventRow(
            "preflight",
            blocked or "; ".join(impact) or "nothing to check",
            {"impact": list(impact), "blocked": blocked},
        )
        self.commit(view, decision, plan=shown, events=(event,))

    async def _run(self, key: str, plan: Plan, start: int) -> None:
        view = self.views[key]
        try:
            run = await self.executor.run_plan(view.id, plan, start=start, rung=view.rung)
        except asyncio.CancelledError:
            if view.id in self.ended_by_humans:  # else (shutdown) the restart decides
                self._abandon_steps(view.id, "the plan was cancelled: a human ended the incident")
            raise
        except Exception as error:  # a bug of ours: page, never leave it 'executing' silently
            log.exception("plan_crashed", incident=view.id)
            self._abandon_steps(view.id, f"the executor failed: {error}")
            run = PlanRun(False, f"the executor failed: {type(error).__name__}: {error}", 0)
        current = self.views.get(key)
        if current is None or current.id != view.id:
            return  # closed meanwhile
        finished = moves.PlanFinished(
            run.ok, run.reason, run.blocked, run.compensated, run.compensation_failed
        )
        decision = self.decide(current, finished, plan)
        current = self.commit(current, decision)
        self.perform(current, decision, plan)

    def _abandon_steps(self, incident_id: int, why: str) -> None:
        for step in self.journal.steps(incident_id):
            if step.status == "started":
                self.journal.step_finished(step.id, status="unknown", at=self.clock(), output=why)

    # ---- every tick --------------------------------------------------------
