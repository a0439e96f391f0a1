"""`watchdog status` against a real daemon (issue 16, point 1), and the journal's side.

A real `watchdog run` guarding one closed loopback port (`tiny_policy`: no sandbox, no
orchestrator), in dry-run and with no pager configured, heartbeat every 0.2 s. Read
from the journal alone, as on-call would from another shell: it says dry-run and that
nobody can be paged (exit 0 while the heartbeat is fresh); `watchdog pause --as alice`
shows as paused by alice; once the daemon is killed, the heartbeat goes stale (exit 1).
Waits are polls of the CLI's own answer, never a sleep sized to the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.test_keys import tiny_policy
from watchdog.demo import DaemonProcess, wait_for
from watchdog.model import Severity
from watchdog.policy.statusview import DaemonRow
from watchdog.store.journal import open_journal
from watchdog.store.records import PageRows

pytestmark = pytest.mark.slow

PAGERS = ("WATCHDOG_PAGERDUTY_ROUTING_KEY", "WATCHDOG_OPSGENIE_API_KEY",
          "WATCHDOG_SLACK_WEBHOOK_URL", "WATCHDOG_WEBHOOK_URL")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PAGERS}
    return subprocess.run([sys.executable, "-m", "watchdog.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_status_from_the_journal_while_the_daemon_runs_is_paused_and_dies(
    tmp_path: Path,
) -> None:
    journal = str(tmp_path / "journal.db")
    assert [k for k in PAGERS if k in os.environ] == [], "the test needs no pager configured"
    daemon = DaemonProcess(
        None, tmp_path, policy=tiny_policy(tmp_path), extra_args=["--dry-run"],
        environment={"WATCHDOG_STATUS_HEARTBEAT": "0.2"},
    ).start()
    try:
        done = cli("status", "--state", journal)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("   daemon running since ") and "heartbeat" in lines[0]
        assert " ! DRY-RUN: steps and pages are journaled, nothing is touched or sent" in lines
        assert ("!! NOBODY CAN BE PAGED: no pager on for P0 (pagers on: none; P0 routes to: "
                "pagerduty, opsgenie, slack, webhook)") in lines
        assert "   single instance" in lines and f"   journal {journal}" in lines
        assert any(line.startswith("   policy keys (version 1, digest ") for line in lines)

        paused = cli("pause", "--as", "alice", "--state", journal)
        assert paused.stdout == "automatic actions paused by alice\n", paused.stderr
        shown = json.loads(cli("status", "--state", journal, "--json").stdout)
        assert (shown["running"], shown["nobody_paged"], shown["level"]) == (True, True, "alert")
        (pause,) = [line for line in shown["lines"] if line["key"] == "pause"]
        assert pause["level"] == "warn" and pause["text"].startswith("PAUSED since ")
        assert "by alice: no automatic action" in pause["text"]
        assert shown["facts"]["daemon"]["pid"] == (daemon._process.pid if daemon._process else 0)
        listed = cli("incidents", "--state", journal).stdout.splitlines()
        assert listed[0].startswith("   daemon running") and listed[1].startswith(" ! DRY-RUN")
        assert listed[2].startswith(" ! PAUSED") and listed[3].startswith("!! NOBODY CAN BE")
        assert listed[4] == "" and len(listed) > 5  # then the incidents, as before
    finally:
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL  # no clean stop: no stopped_at

    answers: list[subprocess.CompletedProcess[str]] = []

    def stale_said() -> bool:
        answers.append(cli("status", "--state", journal))
        return answers[-1].returncode == 1

    wait_for(stale_said, 20, "the heartbeat to go stale")
    stale = answers[-1].stdout.splitlines()[0]
    assert stale.startswith("!! daemon heartbeat ") and "is it running?" in stale, stale


def test_the_journal_keeps_one_row_per_stack_and_the_last_delivery_per_pager(
    tmp_path: Path,
) -> None:
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        row = DaemonRow(stack="s", pid=1, host="h", started_at=1.0, heartbeat_at=1.0,
                        heartbeat_seconds=5.0, dry_run=False, journal="/j.db",
                        policy_name="s", policy_version="version 1",
                        channels=("pagerduty", "slack", "webhook"), p0_routes=("pagerduty",))
        journal.write_status(row)
        journal.write_status(replace(row, heartbeat_at=9.0, pid=2))
        incident = journal.open_incident(key="k", severity=Severity.P0, scenario="x",
                                         subject="s", state="triaged", reason="r", at=1.0,
                                         findings=[])
        bodies = {c: {"n": 1} for c in ("pagerduty", "slack", "webhook")}
        first = journal.enqueue_page(incident, PageRows("trigger", "k", bodies, "r", "pending"),
                                     at=2.0)
        journal.delivery_sent(first[0], at=3.0, summary="202")
        journal.delivery_rejected(first[1], at=4.0, error="HTTP 500")
        journal.delivery_retry(first[2], at=5.0, next_at=6.0, error="timed out")
        journal.enqueue_page(incident, PageRows("trigger", "k", bodies, "r", "dry_run"), at=7.0)
        facts = journal.status_facts()
    finally:
        journal.close()
    assert facts.daemon is not None and (facts.daemon.pid, facts.daemon.heartbeat_at) == (2, 9.0)
    assert facts.daemon.channels == ("pagerduty", "slack", "webhook")
    assert [(d.channel, d.ok, d.at, d.error) for d in facts.deliveries] == [
        ("pagerduty", True, 3.0, ""), ("slack", False, 4.0, "HTTP 500"),
        ("webhook", None, 2.0, "timed out")]
    assert (facts.paused, facts.paused_by) == (False, "")
