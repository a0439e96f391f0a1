"""`watchdog rollback --service NAME [--to-last-good]`: the runbook's rollback script, journaled.

The on-call engineer runs by hand the very plan the daemon would run (restart,
or revert to the last known good image), through the same executor, so every
step is written ahead in the same journal, and then verified against the
same checklist. The engineer's own command is the authorisation; protected
services are still refused by the backend.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable

import httpx

from watchdog.actions.config import ConfigActions
from watchdog.actions.http import HttpActions
from watchdog.actions.registry import build_handlers, build_previews
from watchdog.engine.executor import Executor
from watchdog.engine.runner import backends
from watchdog.metrics import Metrics
from watchdog.model import Plan, Severity
from watchdog.policy.planner import plan_for
from watchdog.policy.schema import DockerSignal, Policy
from watchdog.policy.verify import assess
from watchdog.policy.windows import Windows
from watchdog.probes.base import build_probe
from watchdog.probes.scheduler import observe_all
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal


def scenario_for(policy: Policy, action: str) -> str:
    """The policy's scenario whose plan is that one action (restart, or revert)."""
    for name, scenario in policy.scenarios.items():
        if [step.action for step in scenario.steps] == [action]:
            return name
    raise ValueError(f"the policy has no scenario whose plan is a single {action} step")


async def manual_rollback(
    policy: Policy,
    settings: Settings,
    *,
    service: str,
    to_last_good: bool,
    dry_run: bool,
    out: Callable[[str], None] = print,
) -> int:
    journal = open_journal(settings.state)
    try:
        async with httpx.AsyncClient() as client:
            chosen = backends(settings, client, policy, journal)
            if chosen.orchestrator is None:
                raise ValueError(
                    "WATCHDOG_ORCHESTRATOR is not set: expected docker, docker+unix:///PATH "
                    "or sandbox+http://127.0.0.1:PORT"
                )
            healthy = next(
                (
                    s.name
                    for s in policy.probed_signals()
                    if isinstance(s, DockerSignal) and s.metric == "healthy"
                ),
                "",
            )
            action = "service.revert" if to_last_good else "service.restart"
            operator = getpass.getuser()
            plan = plan_for(
                policy,
                scenario=scenario_for(policy, action),
                severity=Severity.P2,
                subject=service,
                params={"series": service, "health_signal": healthy},
                why=f"manual rollback of {service} by {operator}",
            )
            incident = _open(journal, plan, service, operator)
            out(f"incident {incident}: {plan.title}")
            http = HttpActions(policy, client)
            store = chosen.store
            handlers = build_handlers(
                http=http,
                orchestrator=chosen.orchestrator,
                reverter=chosen.reverter,
                config=ConfigActions(store, journal, http, settings.backup_dir) if store else None,
                protected=policy.stack.protected_services,
            )
            executor = Executor(
                journal,
                handlers,
                Metrics(),
                dry_run=dry_run,
                previews=build_previews(chosen.orchestrator),
            )
            run = await executor.run_plan(incident, plan)
            for step in journal.steps(incident):
                out(f"  {step.status:<9} {step.name}: {step.output}")
            if not run.ok or dry_run:
                state = "escalated" if not run.ok else "resolved"
                journal.set_state(
                    incident, state=state, at=time.time(), reason=run.reason, closed=run.ok
                )
                out(f"{'FAILED' if not run.ok else 'dry run'}: {run.reason}")
                return 0 if run.ok else 1
            journal.set_state(incident, state="verifying", at=time.time(), reason=run.reason)
            verified, summary = await _verify(policy, plan, client, chosen.docker)
            journal.set_state(
                incident,
                state="resolved" if verified else "escalated",
                at=time.time(),
                reason=summary,
                closed=verified,
            )
            out(("verified: " if verified else "NOT verified: ") + summary)
            return 0 if verified else 1
    finally:
        journal.close()


def _open(journal: Journal, plan: Plan, service: str, operator: str) -> int:
    now = time.time()
    incident = journal.open_incident(
        key=f"manual/{service}/{int(now)}",
        severity=Severity.P2,
        scenario=plan.scenario,
        subject=service,
        state="detected",
        reason=plan.reason,
        at=now,
        findings=(),
    )
    journal.save_plan(incident, plan, at=now)
    for state in ("triaged", "executing"):
        journal.set_state(
            incident,
            state=state,
            at=time.time(),
            reason=f"run by hand by {operator}: the command is the authorisation",
        )
    return incident


async def _verify(
    policy: Policy, plan: Plan, client: httpx.AsyncClient, docker: Callable[[], object] | None
) -> tuple[bool, str]:
    """Probe the checklist's signals every second until it holds for verify_for, or times out."""
    names = {check.signal for check in plan.checklist}
    probes = [
        p
        for s in policy.probed_signals()
        if s.name in names and (p := build_probe(s, policy, client, docker_client_factory=docker))
    ]
    windows = Windows()
    started = time.monotonic()
    passing_since: float | None = None
    summary = "no checklist"
    while time.monotonic() - started < plan.verify_timeout_seconds:
        windows.record_all(await observe_all(probes))
        assessment = assess(plan.checklist, windows, time.time(), max_age=30.0)
        summary = assessment.summary
        if assessment.passed:
            passing_since = passing_since if passing_since is not None else time.monotonic()
            if time.monotonic() - passing_since >= plan.verify_for_seconds:
                return True, summary
        else:
            passing_since = None
        await asyncio.sleep(1.0)
    return False, summary
