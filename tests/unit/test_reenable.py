"""When a disabled provider is put back: the pure decision, with time as an argument."""

from __future__ import annotations

import pytest

from watchdog.model import Finding, Observation, Severity
from watchdog.policy.planner import plan_for
from watchdog.policy.reenable import Disabled, watch_reenables
from watchdog.policy.windows import Windows
from watchdog.policyfile import PolicyError, parse_policy

from .helpers import SONGNODES, songnodes

RESOLVED_AT = 1000.0


def disabled_spotify() -> Disabled:
    finding = Finding(
        rule="provider-breaker-open",
        signal="breaker_state",
        series="spotify",
        severity=Severity.P2,
        scenario="provider_failure",
        group="provider",
        subject="spotify",
        since=900.0,
        reason="spotify circuit breaker OPEN",
        params=(("provider", "spotify"),),
    )
    return Disabled(7, Severity.P2, "provider_failure", "spotify", RESOLVED_AT, finding)


def breaker(windows: Windows, at: float, state: float) -> None:
    windows.record(Observation("breaker_state", at, state, series="spotify"))
    windows.record(Observation("breaker_state", at, 0.0, series="musicbrainz"))


def test_due_only_after_the_rules_clear_for_of_health_since_resolution() -> None:
    policy = songnodes()
    windows = Windows()
    since: dict[int, float] = {}
    opened = []
    for at in range(1000, 1075, 5):  # CLOSED every 5 s from resolution on
        breaker(windows, float(at), 0.0)
        watch = watch_reenables(policy, [disabled_spotify()], windows, since, float(at), 30.0)
        since = watch.healthy_since
        opened += [(at, decision) for decision in watch.due]
    (at, decision), = opened[:1]
    assert at == 1060  # provider-breaker-open's clear_for is 60 s
    assert (decision.key, decision.scenario, decision.severity) == (
        "reenable/spotify", "provider_reenable", Severity.P2
    )
    finding = decision.findings[0]
    assert finding.param_map() == {"provider": "spotify", "undoes": "7"}
    assert "spotify healthy for 60 s" in decision.reason and "incident 7" in decision.reason


def test_a_breaker_that_opens_again_restarts_the_hold() -> None:
    policy = songnodes()
    windows = Windows()
    since: dict[int, float] = {}
    due_at = []
    for at in range(1000, 1150, 5):
        breaker(windows, float(at), 2.0 if at == 1040 else 0.0)
        watch = watch_reenables(policy, [disabled_spotify()], windows, since, float(at), 30.0)
        since = watch.healthy_since
        due_at += [at for _ in watch.due]
    assert due_at[0] == 1105  # healthy again from 1045, for 60 s


def test_stale_or_missing_health_never_counts_as_healthy() -> None:
    policy = songnodes()
    windows = Windows()
    breaker(windows, 1000.0, 0.0)
    watch = watch_reenables(policy, [disabled_spotify()], windows, {7: 1000.0}, 2000.0, 30.0)
    assert watch.due == [] and watch.healthy_since == {}


def test_the_follow_up_plan_names_the_incident_it_undoes_and_runs_without_approval() -> None:
    policy = songnodes()
    windows = Windows()
    breaker(windows, 1100.0, 0.0)
    watch = watch_reenables(policy, [disabled_spotify()], windows, {7: 1000.0}, 1100.0, 30.0)
    decision = watch.due[0]
    finding = decision.findings[0]
    plan = plan_for(
        policy,
        scenario=decision.scenario,
        severity=decision.severity,
        subject=decision.subject,
        params={"series": finding.series, **finding.param_map()},
        why=finding.reason,
    )
    assert plan.steps[0].action == "provider.enable"
    assert plan.steps[0].param_map() == {"incident": "7"}
    assert plan.authorization.mode.value == "auto"
    assert plan.title == "Re-enable provider spotify (undo incident 7)"


def test_validate_names_a_reenable_scenario_that_does_not_exist() -> None:
    text = SONGNODES.read_text()
    broken = text.replace("scenario: provider_reenable", "scenario: provider_renable", 1)
    assert broken != text
    with pytest.raises(PolicyError) as raised:
        parse_policy(broken, "songnodes.yaml", environ={})
    assert "scenarios.provider_failure.reenable.scenario" in str(raised.value)
    assert "'provider_renable'" in str(raised.value)
