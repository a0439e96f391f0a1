"""The follow-ups core (which items an ending incident owes) and the Markdown report.

Both are pure: facts in, values or text out, so every case is a few records.
"""

from __future__ import annotations

from watchdog.model import AuthMode, Authorization, Check, Finding, Plan, Risk, Severity, Step
from watchdog.policy.followups import followups_owed
from watchdog.policy.operatingspecs import FollowupSpec, runbook_followups
from watchdog.store.followups import FollowupRecord
from watchdog.store.markdown import SECTIONS, ReportFacts, incident_markdown, owner_words
from watchdog.store.records import ApprovalRecord, EventRecord, IncidentRecord, StepRecord

ITEMS = [
    FollowupSpec(text="Post-mortem scheduled", due_after=86400, owner="lead"),
    FollowupSpec(text="Runbook updated", due_after=7 * 86400, owner="oncall"),
]


def test_an_incident_that_ran_a_step_owes_every_item_due_after_it_ended() -> None:
    owed = followups_owed(
        final_state="resolved", step_statuses=["succeeded", "failed"], items=ITEMS,
        closed_at=1000.0,
    )
    assert [(f.text, f.owner, f.due_at) for f in owed] == [
        ("Post-mortem scheduled", "lead", 1000.0 + 86400),
        ("Runbook updated", "oncall", 1000.0 + 7 * 86400),
    ]
    assert owed[0].reason.startswith("resolved after 2 steps ran: due 24 h after")


def test_an_escalated_incident_closed_by_a_person_owes_them_too() -> None:
    owed = followups_owed(
        final_state="closed by a person", step_statuses=["unknown"], items=ITEMS, closed_at=5.0
    )
    assert len(owed) == 2 and "after 1 step ran" in owed[0].reason


def test_an_incident_that_never_acted_owes_nothing() -> None:
    for statuses in ([], ["skipped", "skipped"]):  # notified only; a dry run's steps
        assert followups_owed(
            final_state="closed", step_statuses=statuses, items=ITEMS, closed_at=5.0
        ) == ()


def test_the_default_is_the_runbooks_24_hour_and_1_week_lists() -> None:
    items = runbook_followups()
    day = [i.text for i in items if i.due_after == 86400]
    week = [i.text for i in items if i.due_after == 7 * 86400]
    assert len(day) == 5 and len(week) == 5 and len(items) == 10
    assert day[0] == "Post-mortem scheduled" and week[0] == "Post-mortem completed"
    assert {i.owner for i in items} == {"oncall", "lead", "team"}


# The report -------------------------------------------------------------------------

OPENED = 1_700_000_000.0


def facts(*, resolved: bool, followups: list[FollowupRecord]) -> ReportFacts:
    end = "resolved" if resolved else "escalated"
    record = IncidentRecord(
        id=7, key="service_failure/api", severity=Severity.P2, scenario="service_failure",
        subject="api", state=end if resolved else "closed", reason="api health 0 < 1",
        opened_at=OPENED, updated_at=OPENED + 60, closed_at=OPENED + 60,
    )
    events = [
        EventRecord(1, 7, OPENED, "opened", "P2 service_failure on api", {}),
        EventRecord(2, 7, OPENED + 1, "state", "triaged → executing: safe step, auto",
                    {"from": "triaged", "to": "executing"}),
        EventRecord(3, 7, OPENED + 5, "verification", "api health 1 >= 1: pass", {}),
        EventRecord(4, 7, OPENED + 42, "state", f"verifying → {end}: checklist held for 30 s",
                    {"from": "verifying", "to": end}),
    ]
    step = StepRecord(
        id=1, incident_id=7, index=0, name="restart the failed service",
        action="service.restart", risk=Risk.SAFE, params={"service": "api"},
        status="succeeded", attempt=1, started_at=OPENED + 1, finished_at=OPENED + 3.5,
        output="restarted api | pid 42\nhealthy", idempotent=True,
    )
    plan = Plan(
        scenario="service_failure", title="restart api",
        steps=(Step("restart", "service.restart", Risk.SAFE),),
        checklist=(Check("api healthy", "api_health", ">=", 1.0),), verify_for_seconds=30,
        verify_timeout_seconds=120, authorization=Authorization(AuthMode.AUTO, "safe step"),
        reason="api is down", impact=("api stops for a few seconds",),
    )
    finding = Finding(
        rule="service_down", signal="api_health", series="", severity=Severity.P2,
        scenario="service_failure", group="", subject="api", since=OPENED - 20,
        reason="api health 0 < 1 for 20 s", evidence=("health 0 at 12:00:00",),
    )
    approval = ApprovalRecord(1, 7, OPENED + 1, "lee", "lead", "approve", "go")
    return ReportFacts(
        record=record, events=events, steps=[step], plan=plan, findings=[finding],
        approvals=[approval], followups=followups, holders={"lead": ["lee", "kim"]},
    )


def followup(id_: int, due: float, *, done: bool = False) -> FollowupRecord:
    return FollowupRecord(
        id=id_, incident_id=7, text=f"item | {id_}", owner="lead", due_at=due, reason="r",
        created_at=OPENED + 60, done_at=OPENED + 100 if done else None,
        done_by="lee" if done else "",
    )


def test_the_report_has_every_section_with_times_reasons_and_outputs() -> None:
    text = incident_markdown(
        facts(resolved=True, followups=[followup(1, OPENED), followup(2, OPENED + 9e9),
                                         followup(3, OPENED, done=True)]),
        now=OPENED + 3600,
    )
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == list(SECTIONS)
    assert text.startswith("# Incident 7: P2 service_failure\n")
    assert "- api stops for a few seconds" in text  # impact
    assert "triaged → executing: safe step, auto" in text  # the reason of a decision
    assert "| 1 | restart the failed service | service.restart | safe | 1 |" in text
    assert "| 2.500s | succeeded |" in text  # the step's duration
    assert "```\nrestarted api | pid 42\nhealthy\n```" in text  # its output, verbatim
    assert "**lee** (lead) approve: go" in text
    assert "- api healthy (api_health value >= 1)" in text
    assert "Verified: verifying → resolved: checklist held for 30 s" in text
    assert "**Time to detect:** 20s (first evidence" in text
    assert "**Time to recover:** 42s (opened → verified" in text
    assert "| 1 | item \\| 1 | lead (lee, kim) |" in text  # a pipe cannot break the table
    assert "**OVERDUE** by 1h00m" in text and "| open |" in text and "done by lee at" in text


def test_an_escalated_incident_reports_it_did_not_recover() -> None:
    text = incident_markdown(facts(resolved=False, followups=[]), now=OPENED)
    assert "**Time to recover:** not recovered: escalated at 2023-11-14T22:14:02Z" in text
    assert "None owed: no step of this incident ran." in text


def test_an_owner_is_a_role_with_its_holders_when_known() -> None:
    assert owner_words("lead", {"lead": ["lee"]}) == "lead (lee)"
    assert owner_words("team", {}) == "team"
