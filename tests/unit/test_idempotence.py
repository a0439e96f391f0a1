"""Which steps may run a second time after a crash: the catalogue's verdict per action
and per parameters, and the planner setting it on each step."""

from __future__ import annotations

from typing import Any

import pytest

from watchdog.model import Severity
from watchdog.policy.catalogue import ACTIONS, IDEMPOTENT_METHODS, assess_idempotence
from watchdog.policy.planner import plan_for
from watchdog.policy.reenable import Disabled, watch_reenables
from watchdog.policy.windows import Windows

from .helpers import songnodes
from .test_reenable import breaker, disabled_spotify

#: Every action of the catalogue, with parameters, and the verdict it must get.
VERDICTS: list[tuple[str, dict[str, Any], bool]] = [
    ("service.restart", {"services": ["web"]}, True),
    ("service.stop", {"services": ["web"]}, True),
    ("service.start", {"services": ["web"]}, True),
    ("service.recover", {"services": ["web", "api"], "failing": "web"}, True),
    ("service.restart_dependents", {"services": ["db"]}, True),
    ("service.revert", {"service": "web"}, True),
    ("service.evidence", {"services": ["web"], "lines": 100}, True),
    ("backup.confirm", {"service": "web", "backup_dir": "/b"}, True),
    ("config.backup", {"table": "t"}, True),
    ("config.restore", {"table": "t"}, True),
    ("config.reload", {"target": "x"}, True),
    ("config.verify", {"target": "x", "table": "t"}, True),
    ("provider.disable", {"provider": "spotify", "table": "t", "incident": "12"}, True),
    ("provider.disable", {"provider": "spotify", "table": "t"}, False),
    ("provider.disable", {"provider": "spotify", "table": "t", "incident": "{incident}"}, False),
    ("provider.enable", {"incident": "12"}, True),
    ("breaker.reset", {"target": "x", "provider": "spotify"}, True),
    ("smoke_test", {"target": "x", "path": "/enrich", "body": {}}, True),
    ("http.call", {"target": "x", "method": "GET", "path": "/"}, True),
    ("http.call", {"target": "x", "method": "put", "path": "/"}, True),
    ("http.call", {"target": "x", "method": "DELETE", "path": "/"}, True),
    ("http.call", {"target": "x", "method": "POST", "path": "/"}, False),
    ("http.call", {"target": "x", "method": "PATCH", "path": "/"}, False),
    ("http.call", {"target": "x", "method": "BREW", "path": "/"}, False),
    ("wait", {"seconds": 5}, True),
    ("database.dump", {"dir": "/d"}, True),
    ("database.backup", {"backup_dir": "/b"}, True),
    ("database.integrity", {"checks": []}, True),
    ("database.restore", {"backup_dir": "/b"}, False),
    ("migrations.down", {"migration_dirs": ["m"]}, False),
    ("migrations.down", {"migration_dirs": ["m"], "target_version": "001"}, False),
    ("system.rebuild", {}, True),
    ("system.snapshot", {}, True),
    ("system.emergency_stop", {"tiers": [["*"]]}, True),
    ("system.resources", {"checks": []}, True),
]


def test_every_action_of_the_catalogue_has_its_verdict_stated_here() -> None:
    assert {action for action, _, _ in VERDICTS} == set(ACTIONS)


@pytest.mark.parametrize(("action", "params", "idempotent"), VERDICTS)
def test_verdict_per_action_and_parameters(
    action: str, params: dict[str, Any], idempotent: bool
) -> None:
    verdict = assess_idempotence(action, params)
    assert verdict.idempotent is idempotent
    assert verdict.reason  # every verdict says why, for the journal and the page


def test_http_verdicts_follow_rfc_9110_and_name_the_method() -> None:
    assert {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"} == IDEMPOTENT_METHODS
    post = assess_idempotence("http.call", {"method": "POST", "target": "x", "path": "/"})
    assert post.reason.startswith("POST is not idempotent")


def test_provider_disable_without_an_incident_says_the_undo_could_be_lost() -> None:
    verdict = assess_idempotence("provider.disable", {"provider": "p", "table": "t"})
    assert "before-images lost" in verdict.reason


def test_an_unknown_action_is_never_idempotent() -> None:
    verdict = assess_idempotence("service.explode", {})
    assert not verdict.idempotent and "'service.explode'" in verdict.reason


def provider_plan(params: dict[str, str]) -> Any:
    return plan_for(
        songnodes(),
        scenario="provider_failure",
        severity=Severity.P2,
        subject="spotify",
        params=params,
        why="spotify circuit breaker OPEN",
    )


def test_the_planner_fills_the_engines_incident_and_judges_the_filled_step() -> None:
    plan = provider_plan({"provider": "spotify", "series": "spotify", "incident": "12"})
    disable = plan.steps[0]
    assert disable.action == "provider.disable"
    assert disable.param_map()["incident"] == "12"
    assert disable.idempotent is True
    post_disable = {s.action: s.idempotent for s in plan.steps[1:]}
    assert post_disable == {"config.reload": True, "breaker.reset": True, "smoke_test": True}


def test_a_plan_made_without_the_incident_keeps_the_template_and_is_not_idempotent() -> None:
    plan = provider_plan({"provider": "spotify", "series": "spotify"})
    assert plan.steps[0].param_map()["incident"] == "{incident}"
    assert plan.steps[0].idempotent is False


def test_database_plan_steps_carry_their_verdicts() -> None:
    policy = songnodes()
    name = next(n for n, s in policy.scenarios.items()
                if any(step.action == "database.restore" for step in s.steps))
    plan = plan_for(policy, scenario=name, severity=Severity.P1, subject="database",
                    params={"series": "database", "incident": "3"}, why="manual")
    verdicts = {s.action: s.idempotent for s in plan.steps}
    assert verdicts["database.restore"] is False
    assert all(
        verdicts[a] is True for a in ("database.backup", "database.integrity") if a in verdicts
    )


def test_the_follow_up_undoes_the_original_incident_not_its_own() -> None:
    """The engine passes `incident` (the follow-up's own id) to every plan; the enable
    step must still name the incident whose disable it undoes."""
    policy = songnodes()
    windows = Windows()
    breaker(windows, 1100.0, 0.0)
    original: Disabled = disabled_spotify()
    (decision,) = watch_reenables(policy, [original], windows, {7: 1000.0}, 1100.0, 30.0).due
    finding = decision.findings[0]
    for params in (
        {"series": finding.series, **finding.param_map(), "incident": "42"},
        {"incident": "42", "series": finding.series, **finding.param_map()},
    ):
        plan = plan_for(policy, scenario=decision.scenario, severity=decision.severity,
                        subject=decision.subject, params=params, why=finding.reason)
        assert plan.steps[0].param_map() == {"incident": "7"}
        assert plan.title == "Re-enable provider spotify (undo incident 7)"
