"""Hysteresis, staleness, escalation and dedup in the pure core."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.helpers import HEALTHY, Core, songnodes
from watchdog.model import Observation, Severity
from watchdog.policy.rules import Evaluator
from watchdog.policy.schema import Policy
from watchdog.policy.triage import Attach, Escalate, Open, OpenIncident, finding_id, triage
from watchdog.policy.windows import Windows


def tiny_policy(**rule: Any) -> Policy:
    spec = {
        "name": "dlq-overflow",
        "signal": "depth",
        "op": ">",
        "threshold": 5000,
        "for": "30s",
        "clear_for": "60s",
        "severity": "P1",
        "scenario": "s",
        "says": "DLQ depth",
    }
    spec.update(rule)
    return Policy.model_validate(
        {
            "version": 1,
            "stack": {"name": "t"},
            "targets": {"q": {"url": "http://127.0.0.1:1"}},
            "signals": [
                {
                    "name": "depth",
                    "kind": "http",
                    "target": "q",
                    "value": "messages",
                    "interval": "1s",
                    "timeout": "1s",
                }
            ],
            "rules": [spec],
            "scenarios": {"s": {"title": "t"}},
            "authority": {
                p: {"safe": "auto", "risky": "never", "destructive": "never"}
                for p in ("P0", "P1", "P2", "P3")
            },
        }
    )


def drive(core: Core, values: list[tuple[float, float]]) -> dict[float, str]:
    """Observe each (time, value) and tick; report when the rule fired or cleared."""
    events: dict[float, str] = {}
    for at, value in values:
        core.observe(at, {"depth": value})
        tick = core.tick(at)
        if tick.fired:
            events[at] = "fired"
        if tick.cleared:
            events[at] = "cleared"
    return events


def test_fires_only_after_for_and_clears_only_after_clear_for() -> None:
    core = Core(tiny_policy())
    breach = [(float(t), 6000.0) for t in range(0, 40)]
    calm = [(float(t), 10.0) for t in range(40, 120)]
    events = drive(core, breach + calm)
    assert events == {30.0: "fired", 100.0: "cleared"}


def test_a_dip_restarts_the_for_clock() -> None:
    core = Core(tiny_policy())
    values = [(float(t), 6000.0 if t != 20 else 10.0) for t in range(0, 60)]
    assert drive(core, values) == {51.0: "fired"}


def test_a_blip_does_not_clear_an_active_rule() -> None:
    core = Core(tiny_policy())
    values = [(float(t), 6000.0) for t in range(0, 35)]
    values += [(float(t), 10.0 if t in (40, 41) else 6000.0) for t in range(35, 200)]
    assert drive(core, values) == {30.0: "fired"}


def test_stale_observations_hold_state_and_never_fire() -> None:
    core = Core(tiny_policy())
    core.observe(0, {"depth": 6000.0})
    # No new observation for five minutes: the reading is too old to act on.
    assert all(not core.tick(float(t)).fired for t in range(1, 300))


def test_error_observation_holds_unless_the_rule_says_breach() -> None:
    policy = tiny_policy(on_error="hold", **{"for": "0s"})
    windows = Windows()
    windows.record(Observation("depth", 0, None, error="connection refused"))
    assert Evaluator(policy).evaluate(windows, {}, 0).fired == []
    breach = tiny_policy(on_error="breach", **{"for": "0s"})
    assert [f.rule for f in Evaluator(breach).evaluate(windows, {}, 0).fired] == ["dlq-overflow"]


def test_finding_explains_itself_with_numbers() -> None:
    core = Core(tiny_policy())
    events = []
    for t in range(0, 31):
        core.observe(float(t), {"depth": 6120.0})
        events.append(core.tick(float(t)))
    finding = events[-1].fired[0]
    assert finding.evidence[0].startswith("DLQ depth 6120 > 5000 for 30 s")
    assert finding.reason.startswith("P1: DLQ depth 6120 > 5000")


def test_rate_of_change_rule() -> None:
    core = Core(tiny_policy(measure="change_per_minute", threshold=100, window="60s"))
    values = [(float(t), 1000.0 + t * 5) for t in range(0, 120)]  # 300 per minute
    events = drive(core, values)
    assert list(events.values()) == ["fired"]


# ---- triage -------------------------------------------------------------------


def fired_findings(readings: dict[str, Any], seconds: float = 200) -> list[Any]:
    core = Core(songnodes())
    core.run(0, 10, HEALTHY)
    core.run(11, seconds, {**HEALTHY, **readings})
    return core.tick(seconds + 12).active


def test_same_fault_twice_is_one_incident() -> None:
    active = fired_findings({"dlq_depth": 6000.0})
    first = triage(active, [])
    assert [type(d) for d in first] == [Open]
    opened = first[0]
    assert isinstance(opened, Open)
    incident = OpenIncident(
        opened.key,
        opened.severity,
        opened.scenario,
        frozenset(finding_id(f) for f in opened.findings),
    )
    assert triage(active, [incident]) == []  # nothing new: no second incident, no repeat


def test_higher_severity_escalates_the_open_incident() -> None:
    p2 = fired_findings({"enrichment_error_rate": 0.35})
    decision = triage(p2, [])[0]
    assert isinstance(decision, Open) and decision.severity is Severity.P2
    incident = OpenIncident(
        decision.key,
        decision.severity,
        decision.scenario,
        frozenset(finding_id(f) for f in decision.findings),
    )
    p1 = fired_findings({"enrichment_error_rate": 0.62})
    decisions = triage(p1, [incident])
    escalations = [d for d in decisions if isinstance(d, Escalate)]
    assert len(escalations) == 1 and escalations[0].key == decision.key
    assert escalations[0].severity is Severity.P1
    assert "escalated P2 → P1" in escalations[0].reason
    assert not [d for d in decisions if isinstance(d, Open)]


def test_equal_or_lower_severity_attaches() -> None:
    active = fired_findings({"dlq_depth": 6000.0})
    incident = OpenIncident("dlq", Severity.P1, "dlq_overflow", frozenset())
    decisions = triage(active, [incident])
    assert decisions and all(isinstance(d, Attach) for d in decisions)


@pytest.mark.parametrize("service", ["dlq_manager_health", "rest_api_health"])
def test_each_service_has_its_own_stable_key(service: str) -> None:
    active = fired_findings({service: 0.0})
    (decision,) = triage(active, [])
    assert isinstance(decision, Open)
    assert decision.key.startswith("service_failure/")
    assert decision.key == triage(fired_findings({service: 0.0}), [])[0].key
