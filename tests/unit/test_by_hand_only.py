"""Scenario 5's prepared plan stays a person's: out of the daemon's reach, and never able
to do the runbook's `down -v`, `system prune` or `git reset` (no action can)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.unit.helpers import ROOT
from tests.unit.test_validate import write
from watchdog.cli import main
from watchdog.policy.byhand import FORBIDDEN
from watchdog.policy.catalogue import ACTIONS
from watchdog.policyfile import load_policy

FULL = "full_system_rollback"


def _lead(where: str) -> object:
    def mutate(data: dict[str, object]) -> None:
        rules = data["rules"]
        scenarios = data["scenarios"]
        assert isinstance(rules, list) and isinstance(scenarios, dict)
        if where == "rule":
            rules[0]["scenario"] = FULL
        elif where == "after_change":
            rule = next(r for r in rules if r.get("after_change"))
            rule["after_change"]["scenario"] = FULL
        else:
            scenarios["service_failure"]["next"] = FULL

    return mutate


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("rule", "rules[0].scenario"),
        ("after_change", ".after_change.scenario"),
        ("next", "scenarios.service_failure.next"),
    ],
)
def test_a_by_hand_only_scenario_cannot_be_reached_by_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, path: str
) -> None:
    bad = write(tmp_path, _lead(where))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: found '{FULL}'" in err, err
    assert "this one is by_hand_only" in err


def test_a_resource_check_on_an_unknown_signal_fails_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def mutate(data: dict[str, object]) -> None:
        scenarios = data["scenarios"]
        assert isinstance(scenarios, dict)
        step = next(s for s in scenarios[FULL]["steps"] if s["action"] == "system.resources")
        step["params"]["checks"][0]["signal"] = "disk_usd"

    assert main(["validate", str(write(tmp_path, mutate))]) == 2
    assert ".params.checks[0].signal: found 'disk_usd'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["songnodes.yaml", "compose-generic.yaml"])
def test_each_shipped_policy_has_the_prepared_plan_in_the_runbook_order_by_hand_only(
    name: str,
) -> None:
    policy = load_policy(ROOT / "policies" / name)
    spec = policy.scenarios[FULL]
    assert spec.by_hand_only
    actions = [step.action for step in spec.steps]
    order = ["system.snapshot", "system.emergency_stop", "system.resources", "system.rebuild",
             "database.restore"]
    assert [a for a in actions if a in order] == order
    assert FULL not in {rule.scenario for rule in policy.rules}


def test_no_action_of_the_catalogue_removes_a_volume_prunes_or_resets() -> None:
    """What the catalogue says, what the policies' steps ask (their action and params; a
    note may well say "never down -v") and what the handlers call."""
    for action, spec in ACTIONS.items():
        assert not any(words in spec.summary for words in FORBIDDEN), action
        assert "removes volumes" not in spec.summary, action
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        steps = [
            yaml.safe_dump({"action": step["action"], "params": step.get("params", {})})
            for scenario in yaml.safe_load(path.read_text())["scenarios"].values()
            for step in scenario.get("steps", [])
        ]
        assert not [s for s in steps if any(words in s for words in FORBIDDEN)], path
    calls = re.compile(
        r"\.prune\(|prune_|v=True|volumes\.get\([^)]*\)\.remove|remove_volume|"
        r"\"git\"|'git'|\"docker\", \"compose\""
    )
    for source in sorted((ROOT / "watchdog" / "actions").glob("*.py")):
        found = calls.findall(source.read_text())
        assert not found, f"{source.name}: {found}"


def test_the_daemons_p0_plan_prepares_the_full_rollback_for_a_person(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.model import Risk, Severity
    from watchdog.policy.planner import plan_for

    policy = load_policy(ROOT / "policies" / "songnodes.yaml", environ={})
    plan = plan_for(policy, scenario="complete_system_failure", severity=Severity.P0,
                    subject="", params={"incident": "7"}, why="every service down")
    assert [s.action for s in plan.steps] == ["system.snapshot", "service.start"]
    assert all(s.risk is Risk.SAFE for s in plan.steps)  # the daemon runs only these
    assert plan.steps[0].param_map()["dir"] == "forensics/incident-7"
    assert "`watchdog rollback --full" in plan.prepared[0]
    assert [line.split(" (")[1].split(",")[0] for line in plan.prepared[1:5]] == [
        "system.snapshot", "system.emergency_stop", "system.resources", "system.rebuild"
    ]

    def not_by_hand(data: dict[str, object]) -> None:
        scenarios = data["scenarios"]
        assert isinstance(scenarios, dict)
        scenarios["complete_system_failure"]["prepared"] = "service_failure"

    path = write(tmp_path, not_by_hand)
    assert main(["validate", str(path)]) == 2
    assert "scenarios.complete_system_failure.prepared: found 'service_failure'; expected " \
        "the name of a by_hand_only scenario" in capsys.readouterr().err
