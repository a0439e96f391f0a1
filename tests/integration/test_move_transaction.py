"""One transaction per move: a state change and everything it causes, or nothing.

Before issue 12 a move's state change and the page it caused were separate
writes (`set_state`, then `enqueue_page`), as were fail → escalate, and the
budget charge: a crash between them moved the incident without its page, or
left it in `failed`. `commit_move` writes them together; these tests show the
whole lands, and that a failure anywhere in it leaves the journal as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.model import AuthMode, Authorization, Plan, Risk, Severity, Step
from watchdog.store.journal import Journal, open_journal
from watchdog.store.records import EventRow, MoveRecord, PageRows

T0 = 1_800_000_000.0
PLAN = Plan(
    scenario="service_failure",
    title="restart rest-api",
    steps=(Step("restart", "service.restart", Risk.SAFE, (("services", ("rest-api",)),)),),
    checklist=(),
    verify_for_seconds=10,
    verify_timeout_seconds=60,
    authorization=Authorization(AuthMode.AUTO, "P2 safe steps run at once"),
    reason="rest-api down",
)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return open_journal(str(tmp_path / "journal.db"))


def opened(journal: Journal) -> int:
    return journal.open_incident(
        key="service_failure/rest-api", severity=Severity.P2, scenario="service_failure",
        subject="rest-api", state="executing", reason="seeded", at=T0, findings=(),
    )


def page(status: str = "pending") -> PageRows:
    body = {"event_action": "trigger", "dedup_key": "songnodes/1"}
    return PageRows("trigger", "songnodes/1", {"pagerduty": body}, "rollback failed", status)


def test_a_move_writes_its_states_plan_budget_events_and_page_together(journal: Journal) -> None:
    incident = opened(journal)
    step_id = journal.step_started(incident, index=0, step=PLAN.steps[0], at=T0)
    journal.commit_move(
        incident,
        MoveRecord(
            at=T0 + 1,
            states=(("failed", "restart failed"), ("escalated", "paging a human")),
            plan=PLAN,
            climb=(1, "service_revert"),
            actions=("budget:automatic-plan", "rest-api"),
            unknown_steps=((step_id, "the daemon stopped during this step"),),
            events=(EventRow("guards", "guards pass"),),
            pages=(page(),),
        ),
    )
    record = journal.incident(incident)
    assert (record.state, record.rung, record.scenario) == ("escalated", 1, "service_revert")
    assert journal.plan(incident) == PLAN
    assert journal.actions_since(T0, target="rest-api") == 1
    assert [s.status for s in journal.steps(incident)] == ["unknown"]
    assert [(d.channel, d.status) for d in journal.deliveries(incident)] == [
        ("pagerduty", "pending")
    ]
    kinds = [e.kind for e in journal.timeline(incident)]
    assert kinds.count("state") == 2 and "guards" in kinds and "page" in kinds


def test_a_move_that_cannot_write_its_page_changes_nothing(journal: Journal) -> None:
    """A page that fails to write takes the whole move back: no state without its page."""
    incident = opened(journal)
    before = [e.id for e in journal.timeline(incident)]
    with pytest.raises(ValueError, match="status"):
        journal.commit_move(
            incident,
            MoveRecord(
                at=T0 + 1,
                states=(("failed", "restart failed"), ("escalated", "paging a human")),
                actions=("budget:automatic-plan",),
                pages=(page(status="sent"),),  # not a status a page is written with
            ),
        )
    assert journal.incident(incident).state == "executing"
    assert journal.actions_since(T0) == 0
    assert journal.deliveries(incident) == []
    assert [e.id for e in journal.timeline(incident)] == before


def test_a_move_for_an_unknown_incident_is_refused(journal: Journal) -> None:
    with pytest.raises(KeyError, match="no incident with id 99"):
        journal.commit_move(99, MoveRecord(at=T0, states=(("escalated", "x"),)))


def test_a_rise_in_severity_writes_its_finding_and_page_with_it(journal: Journal) -> None:
    from watchdog.model import Finding

    incident = opened(journal)
    finding = Finding(
        rule="several-breakers-open", signal="open_breakers", series="", severity=Severity.P1,
        scenario="enrichment_degradation", group="enrichment", subject="enrichment",
        since=T0, reason="3 breakers open",
    )
    journal.commit_move(
        incident,
        MoveRecord(
            at=T0 + 2,
            findings=(finding,),
            severity=(Severity.P1, "enrichment_degradation", "3 breakers open"),
            pages=(page(),),
        ),
    )
    record = journal.incident(incident)
    assert (record.severity, record.scenario, record.state) == (
        Severity.P1, "enrichment_degradation", "executing",
    )
    assert [f.rule for f in journal.findings(incident)] == ["several-breakers-open"]
    assert len(journal.deliveries(incident)) == 1
    kinds = [e.kind for e in journal.timeline(incident)]
    assert kinds[-3:] == ["finding", "escalated", "page"]


def test_after_a_restart_asks_again_the_same_person_may_approve_again(journal: Journal) -> None:
    """The crash matrix found it: killed after approve → execute, the restarted daemon asked
    for a fresh approval, while the approval rules still counted the old vote and refused
    the person with 409: the incident sat in awaiting_approval until it expired."""
    from watchdog.engine.approvals import Refused, record_decision
    from watchdog.people import Person

    plan = Plan(
        scenario="stateful_service_failure", title="start redis", steps=PLAN.steps,
        checklist=(), verify_for_seconds=10, verify_timeout_seconds=60,
        authorization=Authorization(AuthMode.APPROVAL, "needs a lead", role="lead", quorum=1),
        reason="redis down",
    )
    incident = journal.open_incident(
        key="stateful/redis", severity=Severity.P2, scenario="stateful_service_failure",
        subject="redis", state="detected", reason="seeded", at=T0, findings=(),
    )
    journal.commit_move(incident, MoveRecord(
        at=T0, states=(("triaged", "x"), ("awaiting_approval", "x")), plan=plan))
    lee = Person("lee", ("lead",), "")
    record_decision(journal, incident_id=incident, person=lee, decision="approve",
                    comment="", at=T0 + 1)
    with pytest.raises(Refused, match="already approved"):  # once per request, as before
        record_decision(journal, incident_id=incident, person=lee, decision="approve",
                        comment="", at=T0 + 2)
    journal.commit_move(incident, MoveRecord(
        at=T0 + 3, states=(("approved", "lee"), ("executing", "go"))))
    journal.commit_move(incident, MoveRecord(
        at=T0 + 9, states=(("awaiting_approval", "interrupted: needs a fresh approval"),)))
    again = record_decision(journal, incident_id=incident, person=lee, decision="approve",
                            comment="still go", at=T0 + 10)
    assert again.approvers == ("lee",)
