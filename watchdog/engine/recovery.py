"""After a restart: every open incident rebuilt from the journal and decided anew.

Resume is a new decision, not a replay (ARCHITECTURE.md): for each incident not
yet final the journal's steps of its current rung are read into the facts the
core needs (a step left in flight and whether it may run again, a failed step,
the next step to run) and `moves.decide` says what happens, under the same
guards and the same authority as a new plan. Every non-final state has an
answer, so no incident wedges: `failed`, `rejected` and `expired` escalate and
page; an interrupted plan that ran on a human's authority asks again; an
automatic one continues only if the guards pass on fresh evidence.
"""

from __future__ import annotations

import structlog

from watchdog.engine.incidents import Incidents, View
from watchdog.model import Finding
from watchdog.policy import moves
from watchdog.policy.compensation import COMPENSATE
from watchdog.policy.triage import finding_id
from watchdog.store.records import EventRow, StepRecord

log = structlog.get_logger("watchdog.recovery")


class Recovery:
    """Rebuilds the in-memory views from the journal at start, then decides each incident."""

    def __init__(self, incidents: Incidents) -> None:
        self.incidents = incidents

    def run(self) -> int:
        manager = self.incidents
        journal = manager.journal
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
                record.rung,
            )
            manager.views[record.key] = view
            log.info("incident_recovered", incident=record.id, state=record.state)
            self.decide(view, findings, first=True)
        manager.count_open()
        return len(manager.views)

    def tick(self) -> None:
        """Incidents whose resume waits for fresh evidence are decided again."""
        manager = self.incidents
        for view in list(manager.views.values()):
            if view.id in manager.resuming and view.state == "executing":
                self.decide(view, manager.journal.findings(view.id), first=False)

    def decide(self, view: View, findings: list[Finding], *, first: bool) -> None:
        manager = self.incidents
        plan = manager.journal.plan(view.id)
        steps = [s for s in manager.journal.steps(view.id) if s.rung == view.rung]
        event = restarted(steps, findings, manager)
        decision = manager.decide(view, event, plan, findings[0] if findings else None)
        waiting = not decision.moves and decision.work is moves.Work.NOTHING
        if waiting and view.state == "executing":
            if first:
                manager.resuming.add(view.id)
                manager.journal.add_event(
                    view.id, at=manager.clock(), kind="recovered", summary=decision.reason
                )
            return
        in_flight = [s for s in steps if s.status == "started"]
        unknown = [
            (s.id, "the daemon stopped during this step; " + _fate(s, decision))
            for s in in_flight
        ]
        recovered = EventRow("recovered", f"daemon restarted; incident was {view.state}")
        view = manager.commit(
            view, decision, unknown_steps=unknown, events=(recovered,) if first else ()
        )
        manager.perform(view, decision, plan)


def restarted(
    steps: list[StepRecord], findings: list[Finding], manager: Incidents
) -> moves.Restarted:
    """What the journal's steps of the current rung say, as the core's facts."""
    in_flight = next((s for s in reversed(steps) if s.status == "started"), None)
    # A compensation row puts back what the plan took down; it is not a step of the plan.
    own = [s for s in steps if not s.name.startswith(COMPENSATE)]
    finished = [s for s in own if s.status != "started"]
    failed = finished[-1].name if finished and finished[-1].status == "failed" else None
    done = {s.index for s in own if s.status in ("succeeded", "skipped")}
    next_step = 0
    while next_step in done:
        next_step += 1
    fresh = any(
        (latest := manager.windows.latest(f.signal, f.series)) is not None
        and latest.at >= manager.started_at
        for f in findings
    )
    return moves.Restarted(
        in_flight=(in_flight.name, in_flight.idempotent) if in_flight is not None else None,
        failed_step=failed,
        next_step=next_step,
        evidence_fresh=fresh or not findings,
        uptime=manager.clock() - manager.started_at,
    )


def _fate(step: StepRecord, decision: moves.Decision) -> str:
    if not step.idempotent:
        return "it is not idempotent, so its outcome is unknown and it is NOT run again"
    if decision.work is moves.Work.RUN:
        return "it is idempotent, so it runs again"
    return "it is idempotent, but the plan does not resume: " + decision.reason
