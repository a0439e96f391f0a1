"""Guards on the real daemon: the kill switch, the per-service cooldown and dry-run.

Each test runs its own sandbox and `watchdog run` process; the CLI commands run
as the on-call engineer would type them, against the same journal file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow


def stage_for(tmp_path: Path, **daemon: Any) -> Iterator[Stage]:
    with staged_daemon(tmp_path, **daemon) as stage:
        yield stage


def cli(stage: Stage, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog.cli", *args, "--state", str(stage.folder / "journal.db")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    yield from stage_for(tmp_path)


@pytest.fixture
def long_cooldown(tmp_path: Path) -> Iterator[Stage]:
    policy = songnodes_variant(tmp_path, lambda d: d["guards"].update(cooldown="10m"))
    yield from stage_for(tmp_path, policy=policy)


@pytest.fixture
def dry_run(tmp_path: Path) -> Iterator[Stage]:
    yield from stage_for(tmp_path, extra_args=["--dry-run"])


def test_pause_stops_automatic_actions_and_resume_lifts_it(stage: Stage) -> None:
    paused = cli(stage, "pause")
    assert paused.returncode == 0 and "paused" in paused.stdout
    wait_for(lambda: stage.metric("watchdog_paused") == 1, 10, "the daemon to see the pause")
    incident = stage.inject_and_follow("crash", service="rest-api")
    assert incident["state"] == "escalated"
    assert incident["steps"] == []
    guards = [e["summary"] for e in incident["timeline"] if e["kind"] == "guards"]
    assert guards and "paused" in guards[0]
    assert not stage.stack.service("rest-api")["running"]  # nothing touched it

    assert cli(stage, "resume").returncode == 0
    wait_for(lambda: stage.metric("watchdog_paused") == 0, 10, "the daemon to see the resume")
    stage.stack.control.start("rest-api")  # the human who was paged fixes it
    resolved = stage.follow(set(), ("resolved",))
    assert resolved["id"] == incident["id"]
    assert "every finding cleared" in resolved["timeline"][-1]["summary"]


def test_a_second_crash_within_the_cooldown_pages_instead_of_restarting(
    long_cooldown: Stage,
) -> None:
    stage = long_cooldown
    first = stage.inject_and_follow("crash", service="rest-api")
    assert first["state"] == "resolved"
    second = stage.inject_and_follow("crash", service="rest-api")
    assert second["state"] == "escalated", second["timeline"]
    assert second["steps"] == []
    guards = [e["summary"] for e in second["timeline"] if e["kind"] == "guards"]
    assert guards[0].startswith("rest-api was acted on") and "cooldown is 60 s" in guards[0]
    budget = stage.metric("watchdog_action_budget_remaining")
    assert budget == 19  # one automatic plan ran this hour, of 20


def test_dry_run_journals_the_exact_calls_and_touches_nothing(dry_run: Stage) -> None:
    stage = dry_run
    known = stage.inject("crash", service="dlq-manager")
    incident = stage.follow(known, ("verifying", "failed", "escalated"))
    (step,) = incident["steps"]
    assert step["status"] == "skipped"
    assert step["output"] == (
        "dry run: would call service.restart with {'services': ['dlq-manager'], 'stop_timeout': 10}"
    )
    assert not stage.stack.service("dlq-manager")["running"]
    assert (
        stage.metric(
            "watchdog_actions_total",
            scenario="service_failure",
            action="service.restart",
            outcome="dry_run",
        )
        == 1
    )
