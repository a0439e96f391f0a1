"""Scenario 4 against the sandbox, through the real action table: preflight, then compensation.

Issue 12's first report: a corrupted metadata_enrichment_config opened scenario
4; the plan stopped enrichment-worker and enrichment-backlog-worker, backed up
the table, then failed at config.restore ("no last known good snapshot") and
escalated with the workers still stopped. Here the same plan runs through the
handlers and preflights `watchdog run` builds (`action_table`) against real
sandbox processes.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from watchdog.commands.runner import action_table, backends
from watchdog.demo import POLICY, daemon_environment
from watchdog.engine.executor import Executor
from watchdog.metrics import Metrics
from watchdog.model import Plan, Severity
from watchdog.policy.planner import plan_for
from watchdog.policyfile import load_policy
from watchdog.sandbox.stack import SandboxStack
from watchdog.settings import Settings
from watchdog.store.journal import Journal

TABLE = "metadata_enrichment_config"
WORKERS = (
    "enrichment-worker-1",
    "enrichment-worker-2",
    "enrichment-worker-3",
    "enrichment-backlog-worker",
)


def wired(
    stack: SandboxStack,
    folder: Path,
    journal: Journal,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Executor, Plan]:
    """The executor `watchdog run` would build against this sandbox, and scenario 4's plan."""
    env = daemon_environment(stack, folder, "127.0.0.1:0", 1.0)
    for name, value in env.items():
        if name.startswith("WATCHDOG_"):
            monkeypatch.setenv(name, value)
    policy = load_policy(POLICY, environ=env)
    settings = Settings()
    table = action_table(policy, settings, journal, client, backends(settings, client, policy))
    executor = Executor(
        journal, table.handlers, Metrics(), previews=table.previews, preflights=table.preflights
    )
    plan = plan_for(
        policy,
        scenario="configuration_corruption",
        severity=Severity.P2,
        subject=TABLE,
        params={},
        why="invalid configuration rows",
    )
    return executor, plan


def running(stack: SandboxStack) -> dict[str, bool]:
    services = stack.control.services()
    return {name: bool(services[name]["running"]) for name in WORKERS}


def incident(journal: Journal) -> int:
    return journal.open_incident(
        key="configuration/metadata_enrichment_config",
        severity=Severity.P2,
        scenario="configuration_corruption",
        subject=TABLE,
        state="executing",
        reason="invalid configuration rows",
        at=1.0,
        findings=(),
    )


@pytest.mark.asyncio
async def test_with_no_last_known_good_the_plan_stops_nothing(
    sandbox_stack: SandboxStack,
    journal: Journal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with httpx.AsyncClient() as client:
        await _no_snapshot(sandbox_stack, journal, client, tmp_path, monkeypatch)


async def _no_snapshot(
    sandbox_stack: SandboxStack,
    journal: Journal,
    client: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor, plan = wired(sandbox_stack, tmp_path, journal, client, monkeypatch)
    sandbox_stack.inject("corrupt_config")
    incident_id = incident(journal)

    run = await executor.run_plan(incident_id, plan)

    assert not run.ok and run.steps_run == 0
    assert run.blocked is not None
    assert run.blocked.startswith("step 3 'restore the last known good configuration': ")
    assert f"no last known good snapshot of {TABLE}" in run.blocked
    assert journal.steps(incident_id) == []
    assert running(sandbox_stack) == dict.fromkeys(WORKERS, True)


@pytest.mark.asyncio
async def test_a_later_failure_starts_the_stopped_workers_again_and_says_so(
    sandbox_stack: SandboxStack,
    journal: Journal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with httpx.AsyncClient() as client:
        await _compensated(sandbox_stack, journal, client, tmp_path, monkeypatch)


async def _compensated(
    sandbox_stack: SandboxStack,
    journal: Journal,
    client: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor, plan = wired(sandbox_stack, tmp_path, journal, client, monkeypatch)
    good = (await client.get(f"{sandbox_stack.control_url}/db/tables/{TABLE}")).json()["rows"]
    journal.save_snapshot(TABLE, list(good), at=1.0)
    sandbox_stack.inject("corrupt_config")
    # What no preflight can know: the service the plan reloads dies after the checks pass.
    sandbox_stack.control.stop("metadata-enrichment")
    incident_id = incident(journal)

    run = await executor.run_plan(incident_id, plan)

    assert not run.ok and run.blocked is None
    assert run.failed_step == "reload the enrichment configuration"
    assert run.compensated == (
        "start enrichment-worker, enrichment-backlog-worker again "
        "(stopped by 'stop the enrichment workers'; the plan did not finish)",
    )
    assert run.compensation_failed == ()
    assert "put back: start enrichment-worker, enrichment-backlog-worker again" in run.reason
    assert running(sandbox_stack) == dict.fromkeys(WORKERS, True)
    steps = journal.steps(incident_id)
    assert [(s.action, s.status) for s in steps] == [
        ("service.stop", "succeeded"),
        ("config.backup", "succeeded"),
        ("config.restore", "succeeded"),
        ("config.reload", "failed"),
        ("service.start", "succeeded"),
    ]
    assert steps[-1].name.startswith("compensate: start enrichment-worker")
