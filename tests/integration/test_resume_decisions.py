"""A restart decides each open incident anew: no replay, no wedge (issue 12's defects).

Each test stops the real daemon (on the sandbox stack), writes into its journal
what a crash at that instant would have left, starts it again and checks what it
did. On the code before issue 12 these failed: an interrupted manual database
rollback carried on while paused with no approval (it re-ran "stop the
application services" at once), and an incident left in `failed`, `rejected` or
`expired` stayed there for good, nobody paged and its key taken.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.daemon_stage import Stage, staged_daemon
from watchdog.demo import wait_for
from watchdog.model import AuthMode, Authorization, Plan, Risk, Severity, Step
from watchdog.policy.moves import MANUAL_KEY_PREFIX
from watchdog.store.records import PAUSED_FLAG, MoveRecord

pytestmark = pytest.mark.slow

APP = ("metadata-enrichment", "rest-api")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with staged_daemon(tmp_path_factory.mktemp("resume")) as stage:
        yield stage


def database_plan(mode: AuthMode) -> Plan:
    return Plan(
        scenario="database_migration_failure",
        title="Restore the database",
        steps=(
            Step("stop the application services", "service.stop", Risk.SAFE,
                 params=(("services", APP),)),
            Step("restore the newest backup", "database.restore", Risk.RISKY,
                 params=(("backup_dir", "/backups/postgres"),), idempotent=False),
            Step("start the application services", "service.start", Risk.SAFE,
                 params=(("services", APP),)),
        ),
        checklist=(),
        verify_for_seconds=1,
        verify_timeout_seconds=5,
        authorization=Authorization(mode, "run by hand" if mode is AuthMode.AUTO else "lead",
                                    "lead" if mode is AuthMode.APPROVAL else None,
                                    1 if mode is AuthMode.APPROVAL else 0),
        reason="test",
    )


def seed(stage: Stage, key: str, state: str, plan: Plan, *, started: int | None = None,
         paused: bool = False) -> int:
    """Stop the daemon and leave in its journal what a crash would have left."""
    stage.daemon.stop()
    journal = stage.journal()
    try:
        now = time.time()
        incident = journal.open_incident(
            key=key, severity=Severity.P1, scenario=plan.scenario, subject="database",
            state="detected", reason="seeded", at=now, findings=(),
        )
        walk = {"executing": ("triaged", "executing"),
                "failed": ("triaged", "executing", "failed"),
                "rejected": ("triaged", "awaiting_approval", "rejected"),
                "expired": ("triaged", "awaiting_approval", "expired")}[state]
        journal.commit_move(incident, MoveRecord(
            at=now, states=tuple((s, "seeded") for s in walk), plan=plan))
        if started is not None:
            for index in range(started):
                step_id = journal.step_started(incident, index=index, step=plan.steps[index],
                                               at=now)
                journal.step_finished(step_id, status="succeeded", at=now, output="done")
            journal.step_started(incident, index=started, step=plan.steps[started], at=now)
        journal.set_flag(PAUSED_FLAG, "1" if paused else "0", at=now)
    finally:
        journal.close()  # as if the daemon died right here
    stage.daemon.start()
    return incident


def settled(stage: Stage, incident: int, states: tuple[str, ...]) -> dict[str, object]:
    found: dict[str, object] = {}

    def reached() -> bool:
        for entry in stage.incidents():
            if entry["id"] == incident:
                found.update(entry)
        return found.get("state") in states

    wait_for(reached, 30, f"incident {incident} to reach {states}")
    return found


def test_an_interrupted_manual_rollback_pages_and_waits_for_a_fresh_approval(
    stage: Stage,
) -> None:
    """The defect: paused, restarted, it re-ran "stop the application services" at once."""
    incident = seed(stage, f"{MANUAL_KEY_PREFIX}database/1", "executing",
                    database_plan(AuthMode.AUTO), started=0, paused=True)
    waiting = settled(stage, incident, ("awaiting_approval",))
    steps = waiting["steps"]
    assert isinstance(steps, list) and [s["status"] for s in steps] == ["unknown"]
    summaries = [e["summary"] for e in waiting["timeline"]]  # type: ignore[attr-defined]
    assert any("needs a fresh approval" in s for s in summaries), summaries
    time.sleep(2)  # a few ticks: still nothing runs
    again = settled(stage, incident, ("awaiting_approval",))
    assert len(again["steps"]) == 1  # type: ignore[arg-type]


def test_an_interrupted_approved_plan_asks_again_even_when_not_paused(stage: Stage) -> None:
    incident = seed(stage, "database/approved", "executing",
                    database_plan(AuthMode.APPROVAL), started=2)
    waiting = settled(stage, incident, ("awaiting_approval",))
    statuses = [s["status"] for s in waiting["steps"]]  # type: ignore[union-attr]
    assert statuses == ["succeeded", "succeeded", "unknown"]


def test_a_non_idempotent_step_in_flight_of_an_approved_plan_escalates(stage: Stage) -> None:
    incident = seed(stage, "database/restore-in-flight", "executing",
                    database_plan(AuthMode.APPROVAL), started=1)
    escalated = settled(stage, incident, ("escalated",))
    statuses = [s["status"] for s in escalated["steps"]]  # type: ignore[union-attr]
    assert statuses == ["succeeded", "unknown"]


def test_an_interrupted_automatic_plan_escalates_while_paused(stage: Stage) -> None:
    plan = database_plan(AuthMode.AUTO)
    automatic = Plan(plan.scenario, "stop and start", (plan.steps[0], plan.steps[2]), (),
                     1, 5, plan.authorization, "test")
    incident = seed(stage, "database/automatic", "executing", automatic, started=0, paused=True)
    escalated = settled(stage, incident, ("escalated",))
    assert [s["status"] for s in escalated["steps"]] == ["unknown"]  # type: ignore[union-attr]
    summaries = [e["summary"] for e in escalated["timeline"]]  # type: ignore[attr-defined]
    assert any("not resumed" in s and "paused" in s for s in summaries), summaries


@pytest.mark.parametrize("state", ["failed", "rejected", "expired"])
def test_an_incident_left_between_two_writes_escalates_after_a_restart(
    stage: Stage, state: str
) -> None:
    """The defect: fail → escalate was two writes; the restart left it wedged for good."""
    incident = seed(stage, f"database/{state}", state, database_plan(AuthMode.APPROVAL))
    escalated = settled(stage, incident, ("escalated",))
    assert escalated["state"] == "escalated"


def test_a_human_ends_incidents_and_the_daemon_lets_go_of_them(stage: Stage) -> None:
    """Wedged or escalated, a human can end any incident; its fault is then handled anew."""
    journal = stage.journal()
    try:
        for record in journal.open_incidents():  # what the tests above left escalated
            journal.close_by_human(record.id, person="lee", role="lead", comment="checked by hand",
                                   at=time.time())
        journal.set_flag(PAUSED_FLAG, "1", at=time.time())
    finally:
        journal.close()
    wait_for(lambda: stage.metric("watchdog_paused") == 1, 10, "the daemon to see the pause")
    known = stage.inject("crash", service="dlq-manager")
    escalated = stage.follow(known, ("escalated",))
    assert escalated["steps"] == []
    journal = stage.journal()
    try:
        journal.close_by_human(escalated["id"], person="lee", role="lead",
                               comment="I will restart it myself", at=time.time())
        journal.set_flag(PAUSED_FLAG, "0", at=time.time())
    finally:
        journal.close()
    # The key is free and the rule reset: the fault, still there, opens a new incident.
    again = stage.follow(known | {escalated["id"]}, ("resolved",), seconds=60)
    assert again["key"] == escalated["key"]
    assert [s["status"] for s in again["steps"]] == ["succeeded"]


def test_a_crash_between_rungs_runs_the_next_rung_not_verify(stage: Stage) -> None:
    """The defect: with steps untied to their rung, the resume took max(index) over both
    plans, journaled "every step had finished" and skipped the revert."""
    from watchdog.demo import POLICY
    from watchdog.policy.planner import plan_for
    from watchdog.policyfile import load_policy

    policy = load_policy(POLICY)
    restart = plan_for(policy, scenario="service_failure", severity=Severity.P2,
                       subject="dlq-manager", params={"series": "dlq-manager"}, why="down")
    revert = plan_for(policy, scenario="service_revert", severity=Severity.P2,
                      subject="dlq-manager", params={"series": "dlq-manager"}, why="down")
    stage.daemon.stop()
    journal = stage.journal()
    try:
        now = time.time()
        incident = journal.open_incident(
            key="service_failure/dlq-manager/rungs", severity=Severity.P2,
            scenario="service_failure", subject="dlq-manager", state="detected",
            reason="seeded", at=now, findings=(),
        )
        journal.commit_move(incident, MoveRecord(
            at=now, states=(("triaged", "seeded"), ("executing", "seeded")), plan=restart))
        for index, step in enumerate(restart.steps):  # rung 0 ran to its end, then failed
            step_id = journal.step_started(incident, index=index, step=step, at=now)
            journal.step_finished(step_id, status="succeeded", at=now, output="done")
        journal.commit_move(incident, MoveRecord(
            at=now, states=(("verifying", "ran"), ("failed", "did not hold"),
                            ("triaged", "next rung"), ("executing", "revert")),
            plan=revert, climb=(1, "service_revert")))
    finally:
        journal.close()  # the crash: rung 1 planned, none of its steps started
    stage.daemon.start()

    def reverted() -> bool:
        journal = stage.journal()
        try:
            return any(s.rung == 1 and s.status != "started" for s in journal.steps(incident))
        finally:
            journal.close()

    wait_for(reverted, 30, "the revert of rung 1 to run")
    journal = stage.journal()
    try:
        steps = journal.steps(incident)
        summaries = [e.summary for e in journal.timeline(incident)]
    finally:
        journal.close()
    assert [(s.rung, s.action) for s in steps][-1] == (1, "service.revert")
    assert not any("every step had finished" in s for s in summaries)
