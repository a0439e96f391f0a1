"""Nothing lost on a crash, nothing run twice blindly: the daemon stopped mid-plan.

The service-failure plan gets a 4 s `wait` step before its restart (in a copy of
songnodes.yaml), so the daemon can be stopped while a step is in flight: by
SIGTERM (it finishes the step in flight, then exits 0) and by SIGKILL (the
restarted daemon finds the step journaled as started, and reruns it only
because it is idempotent). A non-idempotent step left started is marked unknown
and escalated, never rerun.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from watchdog.demo import wait_for
from watchdog.model import AuthMode, Authorization, Plan, Risk, Severity, Step

pytestmark = pytest.mark.slow


def slow_restart(data: dict[str, Any]) -> None:
    steps = data["scenarios"]["service_failure"]["steps"]
    steps.insert(0, {"name": "let connections drain", "action": "wait", "params": {"seconds": 4}})


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    policy = songnodes_variant(tmp_path, slow_restart)
    with staged_daemon(tmp_path, policy) as stage:
        yield stage


def in_flight(stage: Stage, known: set[int]) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def waiting() -> bool:
        for incident in stage.incidents():
            if incident["id"] not in known and incident["steps"]:
                found.update(incident)
                return incident["steps"][-1]["status"] == "started"
        return False

    wait_for(waiting, 30, "the wait step to be in flight")
    return found


def test_sigterm_finishes_the_step_in_flight_and_exits_cleanly(stage: Stage) -> None:
    known = stage.inject("crash", service="dlq-manager")
    incident = in_flight(stage, known)
    began = time.monotonic()
    code = stage.daemon.stop(signal.SIGTERM, timeout=30)
    took = time.monotonic() - began
    assert code == 0
    journal = stage.journal()
    try:
        steps = journal.steps(incident["id"])
        assert [(s.name, s.status) for s in steps] == [
            ("let connections drain", "succeeded"),
            ("restart the failed service", "succeeded"),
        ]
        assert not journal.unfinished_steps()
    finally:
        journal.close()
    assert took < 25  # bounded by the grace period, not by a hang
    assert stage.stack.service("dlq-manager")["running"]
    stage.daemon.start()  # the next daemon verifies what the last one did
    resolved = stage.follow(known, ("resolved",))
    assert any(e["kind"] == "recovered" for e in resolved["timeline"])


def test_sigkill_mid_step_reruns_the_idempotent_step_after_restart(stage: Stage) -> None:
    known = stage.inject("crash", service="dlq-manager")
    incident = in_flight(stage, known)
    assert stage.daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    stage.daemon.start()
    resolved = stage.follow(known, ("resolved",))
    assert resolved["id"] == incident["id"]
    attempts = [(s["name"], s["attempt"], s["status"]) for s in resolved["steps"]]
    assert attempts == [
        ("let connections drain", 1, "unknown"),
        ("let connections drain", 2, "succeeded"),
        ("restart the failed service", 1, "succeeded"),
    ]
    assert "idempotent, so it runs again" in resolved["steps"][0]["output"]
    assert stage.stack.service("dlq-manager")["running"]


def test_a_non_idempotent_step_left_started_is_marked_unknown_and_escalated(stage: Stage) -> None:
    stage.daemon.stop()
    journal = stage.journal()
    plan = Plan(
        scenario="database_migration_failure",
        title="Restore the database",
        steps=(
            Step(
                "restore the newest backup",
                "database.restore",
                Risk.RISKY,
                params=(("backup_dir", "/backups/postgres"),),
                idempotent=False,
            ),
        ),
        checklist=(),
        verify_for_seconds=1,
        verify_timeout_seconds=5,
        authorization=Authorization(AuthMode.APPROVAL, "approved by lead", "lead", 1),
        reason="test",
    )
    try:
        incident = journal.open_incident(
            key="database",
            severity=Severity.P1,
            scenario="database_migration_failure",
            subject="",
            state="executing",
            reason="migration failed",
            at=time.time(),
            findings=(),
        )
        journal.save_plan(incident, plan, at=time.time())
        journal.step_started(incident, index=0, step=plan.steps[0], at=time.time())
    finally:
        journal.close()  # as if the daemon died right here
    stage.daemon.start()
    escalated = stage.follow(set(), ("escalated",))
    assert escalated["id"] == incident
    (step,) = escalated["steps"]
    assert step["status"] == "unknown" and "NOT run again" in step["output"]
    summaries = [e["summary"] for e in escalated["timeline"]]
    assert any("interrupted; its outcome is unknown" in s for s in summaries)
