"""Which rules and incidents stand between a table (or a service) and its last known good.

The pure core, driven with the songnodes policy and the evaluator's own findings:
an unrelated incident never blocks a snapshot, the table's own rules always do.
"""

from __future__ import annotations

from tests.unit.helpers import HEALTHY, Core, songnodes
from watchdog.model import Finding, Severity
from watchdog.policy.lastgood import (
    OpenIncident,
    SnapshotFacts,
    StandingDisable,
    assess_service_image,
    assess_snapshot,
    breaching_rules,
    table_guard,
    table_guards,
)
from watchdog.policy.rules import RuleState

CONFIG = "metadata_enrichment_config"
PROVIDERS = "enrichment_providers"

CONFIGURATION_RULES = {
    "configuration-invalid",
    "configuration-corruption-sql",
    "alert-config-reload-failed",
}
DATABASE_RULES = {
    "database-unavailable",
    "database-unavailable-sql",
    "corruption-growing",
    "corruption-in-progress",
    "migration-failure",
    "data-inconsistency",
}


def finding(rule: str, group: str, subject: str = "", reason: str = "why") -> Finding:
    return Finding(rule, "s", "", Severity.P2, "x", group, subject, 0.0, reason)


def test_the_configuration_table_is_guarded_by_its_own_group_and_the_database_rules() -> None:
    guard = table_guard(songnodes(), CONFIG)
    assert guard.rules == frozenset(CONFIGURATION_RULES | DATABASE_RULES)
    assert guard.groups == {"configuration", "database"}
    assert guard.validated and guard.disabled_by == {"provider_failure"}
    assert {"config_invalid_rows", "config_invalid_rows_sql"} <= guard.signals
    assert "disk_used" not in guard.signals and "scraper_mixesdb_health" not in guard.signals


def test_a_table_no_signal_reads_is_guarded_by_the_database_rules_alone() -> None:
    guard = table_guards(songnodes())[PROVIDERS]
    assert guard.rules == DATABASE_RULES and guard.groups == {"database"}
    assert not guard.validated and guard.disabled_by == frozenset()


def test_an_unrelated_breach_and_an_unrelated_open_incident_do_not_hold_a_snapshot() -> None:
    """Defect: one scraper down or one P3 disk warning blocked every snapshot."""
    core = Core(songnodes())
    for at in range(0, 420, 5):
        core.observe(at, {**HEALTHY, "disk_used": 0.95, "scraper_mixesdb_health": 0.0})
        tick = core.tick(at)
    assert {f.rule for f in tick.active} == {"disk-filling", "scraper-mixesdb-down"}
    scraper = next(f for f in tick.active if f.rule == "scraper-mixesdb-down")
    facts = SnapshotFacts(
        breaching=breaching_rules(tick.active, tick.states),
        open_incidents=[
            OpenIncident(3, "service_failure", frozenset({scraper.rule}), scraper.subject),
            OpenIncident(4, "host", frozenset({"disk-filling"}), "disk"),
        ],
    )
    verdict = assess_snapshot(table_guard(songnodes(), CONFIG), facts)
    assert verdict.take, verdict.reason
    assert verdict.reason == (
        f"{CONFIG}: its rows validate, its rules are clear (alert-config-reload-failed, "
        "configuration-corruption-sql, configuration-invalid, corruption-growing, "
        "corruption-in-progress, data-inconsistency, "
        "database-unavailable, database-unavailable-sql, migration-failure); "
        "not its concern: disk-filling, scraper-mixesdb-down"
    )
    assert verdict.caveat == ""


def test_the_tables_own_rule_holds_it_even_before_it_fires() -> None:
    core = Core(songnodes())
    core.observe(0, {**HEALTHY, "config_invalid_rows": 3.0})
    tick = core.tick(0)
    assert tick.active == []  # `for: 10s` not yet held
    breaching = breaching_rules(tick.active, tick.states)
    assert breaching == {"configuration-invalid": "breaching, not yet for long enough to fire"}
    verdict = assess_snapshot(table_guard(songnodes(), CONFIG), SnapshotFacts(breaching))
    assert not verdict.take
    assert verdict.reason == (
        f"{CONFIG}: held back by its own rules: configuration-invalid (breaching, not yet "
        "for long enough to fire)"
    )
    other = assess_snapshot(table_guard(songnodes(), PROVIDERS), SnapshotFacts(breaching))
    assert other.take, "a corrupted enrichment config says nothing about enrichment_providers"


def test_an_active_finding_names_its_reason() -> None:
    active = [finding("configuration-invalid", "configuration", reason="invalid rows 3 > 0")]
    states = {("configuration-invalid", ""): RuleState(active=True, breach_since=1.0)}
    facts = SnapshotFacts(breaching_rules(active, states))
    verdict = assess_snapshot(table_guard(songnodes(), CONFIG), facts)
    assert verdict.reason.endswith("configuration-invalid (invalid rows 3 > 0)")


def test_an_open_incident_of_the_tables_group_holds_it_after_its_rules_cleared() -> None:
    """A restore being verified: the rule is clear, the incident is not over yet."""
    restoring = OpenIncident(5, "configuration", frozenset({"configuration-invalid"}))
    verdict = assess_snapshot(
        table_guard(songnodes(), CONFIG), SnapshotFacts(open_incidents=[restoring])
    )
    assert not verdict.take
    assert verdict.reason == (
        f"{CONFIG}: held back by open incident(s) of its groups: 5 (configuration)"
    )


def test_signals_never_seen_cannot_vouch_for_a_table() -> None:
    facts = SnapshotFacts(unseen=frozenset({"config_invalid_rows", "disk_used"}))
    verdict = assess_snapshot(table_guard(songnodes(), CONFIG), facts)
    assert not verdict.take
    assert verdict.reason == (
        f"{CONFIG}: not yet: config_invalid_rows not observed since the start, so its rules "
        "cannot vouch for it"
    )
    assert assess_snapshot(table_guard(songnodes(), PROVIDERS), facts).take


def test_rows_that_fail_validation_are_refused_with_the_problems() -> None:
    problems = [f"field{n}: enabled with no first provider" for n in range(7)]
    verdict = assess_snapshot(
        table_guard(songnodes(), CONFIG), SnapshotFacts(problems=problems)
    )
    assert not verdict.take
    assert verdict.reason.startswith(f"{CONFIG}: the rows fail the policy's validation: field0")
    assert verdict.reason.endswith("(and 2 more)")


def test_a_snapshot_taken_while_a_provider_is_disabled_carries_a_caveat() -> None:
    disables = [
        StandingDisable(7, "spotify", "provider_failure"),
        StandingDisable(9, "lastfm", "provider_failure", "still open"),
        StandingDisable(8, "redis", "stateful_service_failure"),  # disables nothing here
    ]
    guard = table_guard(songnodes(), CONFIG)
    verdict = assess_snapshot(guard, SnapshotFacts(disables=disables))
    assert verdict.take
    assert verdict.caveat == (
        "taken while the watchdog had spotify disabled (incident 7) and lastfm disabled "
        "(incident 9; still open)"
    )
    providers = assess_snapshot(
        table_guard(songnodes(), PROVIDERS), SnapshotFacts(disables=disables)
    )
    assert providers.take and providers.caveat == ""


def test_a_service_image_is_held_only_by_an_incident_about_that_service() -> None:
    incidents = [
        OpenIncident(1, "configuration", frozenset({"configuration-invalid"})),
        OpenIncident(2, "host", frozenset({"disk-filling"}), "disk"),
        OpenIncident(3, "service_failure", frozenset({"rest-api-down"}), "rest-api"),
    ]
    assert assess_service_image("dlq-manager", True, incidents).take
    held = assess_service_image("rest-api", True, incidents)
    assert (held.take, held.reason) == (
        False,
        "rest-api: held back by open incident(s) about it: 3",
    )
    assert not assess_service_image("dlq-manager", False, []).take
