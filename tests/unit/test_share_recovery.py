"""The share rules heal what they see: the core names the failing services, the plan recovers
each as its own state calls for, and a checklist that does not move gives the plan up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchdog.actions.docker_recover import remedy
from watchdog.model import Observation, Severity
from watchdog.policy.planner import plan_for
from watchdog.policy.rules import Evaluator
from watchdog.policy.windows import Windows
from watchdog.policyfile import load_policy

GENERIC = Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml"


def share_findings(health: dict[str, float]) -> dict[str, dict[str, str]]:
    """Feed each discovered service's Docker health for 40 s (the generic policy has no
    targets: its share is of `container_healthy`'s series); the share rules' findings."""
    policy = load_policy(GENERIC, environ={})
    evaluator, windows, states = Evaluator(policy), Windows(), {}
    found: dict[str, dict[str, str]] = {}
    for at in range(0, 41, 5):
        for target, value in health.items():
            windows.record(Observation("container_healthy", float(at), value, series=target))
        evaluator.derive(windows, float(at))
        tick = evaluator.evaluate(windows, states, float(at))
        states = tick.states
        found = {f.rule: f.param_map() for f in tick.active if f.group == "system"}
    return found


def test_the_share_rules_name_the_failing_services_from_their_own_evidence() -> None:
    assert share_findings({"web": 0, "api": 0, "worker": 1}) == {
        "most-services-down": {"failing": "api,web"}
    }
    every = share_findings({"web": 0, "api": 0, "worker": 0})
    assert every["every-service-down"] == {"failing": "api,web,worker"}


def test_the_share_plan_recovers_the_failing_and_gives_up_when_nothing_moves() -> None:
    policy = load_policy(GENERIC, environ={})
    plan = plan_for(
        policy,
        scenario="start_everything",
        severity=Severity.P0,
        subject="",
        params={"failing": "web"},
        why="every service down",
    )
    (step,) = plan.steps
    assert step.action == "service.recover" and step.idempotent
    # No targets: no services named; the registry recovers the failing ones it is given.
    assert step.param_map() == {"services": [], "failing": "web"}
    assert plan.title == "Recover every failing service (web)"
    assert plan.verify_timeout_seconds == 120 and plan.give_up_seconds == 30


def container(status: str, health: str = "", *, restarting: bool = False) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Status": status, "Running": status == "running", "Restarting": restarting
    }
    attrs: dict[str, Any] = {"State": state, "Config": {}}
    if health:
        state["Health"] = {"Status": health}
        attrs["Config"]["Healthcheck"] = {"Test": ["CMD", "true"]}
    return attrs


@pytest.mark.parametrize(
    ("attrs", "failing", "verb", "words"),
    [
        (container("running", "unhealthy"), (), "restart", "running, unhealthy → restarted"),
        (container("running", "healthy"), ("web",), "restart", "its health signal is down"),
        (container("running"), ("web",), "restart", "its health signal is down"),
        (container("exited"), (), "start", "exited → started"),
        (container("created"), ("web",), "start", "created → started"),
        (container("running", "healthy"), ("api",), "", "healthy, left alone"),
        (container("running", "starting"), (), "", "starting, left alone"),
        (container("running"), (), "", "running, left alone"),
        (container("restarting", restarting=True), ("web",), "", "left to it"),
    ],
)
def test_each_container_gets_the_remedy_its_state_calls_for(
    attrs: dict[str, Any], failing: tuple[str, ...], verb: str, words: str
) -> None:
    got_verb, got_words = remedy(attrs, "web", failing)
    assert got_verb == verb and words in got_words
