"""A drill the policy schedules, fired by APScheduler inside `watchdog run` itself.

The sandbox and the daemon are started as the README tells a user to: `watchdog sandbox
--env-file sandbox.env`, then `watchdog run` with those settings (songnodes, clock
compressed tenfold), with one drill scheduled `every 60s` (6 s here) whose 2 s timeout (0.2 s) no
daemon can meet: the scheduler injects the sandbox crash, the drill fails, opens its
P2 incident and the daemon's own outbox pages it. When it fails again 6 s later (and
again), the open incident gets each result and nobody is paged twice. The drill's counter is
in the daemon's own /metrics. Every wait is on a condition.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.notify_stage import WEBHOOK_TOKEN, Vendors
from watchdog.demo import DaemonProcess, wait_for
from watchdog.demosetup import demo_policy
from watchdog.drill.run import last_result
from watchdog.store.journal import open_journal

pytestmark = pytest.mark.slow

SONGNODES = Path(__file__).resolve().parents[2] / "policies" / "songnodes.yaml"
TOO_STRICT = {"fault": "sandbox", "kind": "crash", "body": {"service": "dlq-manager"},
              "timeout": "2s", "schedule": "every 60s"}


@contextlib.contextmanager
def sandbox_cli(folder: Path) -> Iterator[dict[str, str]]:
    """`watchdog sandbox --env-file`, and the settings it wrote, once every service answers."""
    env_file = folder / "sandbox.env"
    with (folder / "sandbox.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "watchdog.cli", "sandbox", "--state-dir", str(folder),
             "--env-file", str(env_file)],
            stdout=subprocess.DEVNULL, stderr=log,
        )
    try:
        wait_for(env_file.exists, 60, f"{env_file} (sandbox log: {folder / 'sandbox.log'})")
        yield dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    finally:
        process.terminate()
        process.wait(30)


def test_a_scheduled_drill_fires_inside_the_daemon_fails_and_pages_at_p2_once(
    tmp_path: Path, fakes: Vendors
) -> None:
    policy = demo_policy(SONGNODES, tmp_path, 10, lambda _line: None)
    data = yaml.safe_load(policy.read_text())
    data["drills"] = {"scenarios": {"hourly-too-strict": TOO_STRICT}}
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    pager = {"WATCHDOG_WEBHOOK_URL": fakes.webhook.hook_url,
             "WATCHDOG_WEBHOOK_TOKEN": WEBHOOK_TOKEN}

    def pages() -> list[dict[str, Any]]:
        return [e for e in fakes.webhook.events() if e["event"] == "trigger"
                and e["incident"]["scenario"] == "drill_failed"]

    def result() -> dict[str, Any] | None:
        journal = open_journal(str(tmp_path / "journal.db"))
        try:
            return last_result(journal, "hourly-too-strict")
        finally:
            journal.close()

    with sandbox_cli(tmp_path) as settings:
        assert settings["WATCHDOG_STATE"] == str(tmp_path / "journal.db")
        assert settings["WATCHDOG_ORCHESTRATOR"].startswith("sandbox+http://127.0.0.1:")
        daemon = DaemonProcess(None, tmp_path, policy=policy,
                               environment={**settings, **pager}).start()
        try:
            scheduled_drill_pages_once(daemon, tmp_path, pages, result)
        finally:
            daemon.stop()


def scheduled_drill_pages_once(
    daemon: DaemonProcess, tmp_path: Path, pages: Callable[[], list[dict[str, Any]]],
    result: Callable[[], dict[str, Any] | None],
) -> None:
    wait_for(lambda: bool(pages()), 40, "the scheduled drill's failure paged")
    (page,) = pages()
    assert page["incident"]["severity"] == "P2" and page["incident"]["state"] == "escalated"
    assert "drill hourly-too-strict failed" in page["incident"]["why_now"]
    first = result()
    assert first is not None and first["outcome"] == "failed", first
    assert first["injected"] == "sandbox fault crash {'service': 'dlq-manager'}"

    def ran_after(earlier: dict[str, Any]) -> bool:
        latest = result()
        return latest is not None and latest["started"] > earlier["started"]

    wait_for(lambda: ran_after(first), 30, "the drill's second scheduled run")
    second = result()
    assert second is not None and second["outcome"] == "failed", second
    # A page for the second failure would be queued before the third run starts.
    wait_for(lambda: ran_after(second), 30, "the drill's third scheduled run")
    metrics = httpx.get(daemon.url + "/metrics", timeout=5).text
    assert 'watchdog_drills_total{outcome="failed",scenario="hourly-too-strict"}' in metrics
    # Read from the journal at start and every 15 s: a result is there within one read.
    wait_for(lambda: 'watchdog_drill_last_passed{scenario="hourly-too-strict"} 0.0' in
             httpx.get(daemon.url + "/metrics", timeout=5).text, 20, "the drill's result gauge")
    journal = open_journal(str(tmp_path / "journal.db"))
    try:
        incident = journal.find_open("drill/hourly-too-strict")
        assert incident is not None
        drilled = [e for e in journal.timeline(incident.id) if e.kind == "drill"]
        assert len(drilled) >= 2, drilled
        assert len(journal.deliveries(incident.id)) == 1, journal.deliveries(incident.id)
    finally:
        journal.close()
    assert len(pages()) == 1, pages()
