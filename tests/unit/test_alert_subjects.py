"""Alert labels cannot steer actions beyond what is known: the pure verdicts.

The unknown-subject verdict on a label value and on a whole plan, the series cap
of the intake, and the lifecycle's answer to a plan refused for an unknown
subject (escalate: page, act on nothing).
"""

from __future__ import annotations

from dataclasses import replace

from tests.alertmanager_payloads import alert, webhook
from watchdog.api.alertmanager import WebhookV4, to_alert
from watchdog.api.webhook import REFUSALS
from watchdog.metrics import ALERT_REFUSALS
from watchdog.model import Alert, Finding, Plan, Severity
from watchdog.policy import moves
from watchdog.policy.alerts import assess_series
from watchdog.policy.planner import plan_for
from watchdog.policy.schema import AlertSignal
from watchdog.policy.subjects import (
    KnownSubjects,
    acting_on_nothing,
    assess_plan,
    assess_subject,
    policy_services,
    provider_tables,
    providers_in,
    steered_by_labels,
)

from .helpers import songnodes
from .test_moves import NOW, incident, switches

PROVIDERS = frozenset({"spotify", "musicbrainz", "discogs", "lastfm", "beatport"})


def known(**changes: object) -> KnownSubjects:
    base = KnownSubjects(services=policy_services(songnodes()), providers=PROVIDERS)
    return replace(base, **changes)  # type: ignore[arg-type]


def finding(rule: str, signal: str, series: str, scenario: str, **params: str) -> Finding:
    return Finding(
        rule=rule, signal=signal, series=series, severity=Severity.P2, scenario=scenario,
        group="provider", subject=series, since=0.0, reason="why",
        params=tuple(sorted(params.items())),
    )


def provider_plan(provider: str) -> Plan:
    return plan_for(
        songnodes(), scenario="provider_failure", severity=Severity.P2, subject=provider,
        params={"provider": provider, "series": provider, "incident": "7"}, why="breaker open",
    )


def test_a_label_value_is_known_only_if_the_known_set_names_it() -> None:
    assert assess_subject("provider", "spotify", PROVIDERS, "the table").known
    verdict = assess_subject("provider", "evil", PROVIDERS, "the table")
    assert not verdict.known and (verdict.kind, verdict.value) == ("provider", "evil")
    assert verdict.reason.startswith("unknown subject: provider 'evil'")
    assert "beatport, discogs, lastfm, musicbrainz, spotify" in verdict.reason
    empty = assess_subject("provider", "spotify", frozenset(), "the tables (unreadable)")
    assert not empty.known and "names (none)" in empty.reason


def test_a_plan_acts_only_on_known_providers_and_services() -> None:
    good = provider_plan("spotify")
    assert assess_plan(good, known()).known
    bad = assess_plan(provider_plan("p04411"), known())
    assert not bad.known and bad.value == "p04411"

    restart = plan_for(
        songnodes(), scenario="service_failure", severity=Severity.P2, subject="sshd",
        params={"series": "sshd", "health_signal": "container_healthy"}, why="down",
    )
    verdict = assess_plan(restart, known())
    assert not verdict.known and (verdict.kind, verdict.value) == ("service", "sshd")
    live = known(services=known().services | {"sshd"})  # the Docker probe sees it
    assert assess_plan(restart, live).known
    # A plan whose services are the policy's own names nothing unknown.
    dlq = plan_for(songnodes(), scenario="dlq_overflow", severity=Severity.P1, subject="",
                   params={}, why="DLQ")
    assert assess_plan(dlq, known(providers=frozenset())).known


def test_an_unknown_subjects_plan_keeps_its_reason_and_loses_every_step() -> None:
    plan = provider_plan("evil")
    verdict = assess_plan(plan, known())
    paged = acting_on_nothing(plan, verdict)
    assert paged.steps == () and paged.checklist == ()
    assert paged.title.startswith("Unknown subject: provider 'evil'")
    assert verdict.reason in paged.reason and verdict.reason in paged.impact
    decision = moves.decide(
        incident("triaged", paged), moves.PlanReady(verdict.reason), switches(), NOW
    )
    assert [m.trigger for m in decision.moves] == ["escalate"]
    assert decision.reason == verdict.reason and decision.work is moves.Work.NOTHING


def test_only_findings_of_alert_signals_are_steered_by_labels() -> None:
    policy = songnodes()
    alerted = finding("alert-circuit-breaker-open", "breaker_open_alert", "x", "provider_failure")
    probed = finding("provider-breaker-open", "breaker_state", "x", "provider_failure")
    assert steered_by_labels(policy, alerted) and not steered_by_labels(policy, probed)


def test_the_known_sets_come_from_the_policy_and_the_tables_rows() -> None:
    policy = songnodes()
    services = policy_services(policy)
    assert {"metadata-enrichment", "enrichment-worker", "postgres", "rabbitmq"} <= services
    assert not any("{" in s for s in services)
    assert "metadata_enrichment_config" in provider_tables(policy)
    rows = [
        {"metadata_field": "bpm", "priority_1_provider": "spotify", "priority_2_provider": None},
        {"provider_name": "beatport", "provider_type": "api"},
    ]
    assert providers_in(rows) == {"spotify", "beatport"}


def alerts(*bodies: dict[str, object]) -> list[Alert]:
    return [to_alert(a) for a in WebhookV4.model_validate(webhook(*bodies)).alerts]


def test_the_series_cap_counts_new_series_only() -> None:
    signals = [s for s in songnodes().signals if isinstance(s, AlertSignal)]
    held = {"breaker_open_alert": {"spotify": 1, "lastfm": 2}}
    batch = alerts(
        alert("CircuitBreakerOpen", severity="critical", provider="spotify"),
        alert("CircuitBreakerOpen", severity="critical", provider="discogs"),
        alert("CircuitBreakerOpen", status="resolved", severity="critical", provider="gone"),
    )
    fits = assess_series(signals, batch, held, cap=3)
    assert fits.allowed and fits.added == (("breaker_open_alert", "discogs"),)
    over = assess_series(signals, batch, held, cap=2)
    assert not over.allowed and (over.index, over.label) == (1, "provider")
    assert over.reason.startswith("found 'discogs', a new provider for breaker_open_alert")
    pending = {"breaker_open_alert": {"beatport"}}
    assert not assess_series(signals, batch, held, cap=3, pending=pending).allowed
    # Alerts with no series label (DLQDepthCritical) are never capped.
    dlq = alerts(alert("DLQDepthCritical", severity="critical"))
    assert assess_series(signals, dlq, held, cap=1).allowed


def test_every_refusal_reason_has_its_metric_series() -> None:
    assert set(REFUSALS) == set(ALERT_REFUSALS)
