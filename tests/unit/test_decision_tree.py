"""Every row of the runbook's P0-P3 decision tree, as songnodes.yaml encodes it.

Each case feeds a healthy stack with one fault for six minutes of simulated
time (longer than any rule's `for`), then checks which rule fired, at which
severity, for which scenario, and what the plan and its authorisation are.
"""

from __future__ import annotations

import pytest

from tests.unit.helpers import HEALTH_SIGNALS, HEALTHY, Core, songnodes
from watchdog.model import AuthMode, Severity
from watchdog.policy.planner import plan_for
from watchdog.policy.triage import Open, triage

ROWS = [
    # (runbook row, fault readings, rule, severity, scenario, authorisation, role)
    (
        "P0 complete system outage",
        dict.fromkeys(HEALTH_SIGNALS, 0.0),
        "complete-outage",
        Severity.P0,
        "complete_system_failure",
        AuthMode.AUTO,
        None,
    ),
    (
        "P0 database unavailable",
        {"database_accepts_queries": 0.0},
        "database-unavailable",
        Severity.P0,
        "database_unavailable",
        AuthMode.APPROVAL,
        "oncall",
    ),
    (
        "P1 migration failure seen as orphaned rows",
        {"orphaned_enrichment_status": 3.0},
        "data-inconsistency",
        Severity.P1,
        "database_migration_failure",
        AuthMode.APPROVAL,
        "lead",
    ),
    (
        "P0 data corruption in progress",
        {"corruption_alert": {"OrphanedEnrichmentRows": 1.0}},
        "corruption-in-progress",
        Severity.P0,
        "database_migration_failure",
        AuthMode.APPROVAL,
        "oncall",
    ),
    (
        "P0 security breach",
        {"security_alert": {"UnauthorizedAdminAccess": 1.0}},
        "security-breach",
        Severity.P0,
        "security_breach",
        AuthMode.AUTO,
        None,
    ),
    (
        "P1 degradation > 50%",
        {"enrichment_error_rate": 0.62},
        "degradation-over-half",
        Severity.P1,
        "enrichment_degradation",
        AuthMode.AUTO,
        None,
    ),
    (
        "P1 several breakers open",
        {"breaker_state": {"spotify": 2.0, "musicbrainz": 2.0, "lastfm": 0.0}},
        "several-breakers-open",
        Severity.P1,
        "enrichment_degradation",
        AuthMode.AUTO,
        None,
    ),
    (
        "P1 DLQ overflow > 5000",
        {"dlq_depth": 6120.0},
        "dlq-overflow",
        Severity.P1,
        "dlq_overflow",
        AuthMode.AUTO,
        None,
    ),
    (
        "P1 migration failure",
        {"migration_alert": {"MigrationFailed": 1.0}},
        "migration-failure",
        Severity.P1,
        "database_migration_failure",
        AuthMode.APPROVAL,
        "lead",
    ),
    (
        "P2 single service failure",
        {"dlq_manager_health": 0.0},
        "dlq-manager-down",
        Severity.P2,
        "service_failure",
        AuthMode.AUTO,
        None,
    ),
    (
        "P2 single stateful service failure",
        {"redis_reachable": 0.0},
        "redis-down",
        Severity.P2,
        "stateful_service_failure",
        AuthMode.APPROVAL,
        "team",
    ),
    (
        "P2 configuration issue",
        {"config_invalid_rows": 3.0},
        "configuration-invalid",
        Severity.P2,
        "configuration_corruption",
        AuthMode.AUTO,
        None,
    ),
    (
        "P2 degradation < 50%",
        {"enrichment_error_rate": 0.35},
        "degradation-under-half",
        Severity.P2,
        "enrichment_degradation",
        AuthMode.AUTO,
        None,
    ),
    (
        "P2 one provider's breaker open",
        {"breaker_state": {"spotify": 2.0, "musicbrainz": 0.0}},
        "provider-breaker-open",
        Severity.P2,
        "provider_failure",
        AuthMode.AUTO,
        None,
    ),
    (
        "P0 orchestrator (Docker engine) down",
        {"docker_engine_up": 0.0},
        "orchestrator-down",
        Severity.P0,
        "orchestrator_down",
        AuthMode.AUTO,
        None,
    ),
    (
        "P2 a container unhealthy",
        {"container_healthy": {"dlq-manager": 0.0, "rest-api": 1.0}},
        "container-unhealthy",
        Severity.P2,
        "service_failure",
        AuthMode.AUTO,
        None,
    ),
    (
        "P2 a crash-looping new version",
        {"container_crash_loop": {"dlq-manager": 4.0}},
        "crash-loop",
        Severity.P2,
        "service_revert",
        AuthMode.AUTO,
        None,
    ),
    (
        "P3 minor: disk",
        {"disk_used": 0.9},
        "disk-filling",
        Severity.P3,
        "fix_forward",
        AuthMode.AUTO,
        None,
    ),
    (
        "P3 minor: memory",
        {"memory_used": 0.95},
        "memory-high",
        Severity.P3,
        "fix_forward",
        AuthMode.AUTO,
        None,
    ),
    (
        "P3 non-critical alert",
        {"warning_alerts": {"HighRetryRate": 1.0}},
        "non-critical-alert",
        Severity.P3,
        "fix_forward",
        AuthMode.AUTO,
        None,
    ),
]


@pytest.mark.parametrize(
    ("row", "fault", "rule", "severity", "scenario", "mode", "role"), ROWS, ids=[r[0] for r in ROWS]
)
def test_row(
    row: str,
    fault: dict[str, float | dict[str, float]],
    rule: str,
    severity: Severity,
    scenario: str,
    mode: AuthMode,
    role: str | None,
) -> None:
    policy = songnodes()
    core = Core(policy)
    core.run(0, 30, HEALTHY)
    fired = core.run(31, 360, {**HEALTHY, **fault})
    matching = [f for f in fired if f.rule == rule]
    assert matching, f"{row}: {rule} did not fire; fired: {[f.rule for f in fired]}"
    finding = matching[0]
    assert (finding.severity, finding.scenario) == (severity, scenario)
    assert finding.reason.startswith(f"{severity.value} (runbook: ")
    assert finding.evidence and any(ch.isdigit() for ch in finding.evidence[0])

    # The most severe finding opens the incident; its plan carries the authorisation.
    decisions = triage(core.tick(392).active, [])
    opened = [d for d in decisions if isinstance(d, Open) and d.scenario == scenario]
    assert opened, f"{row}: no incident opened for {scenario}"
    incident = opened[0]
    assert incident.severity is severity
    plan = plan_for(
        policy,
        scenario=incident.scenario,
        severity=incident.severity,
        subject=incident.subject,
        params=incident.findings[0].param_map(),
        why=incident.reason,
    )
    if plan.steps:
        assert plan.authorization.mode is mode, plan.authorization.reason
        assert plan.authorization.role == role
    else:
        assert severity in (Severity.P0, Severity.P3)  # security and fix-forward: page only
    assert plan.reason.startswith(f"{severity.value} {scenario}")


def test_healthy_stack_fires_nothing_for_ten_minutes() -> None:
    core = Core(songnodes())
    assert core.run(0, 600, HEALTHY) == []


def test_dlq_growth_per_minute_is_its_own_p2_row() -> None:
    """DLQ filling > 100 messages/min (scenario 3's symptom) fires before the P1 overflow."""
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    fired = []
    for second in range(31, 200):
        depth = 12.0 + (second - 31) * 5.0  # 300 messages per minute
        core.observe(second, {**HEALTHY, "dlq_depth": depth})
        fired += core.tick(second).fired
    rules = [f.rule for f in fired]
    assert "dlq-filling" in rules
    assert "dlq-overflow" not in rules  # still far below 5000
    finding = next(f for f in fired if f.rule == "dlq-filling")
    assert finding.severity is Severity.P2
    assert "per minute > 100" in finding.evidence[0]


def test_outage_absorbs_single_service_findings_into_one_incident() -> None:
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    core.run(31, 120, {**HEALTHY, **dict.fromkeys(HEALTH_SIGNALS, 0.0)})
    decisions = triage(core.tick(152).active, [])
    opened = [d for d in decisions if isinstance(d, Open)]
    assert [d.scenario for d in opened] == ["complete_system_failure"], opened
    assert len(opened[0].findings) == 1 + len(HEALTH_SIGNALS)
