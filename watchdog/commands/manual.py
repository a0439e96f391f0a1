"""`watchdog rollback`: the runbook's rollback scripts, run by hand through the journal.

The on-call engineer runs by hand the very plan the daemon would run (restart,
or revert to the last known good image; or scenario 2's database restore and
down migrations), through the same executor, so every step is written ahead in
the same journal, and then verified against the same checklist. The engineer's
own command is the authorisation; protected services are still refused by the
backend, and a database plan still refuses a missing or stale backup.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from watchdog.commands.runner import Backends, action_table, backends, probes_for
from watchdog.engine.executor import Executor
from watchdog.metrics import Metrics
from watchdog.model import Plan, Severity
from watchdog.policy.followups import followups_owed
from watchdog.policy.moves import MANUAL_KEY_PREFIX
from watchdog.policy.planner import plan_for
from watchdog.policy.rules import Evaluator
from watchdog.policy.schema import DerivedSignal, Policy
from watchdog.policy.verify import assess
from watchdog.policy.windows import Windows
from watchdog.probes.scheduler import observe_all
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal
from watchdog.store.records import MoveRecord

DATABASE_RESTORE = "database.restore"


def scenario_for(policy: Policy, action: str, *, alone: bool = True) -> str:
    """The policy's scenario whose plan is that one action (or, not alone, contains it)."""
    for name, scenario in policy.scenarios.items():
        actions = [step.action for step in scenario.steps]
        if actions == [action] or (not alone and action in actions):
            return name
    shape = "a single" if alone else "a"
    raise ValueError(f"the policy has no scenario whose plan has {shape} {action} step")


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
            healthy = next(iter(policy.docker_health_signals()), "")
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
            return await _run_by_hand(
                policy, settings, journal, client, chosen, plan, service, dry_run=dry_run, out=out
            )
    finally:
        journal.close()


async def manual_database_rollback(
    policy: Policy,
    settings: Settings,
    *,
    backup: str | None,
    target_version: str | None,
    dry_run: bool,
    out: Callable[[str], None] = print,
) -> int:
    """Scenario 2 by hand: the policy's database plan, with the engineer's backup and target."""
    journal = open_journal(settings.state)
    try:
        async with httpx.AsyncClient() as client:
            chosen = backends(settings, client, policy, journal)
            if not chosen.database_url:
                raise ValueError(
                    "WATCHDOG_DATABASE_URL is not set: expected "
                    "postgresql://user@host:port/db (the password from PGPASSWORD or the URL)"
                )
            operator = getpass.getuser()
            plan = plan_for(
                policy,
                scenario=scenario_for(policy, DATABASE_RESTORE, alone=False),
                severity=Severity.P1,
                subject="database",
                params={"series": "database"},
                why=f"manual database rollback by {operator}",
            )
            overrides = {
                k: v for k, v in (("backup", backup), ("target_version", target_version)) if v
            }
            plan = replace(
                plan,
                steps=tuple(
                    replace(step, params=tuple({**step.param_map(), **overrides}.items()))
                    if step.action in (DATABASE_RESTORE, "migrations.down")
                    else step
                    for step in plan.steps
                ),
            )
            return await _run_by_hand(
                policy, settings, journal, client, chosen, plan, "database",
                dry_run=dry_run, out=out,
            )
    finally:
        journal.close()


async def _run_by_hand(
    policy: Policy,
    settings: Settings,
    journal: Journal,
    client: httpx.AsyncClient,
    chosen: Backends,
    plan: Plan,
    subject: str,
    *,
    dry_run: bool,
    out: Callable[[str], None],
    severity: Severity = Severity.P2,
    make_executor: Callable[..., Executor] = Executor,
) -> int:
    """Preflight, journal, run and verify one plan, printing each step as it ends.

    `make_executor` builds the executor (Executor's arguments): `watchdog rollback
    --full` passes one that asks the operator before each risky step."""
    operator = getpass.getuser()
    table = action_table(policy, settings, journal, client, chosen)
    executor = make_executor(
        journal,
        table.handlers,
        Metrics(),
        dry_run=dry_run,
        previews=table.previews,
        preflights=table.preflights,
    )
    assessment = await executor.assess(plan)
    plan = replace(plan, impact=(*plan.impact, *assessment.impact))
    incident = _open(journal, plan, subject, operator, severity)
    out(f"incident {incident}: {plan.title}")
    for line in plan.impact:
        out(f"  impact: {line}")
    if assessment.blocked is not None:
        reason = f"the plan cannot run: {assessment.blocked}"
        journal.set_state(incident, state="escalated", at=time.time(), reason=reason)
        out(f"REFUSED: {reason}")
        return 1
    run = await executor.run_plan(incident, plan)
    for step in journal.steps(incident):
        out(f"  {step.status:<9} {step.name}: {step.output}")
    if not run.ok or dry_run:
        state = "escalated" if not run.ok else "resolved"
        journal.set_state(incident, state=state, at=time.time(), reason=run.reason, closed=run.ok)
        out(f"{'FAILED' if not run.ok else 'dry run'}: {run.reason}")
        return 0 if run.ok else 1
    journal.set_state(incident, state="verifying", at=time.time(), reason=run.reason)
    verified, summary = await _verify(policy, plan, client, chosen)
    ended = time.time()
    # A verified rollback by hand owes the runbook's follow-ups like the daemon's own,
    # written with the move that resolves it.
    owed = followups_owed(
        final_state="resolved",
        step_statuses=[s.status for s in journal.steps(incident)],
        items=policy.followups,
        closed_at=ended,
    )
    journal.commit_move(
        incident,
        MoveRecord(
            at=ended,
            states=(("resolved" if verified else "escalated", summary),),
            closed=verified,
            followups=owed if verified else (),
        ),
    )
    out(("verified: " if verified else "NOT verified: ") + summary)
    return 0 if verified else 1


def _open(
    journal: Journal, plan: Plan, service: str, operator: str, severity: Severity = Severity.P2
) -> int:
    """Open the incident, then its plan and `executing` in one move (never half-opened).

    The key starts with `MANUAL_KEY_PREFIX`: a daemon that finds this plan
    interrupted asks for a fresh approval rather than finishing it on a command
    given to another process.
    """
    now = time.time()
    incident = journal.open_incident(
        key=f"{MANUAL_KEY_PREFIX}{service}/{int(now * 1000)}",
        severity=severity,
        scenario=plan.scenario,
        subject=service,
        state="detected",
        reason=plan.reason,
        at=now,
        findings=(),
    )
    why = f"run by hand by {operator}: the command is the authorisation"
    journal.commit_move(
        incident,
        MoveRecord(at=time.time(), states=(("triaged", why), ("executing", why)), plan=plan),
    )
    return incident


async def _verify(
    policy: Policy, plan: Plan, client: httpx.AsyncClient, chosen: Backends
) -> tuple[bool, str]:
    """Probe the checklist's signals every second until it holds for verify_for, or times out."""
    names = {check.signal for check in plan.checklist}
    names |= {
        member
        for s in policy.signals
        if isinstance(s, DerivedSignal) and s.name in names
        for member in s.of
    }
    evaluator = Evaluator(policy)
    probes = probes_for(policy, client, chosen, names)
    windows = Windows()
    started = time.monotonic()
    passing_since: float | None = None
    summary = "no checklist"
    while time.monotonic() - started < plan.verify_timeout_seconds:
        windows.record_all(await observe_all(probes))
        evaluator.derive(windows, time.time())
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
