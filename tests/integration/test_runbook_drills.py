"""The runbook's quarterly rollback tests (Q1-Q4) as songnodes.yaml ships them, passing.

The daemon runs policies/songnodes.yaml as `watchdog demo` runs it (clock compressed
tenfold, no drill edited in), with a people file so an on-call engineer can approve;
each drill is the real command line in this process, sharing the daemon's journal.
Q2 (the database) passes only because a person approves the daemon's plan while the
drill waits, as the policy's comment says: this test is that person. Every wait is on
a condition, never a fixed sleep; the stack is quiet again before each drill.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.approvals_fixtures import write_crew
from watchdog.cli import main
from watchdog.demo import DaemonProcess, has_last_good, quiet, running_daemon, wait_for
from watchdog.demosetup import demo_policy
from watchdog.drill.run import last_result
from watchdog.sandbox.catalog import HTTP_HEALTH_ROLES, SERVICES
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import open_journal

pytestmark = pytest.mark.slow

SONGNODES = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
#: drill -> (the scenario of the incident its fault opens, a line its output must show)
EXPECTED = {
    "q1-service": ("service_failure", "sandbox fault crash {'service': 'api-gateway-internal'}"),
    "q3-config": ("configuration_corruption", "sandbox fault corrupt_config"),
    "q4-system": ("complete_system_failure", "sandbox fault system_down"),
    "q2-database": ("database_unavailable", "sandbox fault database_down"),
}


def approve_when_asked(daemon: DaemonProcess, token: str, done: threading.Event) -> None:
    """The on-call engineer: approves the database plan once it waits for a person."""
    while not done.wait(0.1):
        waiting = [i for i in daemon.incidents(open_only=True)
                   if i["scenario"] == "database_unavailable" and i["state"] == "awaiting_approval"]
        for incident in waiting:
            httpx.post(f"{daemon.url}/api/incidents/{incident['id']}/approve",
                       json={"comment": "Q2 drill: restore the database"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
            return


def test_the_shipped_quarterly_drills_pass_on_the_sandbox_q2_once_the_on_call_approves(
    tmp_path: Path, sandbox_stack: SandboxStack, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = demo_policy(SONGNODES, tmp_path, 10, lambda _line: None)
    crew = write_crew(tmp_path)
    with running_daemon(sandbox_stack, tmp_path, policy=policy,
                        environment={"WATCHDOG_PEOPLE": str(crew.path)}) as daemon:
        for name in [n for n in os.environ if n.startswith("WATCHDOG_")]:
            monkeypatch.delenv(name)
        for name, value in {"WATCHDOG_STATE": str(tmp_path / "journal.db"),
                            "WATCHDOG_ORCHESTRATOR": f"sandbox+{sandbox_stack.control_url}",
                            "WATCHDOG_TIME_SCALE": "10"}.items():
            monkeypatch.setenv(name, value)
        wait_for(lambda: has_last_good(tmp_path), 30, "a last known good configuration")
        for drill, (_scenario, injected) in EXPECTED.items():
            wait_for(lambda: quiet(daemon.url, daemon.read_token), 30, "the stack quiet")
            done = threading.Event()
            approver = threading.Thread(target=approve_when_asked,
                                        args=(daemon, crew.tokens["olga"], done))
            if drill == "q2-database":
                approver.start()
            try:
                code = main(["drill", drill, "--policy", str(policy)])
            finally:
                done.set()
                if approver.is_alive():
                    approver.join()
            printed = capsys.readouterr().out
            assert code == 0, printed
            assert f"injected: {injected}" in printed, printed
            assert f"# Drill {drill}: PASSED" in printed and "| yes | yes | yes |" in printed

    application = sorted(n for n, role in SERVICES.items() if role in HTTP_HEALTH_ROLES)
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        incidents = {}
        for drill, (scenario, _injected) in EXPECTED.items():
            result = last_result(journal, drill)
            assert result is not None and result["outcome"] == "passed", (drill, result)
            incident = journal.incident(result["incident"])
            assert (incident.scenario, incident.state) == (scenario, "resolved"), drill
            timeline = journal.timeline(incident.id)
            drilled = [e.data for e in timeline if e.kind == "drill"]
            assert [d["name"] for d in drilled] == [drill]
            (said,) = [e.summary for e in timeline if e.kind == "drill_fault"]
            assert said.startswith(f"a drill: this follows drill {drill}'s fault"), said
            incidents[drill] = incident.id
        (start,) = [s for s in journal.steps(incidents["q4-system"]) if s.action == "service.start"]
        assert all(name in start.output for name in application), start.output
        approvals = journal.approvals(incidents["q2-database"])
        assert [(a.person, a.decision) for a in approvals] == [("olga", "approve")]
    finally:
        journal.close()
