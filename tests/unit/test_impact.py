"""The impact assessment and the pre-rollback checklist: facts in, words and verdicts out."""

from __future__ import annotations

from tests.unit.helpers import songnodes
from watchdog.model import Plan, Severity
from watchdog.policy.checks import find_problems
from watchdog.policy.impact import ImpactFacts, Unknown, expected_duration
from watchdog.policy.planner import plan_for, with_assessment
from watchdog.policy.prechecks import PrecheckFacts, blocking, judge
from watchdog.policy.schema import PrecheckSpec

NOW = 1_000_000.0
HOUR = 3600.0


def _plan(scenario: str, severity: Severity = Severity.P2, subject: str = "rest-api") -> Plan:
    return plan_for(
        songnodes(),
        scenario=scenario,
        severity=severity,
        subject=subject,
        params={"health_signal": "rest_api_health", "series": "", "provider": "spotify"},
        why="test",
    )


def _impact(plan: Plan, facts: ImpactFacts) -> dict[str, str]:
    assessed, _ = with_assessment(songnodes(), plan, PrecheckFacts(facts, NOW), NOW)
    lines = assessed.impact[len(plan.impact) :]
    return {line.split(":", 1)[0]: line for line in lines}


def test_every_fact_is_worded_and_an_unknown_one_says_why() -> None:
    plan = _plan("new_service_failure", Severity.P1, subject="api-gateway-internal")
    known = _impact(
        plan,
        ImpactFacts(
            dependents={"api-gateway-internal": ["scraper-mixesdb", "dlq-manager"]},
            backup_age=2 * HOUR,
            past_durations=(240.0, 600.0, 300.0, 100_000.0),
            last_change=(NOW - 600, "newest recorded version of dlq-manager"),
            holders={"oncall": ["ana"], "lead": ["bo"]},
        ),
    )
    assert known["services affected"].endswith("their dependents: scraper-mixesdb, dlq-manager")
    assert known["data loss"] == "data loss: none (the plan touches no data)"
    assert "~7.5 min (median of this stack's 4 past runs)" in known["expected duration"]
    assert "last change 10 min ago (newest recorded version of dlq-manager)" in known[
        "fix forward vs rollback"
    ]
    assert known["on call"] == "on call: ana; can approve now: no approval needed"

    unknown = _impact(plan, ImpactFacts(dependents=Unknown("no Docker engine answers")))
    assert unknown["services affected"].endswith("dependents: unknown: no Docker engine answers")
    assert unknown["people"] == "people: unknown: no people file"
    assert "last change: unknown: not gathered" in unknown["fix forward vs rollback"]


def test_a_restore_shows_its_data_loss_window_and_who_can_approve_it() -> None:
    plan = _plan("database_migration_failure", Severity.P1)
    lines = _impact(
        plan, ImpactFacts(backup_age=90 * 60.0, holders={"oncall": ["ana"], "lead": ["bo", "cy"]})
    )
    assert lines["data loss"] == (
        "data loss: up to 90 min of writes (the newest backup is 90 min old)"
    )
    assert lines["on call"] == "on call: ana; can approve now: lead (quorum 1): bo, cy"
    missing = _impact(plan, ImpactFacts(backup_age=Unknown("no backup matching * in /b")))
    assert missing["data loss"] == "data loss: unknown: no backup matching * in /b"


def test_the_runbook_table_stands_until_three_past_runs() -> None:
    assert expected_duration((), 300.0) == (300.0, "runbook's table; 0 past runs so far")
    assert expected_duration((60.0, 120.0), 300.0)[0] == 300.0
    assert expected_duration((60.0, 120.0, 90.0), 300.0) == (
        90.0,
        "median of this stack's 3 past runs",
    )
    seconds, why = expected_duration(Unknown("journal locked"), None)
    assert seconds is None
    assert why == "no runbook time for this scenario; cannot read past runs: journal locked"


def test_the_pre_rollback_checklist_is_judged_item_by_item() -> None:
    plan = _plan("database_migration_failure", Severity.P1)
    specs = songnodes().scenarios["database_migration_failure"].prechecks
    facts = PrecheckFacts(
        ImpactFacts(backup_age=HOUR, last_change=(NOW - 60, "migration 004")),
        breach_since=NOW - 30,
        paged=True,
    )
    verdicts = {v.item: v for v in judge(specs, plan, facts, NOW)}
    assert verdicts["Check database backup age"].verdict == "satisfied"
    assert verdicts["Identify which migration failed"].reason == "migration 004, 60 s ago"
    assert verdicts["Get approval from engineering lead"].verdict == "satisfied"
    assert verdicts["Verify backup integrity (./scripts/validate_backup.sh)"].verdict == (
        "not_satisfied"
    )
    assert blocking(tuple(verdicts.values())) is None  # the person's item is not required

    stale = PrecheckFacts(ImpactFacts(backup_age=7 * HOUR), breach_since=NOW)
    why = blocking(judge(specs, plan, stale, NOW))
    assert why == (
        "pre-rollback checklist not satisfied: Check database backup age: "
        "the newest is 7 h old, over 6 h"
    )


def test_items_that_do_not_apply_and_readings() -> None:
    restart = _plan("service_failure")
    specs = [
        PrecheckSpec(item="backup", fact="backup"),
        PrecheckSpec(item="logs", fact="captured"),
        PrecheckSpec(item="breakers", fact="reading", signal="open_breakers"),
        PrecheckSpec(item="dlq", fact="reading", signal="dlq_depth"),
        PrecheckSpec(item="wait", fact="waited", wait=300),
    ]
    facts = PrecheckFacts(
        ImpactFacts(), breach_since=NOW - 60, readings={"open_breakers": (2.0, 3.0)}
    )
    got = {v.item: (v.verdict, v.reason) for v in judge(specs, restart, facts, NOW)}
    assert got["backup"] == ("not_applicable", "the plan restores no data")
    assert got["logs"] == ("not_satisfied", "no step of the plan captures them")
    assert got["breakers"] == ("satisfied", "open_breakers = 2, read 3 s ago")
    assert got["dlq"] == ("not_satisfied", "dlq_depth has not been read")
    assert got["wait"] == ("not_satisfied", "the fault has lasted 60 s, under 5 min")


def test_a_required_item_not_satisfied_refuses_the_plan_with_why() -> None:
    plan = _plan("database_migration_failure", Severity.P1)
    _, blocked = with_assessment(
        songnodes(), plan, PrecheckFacts(ImpactFacts(), breach_since=NOW), NOW
    )
    assert blocked is not None and "Check database backup age: unknown: not gathered" in blocked


def test_every_rollback_verifies_the_runbooks_shared_checks_its_own_item_winning() -> None:
    restart = _plan("service_failure")
    signals = [c.signal for c in restart.checklist]
    assert signals[0] == "rest_api_health"
    assert {"services_down", "enrichment_error_rate", "dlq_depth", "open_breakers"} <= set(
        signals
    )
    revert_new = _plan("new_service_failure", Severity.P2, subject="api-gateway-internal")
    rates = [c for c in revert_new.checklist if c.signal == "enrichment_error_rate"]
    assert len(rates) == 1  # its own item, not the shared one beside it
    down = [c for c in revert_new.checklist if c.signal == "services_down"]
    assert [(c.op, c.threshold) for c in down] == [("==", 0)]  # shared: reverted, all up
    assert _plan("fix_forward", Severity.P3).checklist == ()  # no rollback, nothing to verify


def test_a_checklist_naming_a_signal_the_policy_does_not_read_is_refused() -> None:
    policy = songnodes()
    scenario = policy.scenarios["dlq_overflow"]
    wrong = scenario.model_copy(
        update={"prechecks": [PrecheckSpec(item="x", fact="reading", signal="dlq_dpeth")]}
    )
    forged = policy.model_copy(update={"scenarios": {**policy.scenarios, "dlq_overflow": wrong}})
    problems = [p for p in find_problems(forged) if "prechecks" in p.path]
    assert [(p.path, p.found) for p in problems] == [
        ("scenarios.dlq_overflow.prechecks[0].signal", "'dlq_dpeth'")
    ]


def test_a_scenario_that_stops_a_source_skips_the_shared_check_on_it() -> None:
    policy = songnodes()
    stopping = policy.scenarios["new_service_failure"].model_copy(
        update={"skip_post_rollback": ["open_breakers"]}
    )
    forged = policy.model_copy(
        update={"scenarios": {**policy.scenarios, "new_service_failure": stopping}}
    )
    plan = plan_for(forged, scenario="new_service_failure", severity=Severity.P2,
                    subject="api-gateway-internal",
                    params={"health_signal": "rest_api_health", "series": ""}, why="test")
    signals = {c.signal for c in plan.checklist}
    assert "open_breakers" not in signals
    assert {"services_down", "dlq_depth"} <= signals
