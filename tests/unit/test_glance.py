"""The next action, said once and concretely, for every state an incident can be in."""

from __future__ import annotations

from watchdog.policy.glance import GlanceFacts, glance

NOW = 1_764_900_000.0  # 02:00 UTC
SEEN = "dlq-manager has not answered /health as healthy for 25 s"


def facts(**changes: object) -> GlanceFacts:
    base: dict[str, object] = {"incident_id": 7, "state": "executing", "closed_at": None,
                               "seen": SEEN, "plan_steps": 3}
    return GlanceFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_awaiting_approval_names_who_by_when_and_how() -> None:
    told = glance(
        facts(state="awaiting_approval", role="lead", quorum=1, waiting_since=NOW - 600,
              approval_expires=1800.0),
        NOW,
    )
    assert told.urgent
    assert told.needs == (
        "approval by one person with role lead by 02:20 UTC (in 20 min): "
        "Approve on the incident page, or `watchdog approve 7 --as NAME`"
    )
    assert told.did == "prepared a plan of 3 steps; ran nothing yet"


def test_a_quorum_counts_who_has_approved() -> None:
    told = glance(
        facts(state="awaiting_approval", role="team", quorum=2, approvers=("tara",)), NOW
    )
    assert "approval by 2 distinct people with role team (1 of 2 so far: tara)" in told.needs


def test_escalated_says_what_to_take_over_where_the_runbook_says_how_and_how_to_close() -> None:
    told = glance(
        facts(state="escalated", steps=(("restart dlq-manager", "succeeded"),
                                        ("revert dlq-manager", "failed")),
              escalation="rollback failed, paging", runbook="Scenario 1: new service failure"),
        NOW,
    )
    assert told.urgent
    assert told.did == "1 of 3 steps done; 'revert dlq-manager' failed"
    assert told.needs == (
        "take over: rollback failed, paging; runbook: Scenario 1: new service failure; "
        "when done, `watchdog incidents close 7 --as NAME`"
    )


def test_resolved_needs_nothing_and_says_since_when() -> None:
    told = glance(
        facts(state="resolved", closed_at=NOW - 60, steps=(("restart", "succeeded"),),
              plan_steps=1),
        NOW,
    )
    assert not told.urgent
    assert told.did == "1 of 1 step done; verified"
    assert told.needs == "nothing: resolved at 01:59 UTC"


def test_notify_only_running_and_dry_run() -> None:
    assert glance(facts(state="notified", plan_steps=0), NOW).did == (
        "paged; nothing to run (notify only)"
    )
    running = glance(facts(steps=(("stop", "succeeded"), ("revert", "started"))), NOW)
    assert running.did == "1 of 3 steps done; running 'revert'"
    assert running.needs == "nothing yet: the watchdog is acting"
    dry = glance(facts(state="verifying", steps=(("restart", "skipped"),), plan_steps=1), NOW)
    assert dry.did == "dry run: would have run 1 step"


def test_an_escalated_service_plan_offers_the_rollback_by_hand() -> None:
    from tests.unit.helpers import songnodes
    from watchdog.model import Severity
    from watchdog.policy.planner import plan_for
    from watchdog.store.glancefacts import glance_facts
    from watchdog.store.records import EventRecord, IncidentRecord

    params = {"service": "redis", "health_signal": "redis_reachable"}
    plan = plan_for(songnodes(), scenario="stateful_service_failure", severity=Severity.P2,
                    subject="redis", params=params, why="redis down")
    record = IncidentRecord(3, "stateful/redis", Severity.P2, "stateful_service_failure", "redis",
                            "escalated", "redis down", NOW - 300, NOW - 60, None)
    moved = EventRecord(9, 3, NOW - 60, "state", "approval expired: paging again",
                        {"to": "escalated"})
    told = glance(glance_facts(record, [], plan, [], [], [moved]), NOW)
    assert told.needs == (
        "take over: approval expired: paging again; runbook: P2: single service failure of a "
        "stateful service; by hand: `watchdog rollback --service redis --policy POLICY`; "
        "when done, `watchdog incidents close 3 --as NAME`"
    )
