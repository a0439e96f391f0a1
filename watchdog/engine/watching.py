"""Every tick, for each open incident: a human's close, the checklist, cleared findings, votes.

Each reading becomes an event for the core (`moves.decide`); a decision that
moves is committed through `Incidents.commit` and its work started, like any other.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from watchdog.engine.incidents import Incidents, Verification
from watchdog.model import Finding
from watchdog.policy import moves
from watchdog.policy.rules import RuleState
from watchdog.policy.triage import rule_key
from watchdog.policy.verify import assess
from watchdog.store.codec import plan_digest

log = structlog.get_logger("watchdog.incidents")


class Watch:
    """The per-tick readings of the open incidents."""

    def __init__(self, incidents: Incidents) -> None:
        self.incidents = incidents

    def tick(self, active: list[Finding], states: Mapping[tuple[str, str], RuleState]) -> None:
        self._forget_closed_by_humans()
        self._verify()
        self._settle_quiet_incidents(active, states)
        self._count_votes()

    def _forget_closed_by_humans(self) -> None:
        """A human ended an incident (`watchdog incidents close`): stop acting on it."""
        if not self.incidents.views:
            return
        still_open = {r.id for r in self.incidents.journal.open_incidents()}  # one read a tick
        for view in list(self.incidents.views.values()):
            if view.id in still_open:
                continue
            record = self.incidents.journal.incident(view.id)
            log.info("incident_closed_by_human", incident=view.id, reason=record.reason)
            task = self.incidents.tasks.get(view.id)
            if task is not None:
                self.incidents.ended_by_humans.add(view.id)
                task.cancel()  # the step in flight is finished as 'unknown' (see _run)
            self.incidents.forget(view)
            self.incidents.count_open()
            if self.incidents.on_human_close is not None:
                self.incidents.on_human_close(view.id, view.state, record.state)

    def _verify(self) -> None:
        now = self.incidents.clock()
        for view in [v for v in self.incidents.views.values() if v.state == "verifying"]:
            verification = self.incidents.verifying.setdefault(view.id, Verification(started=now))
            if verification.plan is None:
                verification.plan = self.incidents.journal.plan(view.id)
            plan = verification.plan
            if plan is None:
                continue
            manager = self.incidents
            assessment = assess(plan.checklist, manager.windows, now, manager.max_evidence_age)
            verdicts = tuple(r.passed for r in assessment.results)
            if verdicts != verification.last_verdicts:  # journal changes, not every reading
                verification.last_verdicts = verdicts
                self.incidents.journal.add_event(
                    view.id, at=now, kind="verification", summary=assessment.summary
                )
            if assessment.passed and verification.passing_since is None:
                verification.passing_since = now
            elif not assessment.passed:
                verification.passing_since = None
            if assessment.passed:
                verification.reading, verification.reading_since = "", None
            elif assessment.summary != verification.reading:
                verification.reading, verification.reading_since = assessment.summary, now
            reading = moves.Checklist(
                assessment.passed, assessment.summary, verification.started,
                verification.passing_since, verification.reading_since,
            )
            decision = self.incidents.decide(view, reading, plan)
            if not decision.moves:
                continue
            if any(m.trigger == "resolve" for m in decision.moves):
                recovered = now - view.first_breach
                self.incidents.metrics.time_to_recover.labels(view.scenario).observe(recovered)
            self.incidents.verifying.pop(view.id, None)
            view = self.incidents.commit(view, decision)
            self.incidents.perform(view, decision, plan)

    def _settle_quiet_incidents(
        self, active: list[Finding], states: Mapping[tuple[str, str], RuleState]
    ) -> None:
        """Close notify-only incidents, and resolve escalated ones, once their findings clear.

        Clear means seen clear: every rule behind the incident has been evaluated
        since the daemon started and is neither active nor breaching.
        """
        live_keys = {f.key for f in active}
        for view in list(self.incidents.views.values()):
            if view.state not in ("notified", "escalated") or view.key in live_keys:
                continue
            if any(f.group in view.supersedes for f in active):
                continue
            if not view.finding_ids or not all(
                _seen_clear(states.get(rule_key(fid))) for fid in view.finding_ids
            ):
                continue
            self.incidents.commit(view, self.incidents.decide(view, moves.FindingsCleared(), None))

    def _count_votes(self) -> None:
        for view in [
            v for v in self.incidents.views.values() if v.state in ("awaiting_approval", "approved")
        ]:
            plan = self.incidents.journal.plan(view.id)
            if plan is None:
                continue
            votes = moves.Votes(
                tuple(
                    moves.Vote(a.person, a.role, a.decision, a.plan_digest, a.at, a.comment)
                    for a in self.incidents.journal.approvals(view.id)
                ),
                plan_digest(plan),
            )
            decision = self.incidents.decide(view, votes, plan)
            if not decision.moves and decision.work is moves.Work.NOTHING:
                continue
            if any(move.trigger == "expire" for move in decision.moves):
                self.incidents.metrics.approvals.labels("expire").inc()
            view = self.incidents.commit(view, decision)
            self.incidents.perform(view, decision, plan)



def _seen_clear(state: RuleState | None) -> bool:
    return state is not None and not state.active and state.breach_since is None
