"""Every row of the runbook's P0-P3 decision tree, as songnodes.yaml encodes it.

Each case feeds a healthy stack with one fault for six minutes of simulated time
(longer than any rule's `for`), as the probes or Alertmanager would report it
(alerts go through `alert_observations` with the real stack's labels), then
checks the rule that fired, that the fault opens exactly one incident (no other
rule pages a second time for it), its severity, scenario, plan and authorisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.unit.helpers import HEALTH_SIGNALS, HEALTHY, Core, songnodes
from watchdog.model import Alert, AuthMode, Finding, Severity
from watchdog.policy.alerts import alert_observations
from watchdog.policy.planner import plan_for
from watchdog.policy.schema import AlertSignal, Policy
from watchdog.policy.triage import Escalate, Open, OpenIncident, triage

Readings = dict[str, float | dict[str, float]]
P0, P1, P2, P3 = Severity.P0, Severity.P1, Severity.P2, Severity.P3
AUTO, APPROVAL = AuthMode.AUTO, AuthMode.APPROVAL


def alert(name: str, severity: str, **labels: str) -> Alert:
    """A firing alert as the stack's Prometheus labels it (TARGET-STACK.md)."""
    pairs = {"alertname": name, "severity": severity, **labels}
    return Alert(f"fp-{name}", "firing", 0.0, None, tuple(sorted(pairs.items())))


def alert_readings(policy: Policy, *alerts: Alert) -> Readings:
    """What the alert signals read while `alerts` fire, per signal and series."""
    signals = [s for s in policy.signals if isinstance(s, AlertSignal)]
    readings: dict[str, dict[str, float]] = {}
    for seen in alert_observations(signals, alerts, {}, 0.0):
        assert seen.value is not None
        readings.setdefault(seen.signal, {})[seen.series] = seen.value
    return dict(readings)


@dataclass(frozen=True)
class Row:
    row: str
    fault: Readings | tuple[Alert, ...] | Callable[[float], Readings]
    rule: str
    severity: Severity
    scenario: str
    mode: AuthMode | None = AUTO  # None: a page-only plan (no steps)
    role: str | None = None


def down(*signals: str) -> Readings:
    return dict.fromkeys(signals, 0.0)


ROWS = [
    # P0 - critical, immediate rollback
    Row("P0 complete system outage", down(*HEALTH_SIGNALS), "complete-outage", P0,
        "complete_system_failure"),
    Row("P0 data corruption in progress: orphaned rows still rising",
        lambda t: {"orphaned_enrichment_status": 2.0 * t}, "corruption-growing", P0,
        "database_migration_failure", APPROVAL, "oncall"),
    Row("P0 data corruption, category label (stacks that set it)",
        (alert("OrphanedEnrichmentRows", "critical", category="data_integrity"),),
        "corruption-in-progress", P0, "database_migration_failure", APPROVAL, "oncall"),
    Row("P0 security breach, category label (no songnodes rule sets one)",
        (alert("UnauthorizedAdminAccess", "critical", category="security"),),
        "security-breach", P0, "security_breach", None),
    Row("P0 database unavailable", {"database_accepts_queries": 0.0},
        "database-unavailable", P0, "database_unavailable", APPROVAL, "oncall"),
    Row("P0 orchestrator (Docker engine) down", {"docker_engine_up": 0.0},
        "orchestrator-down", P0, "orchestrator_down", None),
    # P1 - high, rollback within 1 hour
    Row("P1 degradation > 50%: five of nine services down",
        down(*HEALTH_SIGNALS[:5]), "most-services-down", P1, "partial_outage"),
    Row("P1 degradation > 50%: enrichment error rate", {"enrichment_error_rate": 0.62},
        "degradation-over-half", P1, "enrichment_degradation"),
    Row("P1 degradation > 50%: EnrichmentAPICompleteFail",
        (alert("EnrichmentAPICompleteFail", "critical", component="metadata_enrichment",
               category="reliability"),),
        "alert-enrichment-failing", P1, "enrichment_degradation"),
    Row("P1 multiple circuit breakers open",
        {"breaker_state": {"spotify": 2.0, "musicbrainz": 2.0, "lastfm": 0.0}},
        "several-breakers-open", P1, "enrichment_degradation"),
    Row("P1 multiple breakers: CircuitBreakerFlapping",
        (alert("CircuitBreakerFlapping", "critical", component="api_gateway",
               category="resilience", provider="spotify"),),
        "alert-breakers-flapping", P1, "enrichment_degradation"),
    Row("P1 DLQ overflow > 5000", {"dlq_depth": 6120.0}, "dlq-overflow", P1, "dlq_overflow"),
    Row("P1 DLQ overflow: DLQDepthCritical",
        (alert("DLQDepthCritical", "critical", component="dlq", category="reliability"),),
        "alert-dlq-critical", P1, "dlq_overflow"),
    Row("P1 migration failure: orphaned rows", {"orphaned_enrichment_status": 3.0},
        "data-inconsistency", P1, "database_migration_failure", APPROVAL, "lead"),
    Row("P1 migration failure, category label (stacks that set it)",
        (alert("MigrationFailed", "critical", category="migration"),),
        "migration-failure", P1, "database_migration_failure", APPROVAL, "lead"),
    # P2 - medium, fix forward preferred
    Row("P2 single service failure", {"dlq_manager_health": 0.0}, "dlq-manager-down", P2,
        "service_failure"),
    Row("P2 single service failure: ServiceDown",
        (alert("ServiceDown", "critical", job="rest-api", category="reliability"),),
        "alert-service-down", P2, "service_failure"),
    Row("P2 single stateful service failure", {"redis_reachable": 0.0}, "redis-down", P2,
        "stateful_service_failure", APPROVAL, "team"),
    Row("P2 a container unhealthy", {"container_healthy": {"dlq-manager": 0.0, "rest-api": 1.0}},
        "container-unhealthy", P2, "service_failure"),
    Row("P2 a crash-looping new version", {"container_crash_loop": {"dlq-manager": 4.0}},
        "crash-loop", P2, "service_revert"),
    Row("P2 configuration issue", {"config_invalid_rows": 3.0}, "configuration-invalid", P2,
        "configuration_corruption"),
    Row("P2 configuration issue: EnrichmentConfigReloadFailed",
        (alert("EnrichmentConfigReloadFailed", "critical", category="configuration"),),
        "alert-config-reload-failed", P2, "configuration_corruption"),
    Row("P2 one provider failing: its breaker open",
        {"breaker_state": {"spotify": 2.0, "musicbrainz": 0.0}}, "provider-breaker-open", P2,
        "provider_failure"),
    Row("P2 one provider failing: SpotifyAPIDown",
        (alert("SpotifyAPIDown", "critical", component="metadata_enrichment"),),
        "alert-spotify-down", P2, "provider_failure"),
    Row("P2 performance degradation < 50%: slow answers",
        {"rest_api_response_seconds": 3.4}, "slow-responses", P2, "performance_degraded", None),
    Row("P2 performance degradation < 50%: error rate 30-50 %",
        {"enrichment_error_rate": 0.35}, "degradation-under-half", P2, "enrichment_watch", None),
    Row("P2 performance degradation < 50%: EnrichmentAPIHighErrorRate",
        (alert("EnrichmentAPIHighErrorRate", "warning", component="metadata_enrichment"),),
        "alert-enrichment-degraded", P2, "enrichment_watch", None),
    Row("P2 DLQ filling: DLQDepthHigh", (alert("DLQDepthHigh", "warning", component="dlq"),),
        "alert-dlq-backlog", P2, "dlq_overflow"),
    # P3 - low, always fix forward
    Row("P3 minor: disk", {"disk_used": 0.9}, "disk-filling", P3, "fix_forward", None),
    Row("P3 minor: memory", {"memory_used": 0.95}, "memory-high", P3, "fix_forward", None),
    Row("P3 non-critical alert", (alert("HighRetryRate", "warning", component="scrapers"),),
        "non-critical-alert", P3, "fix_forward", None),
    Row("P3 UI issue: front end up but degraded", {"api_gateway_detailed_health": 0.0},
        "front-end-degraded", P3, "fix_forward", None),
]


def drive(
    policy: Policy, row: Row, start: float = 31, seconds: int = 360
) -> tuple[Core, list[Finding]]:
    """A healthy half minute, then the row's fault every second for `seconds`."""
    core, fired = Core(policy), []
    core.run(0, start - 1, HEALTHY)
    fault = row.fault
    for second in range(int(start), int(start) + seconds + 1):
        if callable(fault):
            readings = fault(second - start)
        elif isinstance(fault, tuple):
            readings = alert_readings(policy, *fault)
        else:
            readings = fault
        core.observe(second, {**HEALTHY, **readings})
        fired += core.tick(second).fired
    return core, fired


@pytest.mark.parametrize("row", ROWS, ids=[r.row for r in ROWS])
def test_row(row: Row) -> None:
    policy = songnodes()
    core, fired = drive(policy, row)
    matching = [f for f in fired if f.rule == row.rule]
    assert matching, f"{row.row}: {row.rule} did not fire; fired: {[f.rule for f in fired]}"
    finding = matching[0]
    assert (finding.severity, finding.scenario) == (row.severity, row.scenario)
    assert finding.reason.startswith(f"{row.severity.value} (runbook: ")
    assert finding.evidence and any(ch.isdigit() for ch in finding.evidence[0])

    # One fault, one incident: every other rule it trips joins it or is absorbed.
    decisions = triage(core.tick(392).active, [])
    opened = [d for d in decisions if isinstance(d, Open)]
    assert [(d.severity, d.scenario) for d in opened] == [(row.severity, row.scenario)], [
        (d.key, d.reason) for d in opened
    ]
    incident = opened[0]
    plan = plan_for(
        policy,
        scenario=incident.scenario,
        severity=incident.severity,
        subject=incident.subject,
        params=incident.findings[0].param_map(),
        why=incident.reason,
    )
    if row.mode is None:
        assert plan.steps == (), "a page-only row runs nothing"
    else:
        assert plan.steps
        assert plan.authorization.mode is row.mode, plan.authorization.reason
        assert plan.authorization.role == row.role
    assert plan.reason.startswith(f"{row.severity.value} {row.scenario}")


def test_every_runbook_row_has_a_case() -> None:
    """The runbook's twelve P0-P3 rows, each driven above by at least one signal."""
    runbook = [
        "P0 complete system outage", "P0 data corruption", "P0 security breach",
        "P0 database unavailable", "P1 degradation > 50%", "P1 multiple", "P1 DLQ overflow",
        "P1 migration failure", "P2 single service failure", "P2 configuration issue",
        "P2 performance degradation < 50%", "P3 minor", "P3 non-critical alert", "P3 UI issue",
    ]
    assert [r for r in runbook if not any(row.row.startswith(r) for row in ROWS)] == []
    rules = {rule.name for rule in songnodes().rules}
    assert {row.rule for row in ROWS} <= rules


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
    # The P0, the P1 share rule on its way up (same group), and each service's P2.
    rules = sorted(f.rule for f in opened[0].findings)
    assert rules[:2] == ["api-gateway-down", "audio-analysis-down"]
    assert {"complete-outage", "most-services-down"} <= set(rules)
    assert len(rules) == 2 + len(HEALTH_SIGNALS)


def test_more_than_half_down_is_one_p1_and_exactly_half_is_not() -> None:
    """The share rule is strict (> 0.5): four of nine down stay four P2 restarts."""
    policy = songnodes()
    for failing, expected in ((4, [P2] * 4), (5, [P1])):
        core, _ = drive(policy, Row("", down(*HEALTH_SIGNALS[:failing]), "", P1, ""), seconds=90)
        opened = [d for d in triage(core.tick(122).active, []) if isinstance(d, Open)]
        assert sorted(d.severity for d in opened) == expected, [d.key for d in opened]


def test_error_rate_past_half_escalates_the_watch_to_stopping_the_workers() -> None:
    """Scenario 3: 35 % pages and stops nothing; 62 % escalates the same incident."""
    policy = songnodes()
    core, _ = drive(policy, Row("", {"enrichment_error_rate": 0.35}, "", P2, ""), seconds=150)
    [watch] = [d for d in triage(core.tick(182).active, []) if isinstance(d, Open)]
    assert watch.scenario == "enrichment_watch"
    ids = frozenset(f"{f.rule}" for f in watch.findings)
    held = OpenIncident(watch.key, watch.severity, watch.scenario, ids)
    core.run(183, 90, {**HEALTHY, "enrichment_error_rate": 0.62})
    [rise] = [d for d in triage(core.tick(274).active, [held]) if isinstance(d, Escalate)]
    assert (rise.key, rise.severity, rise.scenario) == (watch.key, P1, "enrichment_degradation")
    stops = plan_for(policy, scenario=rise.scenario, severity=P1, subject="", params={}, why="")
    assert [s.action for s in stops.steps] == ["service.stop"]


def test_a_degraded_front_end_that_goes_down_is_one_incident_escalated() -> None:
    policy = songnodes()
    row = Row("", {"api_gateway_detailed_health": 0.0}, "", P3, "")
    core, _ = drive(policy, row, seconds=150)
    [ui] = [d for d in triage(core.tick(182).active, []) if isinstance(d, Open)]
    held = OpenIncident(ui.key, P3, ui.scenario, frozenset(f.rule for f in ui.findings))
    core.run(183, 60, {**HEALTHY, "api_gateway_detailed_health": 0.0, "api_gateway_health": 0.0})
    decisions = triage(core.tick(244).active, [held])
    assert [type(d) for d in decisions] == [Escalate]
    [down_now] = [d for d in decisions if isinstance(d, Escalate)]
    assert (down_now.key, down_now.severity, down_now.scenario) == (ui.key, P2, "service_failure")


def test_every_service_dying_at_once_opens_the_p0_not_the_p1_share() -> None:
    """The probes see the deaths an interval apart (5 s and 10 s health checks), so the
    share passes one half before it reaches one: the P0 must still fire first."""
    core, first = Core(songnodes()), None
    core.run(0, 30, HEALTHY)
    for second in range(31, 200):
        seen = HEALTH_SIGNALS[:6] if second < 41 else HEALTH_SIGNALS  # the rest 10 s later
        core.observe(second, {**HEALTHY, **down(*seen)})
        fired = [f for f in core.tick(second).fired if f.group == "system"]
        first = first or (fired[0].rule if fired else None)
    assert first == "complete-outage"
