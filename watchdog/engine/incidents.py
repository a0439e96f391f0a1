"""Carrying incidents through their lifecycle: journal first, then act.

The decision core says what to open, how severe, which plan and who must agree;
this module makes it so, in order: journal the decision, move the lifecycle,
then start the plan (in its own task, so a slow step never stalls detection),
verify it against the checklist, and resolve or escalate. Each incident's state
lives in the journal; the in-memory views here are a cache rebuilt from it at
start, which is how a restarted daemon picks up where the last one stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from watchdog.engine.executor import Assessment, Executor, PlanRun
from watchdog.metrics import Metrics
from watchdog.model import AuthMode, Finding, Plan, Severity
from watchdog.policy.authorize import counted_approvers
from watchdog.policy.durations import format_duration
from watchdog.policy.guards import GuardFacts, assess_guards, budget_remaining
from watchdog.policy.lifecycle import Lifecycle
from watchdog.policy.planner import plan_for
from watchdog.policy.rules import RuleState
from watchdog.policy.schema import Policy
from watchdog.policy.triage import (
    Attach,
    Escalate,
    Open,
    OpenIncident,
    TriageDecision,
    finding_id,
    rule_key,
)
from watchdog.policy.verify import assess
from watchdog.policy.windows import Windows
from watchdog.store.journal import Journal
from watchdog.store.records import PAUSED_FLAG

log = structlog.get_logger("watchdog.incidents")

#: The journal's action target that counts automatic plans against the hourly budget.
PLAN_BUDGET = "budget:automatic-plan"
WAITING_STATES = ("awaiting_approval",)


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

    def for_triage(self) -> OpenIncident:
        return OpenIncident(
            self.key, self.severity, self.scenario, self.finding_ids, self.supersedes
        )


@dataclass(slots=True)
class Verification:
    started: float
    passing_since: float | None = None
    last_verdicts: tuple[bool, ...] = ()
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
        self.views: dict[str, View] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.verifying: dict[int, Verification] = {}
        # Findings of incidents just closed. A verified recovery is the authoritative
        # clear: the daemon resets these rules, so a fault that comes back must fire
        # anew (after its `for`) and opens a new incident, and one still in its
        # clear_for period does not reopen the old one.
        self.closed_findings: set[str] = set()
        self.max_evidence_age = max((s.staleness_limit() for s in policy.signals), default=60.0)
        # Told of every journaled move (id, from, to, reason): the pager's one hook.
        self.on_move: Callable[[int, str, str, str], None] | None = None

    # ---- bookkeeping -------------------------------------------------------

    def open_views(self) -> list[OpenIncident]:
        return [view.for_triage() for view in self.views.values()]

    def take_closed_findings(self) -> set[str]:
        closed, self.closed_findings = self.closed_findings, set()
        return closed

    def _move(self, view: View, trigger: str, reason: str, *, closed: bool = False) -> View:
        state = Lifecycle(view.state).move(trigger)
        now = self.clock()
        self.journal.set_state(view.id, state=state, at=now, reason=reason, closed=closed)
        log.info("incident_state", incident=view.id, key=view.key, state=state, reason=reason)
        if self.on_move is not None:
            self.on_move(view.id, view.state, state, reason)
        updated = replace(view, state=state, entered_at=now)
        if closed:
            self.views.pop(view.key, None)
            self.closed_findings |= view.finding_ids
        else:
            self.views[view.key] = updated
        self._count_open()
        return updated

    def _count_open(self) -> None:
        for severity in Severity:
            count = sum(1 for v in self.views.values() if v.severity is severity)
            self.metrics.incidents_open.labels(severity.value).set(count)

    # ---- triage decisions --------------------------------------------------

    def apply(self, decisions: Iterable[TriageDecision]) -> None:
        for decision in decisions:
            if isinstance(decision, Open):
                self._open(decision)
            elif isinstance(decision, Escalate):
                self._escalate(decision)
            else:
                self._attach(decision)

    def _open(self, decision: Open) -> None:
        now = self.clock()
        first_breach = min(f.since for f in decision.findings)
        incident_id = self.journal.open_incident(
            key=decision.key,
            severity=decision.severity,
            scenario=decision.scenario,
            subject=decision.subject,
            state="detected",
            reason=decision.reason,
            at=now,
            findings=decision.findings,
        )
        supersedes = frozenset(g for f in decision.findings for g in f.supersedes)
        view = View(
            incident_id,
            decision.key,
            decision.severity,
            decision.scenario,
            decision.subject,
            "detected",
            frozenset(finding_id(f) for f in decision.findings),
            supersedes,
            first_breach,
            now,
        )
        self.views[decision.key] = view
        self.metrics.incidents_opened.labels(decision.severity.value, decision.scenario).inc()
        self.metrics.detection_delay.labels(decision.scenario).observe(max(0.0, now - first_breach))
        log.info(
            "incident_opened",
            incident=incident_id,
            key=decision.key,
            severity=decision.severity.value,
            scenario=decision.scenario,
            reason=decision.reason,
        )
        view = self._move(view, "triage", decision.reason)
        self._plan_and_start(view, decision.findings[0])

    def _attach(self, decision: Attach) -> None:
        view = self.views[decision.key]
        self.journal.add_finding(view.id, decision.finding, self.clock())
        self.views[decision.key] = replace(
            view, finding_ids=view.finding_ids | {finding_id(decision.finding)}
        )

    def _escalate(self, decision: Escalate) -> None:
        view = self.views[decision.key]
        now = self.clock()
        self.journal.add_finding(view.id, decision.finding, now)
        self.journal.set_severity(
            view.id,
            severity=decision.severity,
            scenario=decision.scenario,
            at=now,
            reason=decision.reason,
        )
        view = replace(
            view,
            severity=decision.severity,
            scenario=decision.scenario,
            finding_ids=view.finding_ids | {finding_id(decision.finding)},
        )
        self.views[decision.key] = view
        self._count_open()
        log.warning("incident_escalated", incident=view.id, reason=decision.reason)
        if Lifecycle(view.state).can("retriage"):
            view = self._move(
                view, "retriage", f"re-planned after escalation to {decision.severity}"
            )
            self._plan_and_start(view, decision.finding)

    # ---- planning and execution -------------------------------------------

    def _plan_and_start(self, view: View, finding: Finding, *, climbing: bool = False) -> None:
        plan = plan_for(
            self.policy,
            scenario=view.scenario,
            severity=view.severity,
            subject=view.subject,
            # `incident`: the plan's own id, under which provider.disable writes its undo.
            params={"series": finding.series, **finding.param_map(), "incident": str(view.id)},
            why=finding.reason,
        )
        now = self.clock()
        self.journal.save_plan(view.id, plan, at=now)
        self.journal.add_event(
            view.id,
            at=now,
            kind="authorization",
            summary=plan.authorization.reason,
            data={
                "mode": plan.authorization.mode.value,
                "role": plan.authorization.role,
                "quorum": plan.authorization.quorum,
            },
        )
        if not plan.steps:
            self._move(
                view, "notify_only", f"{plan.title}: nothing to run; {plan.authorization.reason}"
            )
            return
        if plan.authorization.mode is AuthMode.NEVER:
            self._move(view, "notify_only", plan.authorization.reason)
            return
        if plan.authorization.mode is AuthMode.APPROVAL:
            if self.executor.has_preflight(plan):
                self._spawn(view, self._prepare(view.key, plan), "prepare")
            else:
                self._move(view, "request_approval", plan.authorization.reason)
            return
        protected = protected_in(plan, self.policy.stack.protected_services)
        if protected:
            self._move(
                view,
                "escalate",
                f"{', '.join(protected)} is protected (stateful): never stopped, restarted or "
                "recreated automatically; paging with the plan instead",
            )
            return
        self._start_if_guards_allow(view, plan, finding, climbing=climbing)

    def _start_if_guards_allow(
        self, view: View, plan: Plan, finding: Finding, *, climbing: bool = False
    ) -> None:
        now = self.clock()
        targets = plan_targets(plan, view.key)
        hour_ago = now - 3600
        actions = self.journal.actions_since(hour_ago, target=PLAN_BUDGET)
        last = {
            t: at
            for t in ([] if climbing else targets)
            if (at := self.journal.last_action_at(t)) is not None
        }
        recent = {t: self.journal.actions_since(hour_ago, target=t) for t in last}
        evidence_age = max(0.0, now - self._evidence_time(finding))
        verdict = assess_guards(
            self.policy.guards,
            GuardFacts(
                paused=self.journal.get_flag(PAUSED_FLAG) == "1",
                actions_last_hour=actions,
                last_action_at=last,
                evidence_age_seconds=evidence_age,
                evidence_max_age_seconds=self.max_evidence_age,
                recent_actions=recent,
            ),
            now,
        )
        self.journal.add_event(view.id, at=now, kind="guards", summary=verdict.reason)
        if not verdict.allowed:
            self._move(view, "escalate", verdict.reason)
            return
        if not self.executor.dry_run:
            for target in [PLAN_BUDGET, *targets]:
                self.journal.record_action(target=target, at=now)
        self.metrics.budget_remaining.set(
            budget_remaining(
                self.policy.guards, self.journal.actions_since(hour_ago, target=PLAN_BUDGET)
            )
        )
        view = self._move(view, "execute", f"{plan.title}: {plan.authorization.reason}")
        self.start_plan(view, plan, 0)

    def _evidence_time(self, finding: Finding) -> float:
        latest = self.windows.latest(finding.signal, finding.series)
        return latest.at if latest is not None else finding.since

    def start_plan(self, view: View, plan: Plan, start: int) -> None:
        self._spawn(view, self._run(view.key, plan, start), "run")

    def _spawn(self, view: View, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(work, name=f"incident-{view.id}-{what}")
        self.tasks[view.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(view.id, None))

    async def _prepare(self, key: str, plan: Plan) -> None:
        """Before asking a human: check what the plan depends on (the backup) and say so.

        The page then carries the backup's age and the data-loss window; a plan
        that cannot work (no backup, a stale one, a migration with no down file)
        is never put to a vote: the incident escalates with the reason instead.
        """
        view = self.views[key]
        try:
            assessment = await self.executor.assess(plan)
        except Exception as error:  # a bug of ours: page rather than wait forever
            log.exception("preflight_crashed", incident=view.id)
            assessment = Assessment((), f"the preflight failed: {type(error).__name__}: {error}")
        view = self.views.get(key, view)
        if view.state != "triaged":
            return
        now = self.clock()
        if assessment.impact:
            plan = replace(plan, impact=(*plan.impact, *assessment.impact))
            self.journal.save_plan(view.id, plan, at=now)
        self.journal.add_event(
            view.id,
            at=now,
            kind="preflight",
            summary=assessment.blocked or "; ".join(assessment.impact) or "nothing to check",
            data={"impact": list(assessment.impact), "blocked": assessment.blocked},
        )
        if assessment.blocked is not None:
            self._move(
                view,
                "escalate",
                f"the plan cannot run, so it is not put to approval: {assessment.blocked}",
            )
            return
        self._move(view, "request_approval", plan.authorization.reason)

    async def _run(self, key: str, plan: Plan, start: int) -> None:
        view = self.views[key]
        try:
            run = await self.executor.run_plan(view.id, plan, start=start)
        except Exception as error:  # a bug of ours: page, never leave it 'executing' silently
            log.exception("plan_crashed", incident=view.id)
            run = PlanRun(False, f"the executor failed: {type(error).__name__}: {error}", 0)
        view = self.views.get(key, view)
        if run.ok:
            self._move(view, "verify", run.reason)
            self.verifying[view.id] = Verification(started=self.clock())
        else:
            self._failed(self._move(view, "fail", run.reason), run.reason)

    def _failed(self, view: View, why: str) -> None:
        """Climb to the next rung of the remediation ladder, or page when there is none."""
        rung = self.policy.scenarios[view.scenario].next
        if rung is None:
            self._move(view, "escalate", f"rollback failed, paging a human: {why}")
            return
        findings = self.journal.findings(view.id)
        now = self.clock()
        reason = f"{view.scenario} did not recover it; next rung of the ladder: {rung}"
        self.journal.set_severity(
            view.id, severity=view.severity, scenario=rung, at=now, reason=reason
        )
        view = self._move(replace(view, scenario=rung), "next_rung", reason)
        if findings:
            # The ladder is one remediation: its own earlier rung is no cooldown.
            self._plan_and_start(view, findings[0], climbing=True)
        else:
            self._move(view, "escalate", "no finding to plan the next rung from")

    # ---- every tick --------------------------------------------------------

    def tick(self, active: list[Finding], states: Mapping[tuple[str, str], RuleState]) -> None:
        self._verify()
        self._settle_quiet_incidents(active, states)
        self._check_approvals()

    def _verify(self) -> None:
        now = self.clock()
        for view in [v for v in self.views.values() if v.state == "verifying"]:
            verification = self.verifying.setdefault(view.id, Verification(started=now))
            if verification.plan is None:
                verification.plan = self.journal.plan(view.id)
            plan = verification.plan
            if plan is None:
                continue
            assessment = assess(plan.checklist, self.windows, now, self.max_evidence_age)
            verdicts = tuple(r.passed for r in assessment.results)
            if verdicts != verification.last_verdicts:  # journal changes, not every reading
                verification.last_verdicts = verdicts
                self.journal.add_event(
                    view.id, at=now, kind="verification", summary=assessment.summary
                )
            if assessment.passed:
                if verification.passing_since is None:
                    verification.passing_since = now
                if now - verification.passing_since >= plan.verify_for_seconds:
                    recovered = now - view.first_breach
                    self.metrics.time_to_recover.labels(view.scenario).observe(recovered)
                    self.verifying.pop(view.id, None)
                    self._move(
                        view,
                        "resolve",
                        f"checklist held for {format_duration(plan.verify_for_seconds)}: "
                        f"{assessment.summary}; recovered {format_duration(recovered)} "
                        "after the first breach",
                        closed=True,
                    )
                continue
            verification.passing_since = None
            if now - verification.started > plan.verify_timeout_seconds:
                self.verifying.pop(view.id, None)
                why = (
                    "checklist did not hold within "
                    f"{format_duration(plan.verify_timeout_seconds)}: {assessment.summary}"
                )
                self._failed(self._move(view, "fail", why), why)

    def _settle_quiet_incidents(
        self, active: list[Finding], states: Mapping[tuple[str, str], RuleState]
    ) -> None:
        """Close notify-only incidents, and resolve escalated ones, once their findings clear.

        Clear means seen clear: every rule behind the incident has been evaluated
        since the daemon started and is neither active nor breaching. An incident
        with no findings, or one whose rules have not been evaluated yet (just
        after a restart), stays open for a human.
        """
        live_keys = {f.key for f in active}
        for view in list(self.views.values()):
            if view.key in live_keys or any(f.group in view.supersedes for f in active):
                continue
            if not view.finding_ids or not all(
                _seen_clear(states.get(rule_key(fid))) for fid in view.finding_ids
            ):
                continue
            if view.state == "notified":
                self._move(view, "close", "every finding cleared", closed=True)
            elif view.state == "escalated":
                self._move(
                    view,
                    "resolve",
                    "every finding cleared (recovered outside the plan)",
                    closed=True,
                )

    def _check_approvals(self) -> None:
        now = self.clock()
        for view in [v for v in self.views.values() if v.state in WAITING_STATES]:
            plan = self.journal.plan(view.id)
            if plan is None:
                continue
            decisions = self.journal.approvals(view.id)
            rejected = [a for a in decisions if a.decision == "reject"]
            if rejected:
                who = rejected[-1]
                view = self._move(
                    view, "reject", f"rejected by {who.person} ({who.role}): {who.comment}"
                )
                self._move(view, "escalate", "plan rejected: a human takes over")
                continue
            needed = plan.authorization
            approvers = counted_approvers(
                ((a.person, a.role, a.decision) for a in decisions), needed.role
            )
            if len(approvers) >= max(1, needed.quorum):
                view = self._move(
                    view, "approve", f"approved by {', '.join(approvers)} ({needed.role})"
                )
                view = self._move(view, "execute", "approved plan starts")
                self.start_plan(view, plan, 0)
            elif now - view.entered_at > self.policy.guards.approval_expires:
                self.metrics.approvals.labels("expire").inc()
                view = self._move(
                    view,
                    "expire",
                    f"no approval within {format_duration(self.policy.guards.approval_expires)}",
                )
                self._move(view, "escalate", "approval expired: paging again")


def _seen_clear(state: RuleState | None) -> bool:
    return state is not None and not state.active and state.breach_since is None


def protected_in(plan: Plan, protected: Iterable[str]) -> list[str]:
    """The protected services an automatic plan would touch."""
    return sorted(set(plan_targets(plan, "")) & set(protected))


def plan_targets(plan: Plan, key: str) -> list[str]:
    """What a plan changes, for cooldowns: the services it stops or restarts, and the incident.

    Targets that are only read or reloaded are left out: reloading the
    configuration twice in a minute is harmless, restarting a service twice is a loop.
    """
    touched: set[str] = {f"incident:{key}"}
    for step in plan.steps:
        params = step.param_map()
        services = params.get("services", params.get("service", []))
        touched.update([services] if isinstance(services, str) else [str(s) for s in services])
    return sorted(touched)


class Recovery:
    """Rebuilds the in-memory views from the journal after a restart, and resumes.

    An incident that was executing resumes at the step in flight only if that
    step is idempotent; otherwise the step is marked unknown and the incident
    escalates. A step is never run twice blindly.
    """

    def __init__(self, incidents: Incidents) -> None:
        self.incidents = incidents

    def run(self) -> int:
        manager = self.incidents
        journal = manager.journal
        now = manager.clock()
        for record in journal.open_incidents():
            findings = journal.findings(record.id)
            view = View(
                record.id,
                record.key,
                record.severity,
                record.scenario,
                record.subject,
                record.state,
                frozenset(finding_id(f) for f in findings),
                frozenset(g for f in findings for g in f.supersedes),
                min((f.since for f in findings), default=record.opened_at),
                record.updated_at,
            )
            manager.views[record.key] = view
            journal.add_event(
                record.id,
                at=now,
                kind="recovered",
                summary=f"daemon restarted; incident was {record.state}",
            )
            log.info("incident_recovered", incident=record.id, state=record.state)
            self._resume(view, findings)
        manager._count_open()
        return len(manager.views)

    def _resume(self, view: View, findings: list[Finding]) -> None:
        manager = self.incidents
        plan = manager.journal.plan(view.id)
        if view.state == "detected":
            view = manager._move(view, "triage", "triaged after restart")
        if view.state == "triaged" and findings:
            manager._plan_and_start(view, findings[0])
        elif view.state == "approved" and plan is not None:
            view = manager._move(view, "execute", "approved plan starts after restart")
            manager.start_plan(view, plan, 0)
        elif view.state == "verifying":
            manager.verifying[view.id] = Verification(started=manager.clock())
        elif view.state == "executing" and plan is not None:
            self._resume_execution(view, plan)

    def _resume_execution(self, view: View, plan: Plan) -> None:
        manager = self.incidents
        journal = manager.journal
        now = manager.clock()
        steps = journal.steps(view.id)
        unfinished = [s for s in steps if s.status == "started"]
        if unfinished:
            step = unfinished[-1]
            if step.idempotent:
                journal.step_finished(
                    step.id,
                    status="unknown",
                    at=now,
                    output="the daemon stopped during this step; it is idempotent, "
                    "so it runs again",
                )
                manager.start_plan(view, plan, step.index)
            else:
                journal.step_finished(
                    step.id,
                    status="unknown",
                    at=now,
                    output="the daemon stopped during this step; it is not idempotent, so its "
                    "effect is unknown and it is NOT run again",
                )
                failed = manager._move(
                    view, "fail", f"step '{step.name}' interrupted; outcome unknown"
                )
                manager._move(
                    failed, "escalate", "a human must check what the interrupted step did"
                )
            return
        if steps and steps[-1].status == "failed":
            failed = manager._move(
                view, "fail", f"step '{steps[-1].name}' had failed before the restart"
            )
            manager._move(failed, "escalate", "rollback failed, paging a human")
            return
        done = max((s.index for s in steps if s.status in ("succeeded", "skipped")), default=-1)
        if done + 1 >= len(plan.steps):
            manager._move(view, "verify", "every step had finished before the restart")
            manager.verifying[view.id] = Verification(started=now)
        else:
            manager.start_plan(view, plan, done + 1)
