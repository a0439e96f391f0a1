"""Scenario 5's detection: a whole-system fault opens one P0, never twenty.

Each case drives the core tick by tick, as the daemon does (triage on every
tick, with the incidents opened so far), so a single-service rule whose `for`
is shorter than the outage rule's cannot open its own incident first.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.unit.helpers import HEALTH_SIGNALS, HEALTHY, Core, songnodes
from watchdog.model import Severity
from watchdog.policy.triage import Attach, Escalate, Open, OpenIncident, finding_id, triage

Readings = dict[str, float | dict[str, float]]


def _incidents_over(core: Core, start: int, seconds: int, readings: Readings) -> list[Open]:
    """Every incident opened while `readings` hold, triaging each second."""
    opened: list[Open] = []
    incidents: dict[str, OpenIncident] = {}
    for second in range(start, start + seconds):
        core.observe(second, readings)
        tick = core.tick(second)
        for decision in triage(tick.active, list(incidents.values()), tick.holding):
            if isinstance(decision, Open):
                opened.append(decision)
                incidents[decision.key] = OpenIncident(
                    decision.key,
                    decision.severity,
                    decision.scenario,
                    frozenset(finding_id(f) for f in decision.findings),
                    frozenset(g for f in decision.findings for g in f.supersedes),
                )
            elif isinstance(decision, Escalate | Attach):
                known = incidents[decision.key]
                incidents[decision.key] = OpenIncident(
                    known.key,
                    decision.severity if isinstance(decision, Escalate) else known.severity,
                    known.scenario,
                    known.finding_ids | {finding_id(decision.finding)},
                    known.supersedes,
                )
    return opened


def _down(*signals: str) -> Mapping[str, float]:
    return dict.fromkeys(signals, 0.0)


WHOLE_SYSTEM_FAULTS = [
    ("every service down", {**_down(*HEALTH_SIGNALS)}, "complete_system_failure"),
    (
        "the engine unreachable, the services with it",
        {**_down(*HEALTH_SIGNALS), "docker_engine_up": 0.0},
        "orchestrator_down",
    ),
    ("disk exhausted", {"disk_used": 0.99}, "complete_system_failure"),
    ("memory exhausted", {"memory_used": 0.99}, "complete_system_failure"),
    (
        "the database gone, every service failing with it",
        {**_down(*HEALTH_SIGNALS), "database_accepts_queries": 0.0},
        "database_unavailable",
    ),
]


@pytest.mark.parametrize(
    ("fault", "readings", "scenario"), WHOLE_SYSTEM_FAULTS, ids=[f[0] for f in WHOLE_SYSTEM_FAULTS]
)
def test_a_whole_system_fault_opens_one_p0(
    fault: str, readings: Readings, scenario: str
) -> None:
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    opened = _incidents_over(core, 31, 400, {**HEALTHY, **readings})
    assert [(o.severity, o.scenario) for o in opened] == [(Severity.P0, scenario)], [
        (o.severity, o.scenario, o.reason) for o in opened
    ]


def test_a_single_service_down_is_still_its_own_p2_without_waiting_for_the_outage() -> None:
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    opened = _incidents_over(core, 31, 60, {**HEALTHY, **_down("dlq_manager_health")})
    assert [(o.severity, o.scenario) for o in opened] == [(Severity.P2, "service_failure")]


def test_an_outage_that_ends_before_its_for_lets_the_held_failures_open() -> None:
    """A hold lasts while the outage rule breaches; once it stops, the P2s open as usual."""
    core = Core(songnodes())
    core.run(0, 30, HEALTHY)
    all_down = {**HEALTHY, **_down(*HEALTH_SIGNALS)}
    assert _incidents_over(core, 31, 25, all_down) == []  # outage pending: P2s held
    opened = _incidents_over(
        core, 56, 60, {**HEALTHY, **_down(*HEALTH_SIGNALS[:2])}
    )  # seven came back: no outage, two still failing
    assert {"metadata-enrichment", "rest-api"} <= {o.subject for o in opened}, opened
    assert {o.severity for o in opened} == {Severity.P2}
