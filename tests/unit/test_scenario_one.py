"""Runbook scenario 1 in the pure core: a failure right after a change is a bad deploy.

Both shipped policies, driven as the daemon drives them (observations in, ticks,
triage): a service failing within `after_change.within` of its containers
leaving their last known good version opens new_service_failure, with the change
in the reason; the same failure with no change, an old change or a stale reading
stays the plain restart. And the probe's pure part: which replica differs from
its last good row, and since when.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.helpers import HEALTHY, ROOT, Core, songnodes
from watchdog.model import Finding, Observation, Plan
from watchdog.policy.planner import plan_for
from watchdog.policy.schema import Policy
from watchdog.policy.triage import Open, triage
from watchdog.policyfile import load_policy
from watchdog.probes.docker_changes import change_of, created_at

CHANGED = "image changed: watchdog-test/web:broken, last good watchdog-test/web:good"


def plan(policy: Policy, finding: Finding) -> Plan:
    """The plan the engine makes for the incident this finding opens."""
    return plan_for(
        policy,
        scenario=finding.scenario,
        severity=finding.severity,
        subject=finding.subject,
        params={"series": finding.series, **finding.param_map(), "incident": "7"},
        why=finding.reason,
    )


def generic() -> Policy:
    return load_policy(ROOT / "policies" / "compose-generic.yaml", environ={})


def opened(core: Core, start: float, seconds: int, readings: dict[str, object]) -> list[Open]:
    """Observe `readings` every second for `seconds`; what triage opens on the way."""
    found: list[Open] = []
    for at in range(int(start), int(start) + seconds):
        core.observe(float(at), readings)  # type: ignore[arg-type]
        tick = core.tick(float(at))
        found += [d for d in triage(tick.fired, []) if isinstance(d, Open)]
    return found


def change(core: Core, at: float, service: str, age: float | None, detail: str = CHANGED) -> None:
    core.windows.record(Observation("container_changed", at, age, series=service, detail=detail))


def fail_web(core: Core, start: float, seconds: int, *, age_at_start: float | None) -> list[Open]:
    found: list[Open] = []
    for at in range(int(start), int(start) + seconds):
        age = None if age_at_start is None else age_at_start + (at - start)
        change(core, float(at), "web", age)
        found += opened(core, float(at), 1, {"container_healthy": {"web": 0.0, "api": 1.0}})
    return found


def test_a_service_failing_right_after_its_image_changed_opens_scenario_one() -> None:
    core = Core(generic())
    opened(core, 0, 5, {"container_healthy": {"web": 1.0, "api": 1.0}})
    (decision,) = fail_web(core, 5, 30, age_at_start=42)
    assert decision.scenario == "new_service_failure" and decision.severity.name == "P2"
    assert decision.key == "service_failure/web"
    assert (
        "web's image changed 42 s before it failed (watchdog-test/web:broken, "
        "last good watchdog-test/web:good)" in decision.reason
    )
    assert "Scenario 1" in decision.reason
    plan_made = plan(core.policy, decision.findings[0])
    assert [s.action for s in plan_made.steps] == [
        "service.evidence",
        "backup.confirm",
        "service.stop",
        "service.revert",
        "service.restart_dependents",
    ]
    assert plan_made.verify_for_seconds == 15 * 60  # the runbook's 15-minute watch


@pytest.mark.parametrize(
    ("age", "why"),
    [(None, "runs its last known good version"), (11 * 60, "changed 11 min before")],
)
def test_the_same_failure_with_no_recent_change_stays_a_plain_restart(
    age: float | None, why: str
) -> None:
    core = Core(generic())
    (decision,) = fail_web(core, 0, 30, age_at_start=age)
    assert decision.scenario == "restart_service", why
    assert "changed" not in decision.reason


def test_a_stale_change_reading_is_no_change() -> None:
    """A reading older than the change signal's staleness limit decides nothing."""
    core = Core(generic())
    change(core, 0.0, "web", 5.0)
    (decision,) = opened(core, 60, 30, {"container_healthy": {"web": 0.0}})
    assert decision.scenario == "restart_service"


def test_a_crash_loop_after_a_deploy_is_scenario_one_not_the_plain_revert() -> None:
    core = Core(generic())
    change(core, 10.0, "web", 3.0)
    (decision,) = opened(core, 10, 1, {"container_crash_loop": {"web": 4.0}})
    assert decision.scenario == "new_service_failure"
    assert "web's image changed 3 s before it failed" in decision.reason


def test_a_crash_loop_counted_before_the_change_was_read_waits_for_the_change_reading() -> None:
    """Two probes, two clocks: the route is decided on a change reading as new as the failure."""
    core = Core(generic())
    change(core, 10.0, "web", None, "runs its last known good image and configuration")
    assert opened(core, 11, 1, {"container_crash_loop": {"web": 4.0}}) == []  # not yet known
    change(core, 11.5, "web", 1.0)
    (decision,) = opened(core, 12, 1, {})
    assert decision.scenario == "new_service_failure"


def test_probes_polling_out_of_phase_never_hold_a_rule() -> None:
    """Each poll, the change probe answers 50 ms before the health probe and the tick
    comes after both (seen on a real engine): the plain failure still fires at its `for`."""
    core = Core(generic())
    found: list[Open] = []
    for step in range(60):  # 30 s, both probes every 0.5 s
        at = step / 2
        change(core, at - 0.05, "web", None, "runs its last known good image and configuration")
        core.observe(at, {"container_healthy": {"web": 0.0}})
        found += [d for d in triage(core.tick(at).fired, []) if isinstance(d, Open)]
    (decision,) = found
    assert decision.scenario == "restart_service"


def songnodes_failure(policy: Policy, age: float | None) -> Finding:
    core = Core(policy)
    readings = {**HEALTHY, "dlq_manager_health": 0.0}
    found: list[Finding] = []
    for at in range(0, 40):
        detail = "configuration changed: environment differ from the last good record"
        change(core, float(at), "dlq-manager", None if age is None else age + at, detail)
        core.observe(float(at), readings)
        found += core.tick(float(at)).fired
    (finding,) = [f for f in found if f.subject == "dlq-manager"]
    return finding


def test_songnodes_routes_a_changed_dlq_manager_to_scenario_one_with_its_backup_check() -> None:
    policy = songnodes()
    finding = songnodes_failure(policy, age=5.0)
    assert finding.scenario == "new_service_failure"
    assert "dlq-manager's configuration changed" in finding.reason
    confirm = next(s for s in plan(policy, finding).steps if s.action == "backup.confirm")
    assert confirm.param_map()["service"] == "dlq-manager"
    assert "dlq-manager" in policy.stack.schema_coupled_services  # so the check applies
    assert songnodes_failure(policy, age=None).scenario == "service_failure"


def test_an_after_change_naming_no_changed_signal_is_refused() -> None:
    from watchdog.policy.checks import find_problems

    policy = generic()
    rule = policy.rules[2].model_copy(
        update={
            "after_change": policy.rules[2].after_change.model_copy(  # type: ignore[union-attr]
                update={"signal": "container_healthy", "scenario": "nope"}
            )
        }
    )
    broken = policy.model_copy(update={"rules": [rule]})
    where = {p.path for p in find_problems(broken)}
    assert {"rules[0].after_change.signal", "rules[0].after_change.scenario"} <= where


def inspect(
    image: str, image_id: str, *, created: str, cmd: list[str], name: str = "p-web-1"
) -> dict[str, Any]:
    return {
        "Name": "/" + name,
        "Image": image_id,
        "Created": created,
        "Config": {
            "Image": image,
            "Cmd": cmd,
            "Env": ["A=1"],
            "Labels": {"com.docker.compose.container-number": "1"},
        },
    }


GOOD_ROW = {
    "name": "p-web-1",
    "number": 1,
    "image": "watchdog-test/web:good",
    "image_id": "sha256:" + "a" * 64,
    "env": ["A=1"],
    "command": ["httpd"],
    "entrypoint": None,
    "labels": {},
}


def test_change_of_names_what_differs_and_since_when() -> None:
    created = "2026-12-05T00:36:42.250000000Z"
    same = inspect("watchdog-test/web:good", "sha256:" + "a" * 64, created=created, cmd=["httpd"])
    assert change_of([same], [GOOD_ROW]) is None
    new = inspect("watchdog-test/web:broken", "sha256:" + "b" * 64, created=created, cmd=["sh"])
    at, words = change_of([new], [GOOD_ROW]) or (0.0, "")
    assert at == created_at(created) and at % 1 == pytest.approx(0.25)
    assert words == CHANGED
    edited = {**same, "Config": {**same["Config"], "Env": ["A=2"]}}
    assert change_of([edited], [GOOD_ROW]) == (
        at,
        "configuration changed: environment differ from the last good record",
    )
    stranger = inspect("x", "sha256:c", created=created, cmd=[], name="p-web-2")
    stranger["Config"]["Labels"] = {"com.docker.compose.container-number": "2"}
    assert change_of([stranger], [GOOD_ROW]) is None  # scaled up since: not a new version
