"""`watchdog rollback --full` and `watchdog emergency-stop`: scenario 5 run by a person.

The policy's by-hand-only scenario (`full_system_rollback`) is the runbook's
prepared plan: forensic snapshot, emergency stop in tiers, disk and memory
checks, rebuild from the last known good records, database restore, health
check. The daemon never runs it (policy validation keeps every rule away from
it); these commands do, through the very path the other rollbacks by hand take
(`manual._run_by_hand`: one journaled incident under MANUAL_KEY_PREFIX, the
executor, the checklist), and only after three things:

1. the whole plan is printed with its impact (the pre-rollback assessment the
   daemon makes, from the Compose graph, the backup's age, past runs);
2. the operator types the stack's name (`stack.name`): a wrong or missing answer
   (no TTY, stdin at its end) does nothing at all;
3. before each risky or destructive step the operator types that step's number;
   anything else fails the step there, journaled, and nothing after it runs.

`--yes` answers the questions of a plan whose steps are all safe; for any other
plan it is refused with exit 2 naming the first step it would have confirmed,
since the point of the questions is that a person reads them. `--dry-run` prints
the plan and what each step would do, and asks nothing.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from watchdog.actions.base import ActionOutcome
from watchdog.commands.manual import _run_by_hand
from watchdog.commands.runner import backends, probes_for
from watchdog.engine.executor import Executor
from watchdog.engine.impactfacts import FactSource, assess
from watchdog.model import Plan, Risk, Severity, Step
from watchdog.policy.planner import plan_for
from watchdog.policy.schema import Policy
from watchdog.policy.windows import Windows
from watchdog.probes.scheduler import observe_all
from watchdog.settings import Settings
from watchdog.store import render
from watchdog.store.journal import open_journal

STOP = "system.emergency_stop"
#: The steps `watchdog emergency-stop` keeps of the prepared plan.
STOP_ONLY = ("system.snapshot", STOP)
DATABASE_ACTIONS = ("database.dump", "database.restore", "database.integrity", "migrations.down")

Ask = Callable[[str], "str | None"]


def ask_terminal(prompt: str) -> str | None:
    """One answer from stdin; None when there is none (no TTY, stdin closed)."""
    try:
        return input(prompt)
    except EOFError:
        return None


def prepared_scenario(policy: Policy) -> str:
    """The policy's by-hand-only scenario with an emergency stop: the prepared plan."""
    for name, spec in policy.scenarios.items():
        if spec.by_hand_only and any(step.action == STOP for step in spec.steps):
            return name
    raise ValueError(
        "the policy has no by_hand_only scenario with a system.emergency_stop step "
        "(policies/songnodes.yaml: full_system_rollback)"
    )


def shape(plan: Plan, *, stop_only: bool, force: bool, database: bool) -> tuple[Plan, list[str]]:
    """The plan this command runs, and what was left out of the policy's and why."""
    notes: list[str] = []
    steps = list(plan.steps)
    if stop_only:
        steps = [s for s in steps if s.action in STOP_ONLY]
        notes.append("emergency stop only: the snapshot and the stop, no rebuild or restore; "
                     "nothing to verify after it (the services are meant to be down)")
        plan = replace(plan, title=plan.title.split(":")[0].replace(
            "Full system rollback", "Emergency stop") + ": forensic snapshot, then stop",
            checklist=(), verify_for_seconds=0.0)
    elif not database and any(s.action in DATABASE_ACTIONS for s in steps):
        steps = [s for s in steps if s.action not in DATABASE_ACTIONS]
        notes.append("no database configured (WATCHDOG_DATABASE_URL): its steps are left out")
    if force:
        steps = [
            replace(s, params=tuple({**s.param_map(), "force": True}.items()))
            if s.action == STOP else s
            for s in steps
        ]
        notes.append("--force: the stateful services are stopped too, last")
    return replace(plan, steps=tuple(steps)), notes


def gated_executor(ask: Ask, plan_length: int) -> Callable[..., Executor]:
    """An Executor that asks for each risky or destructive step's number before it."""

    class Gated(Executor):
        async def run_step(
            self, incident_id: int, scenario: str, index: int, step: Step, *, rung: int = 0
        ) -> ActionOutcome:
            if self.dry_run or step.risk is Risk.SAFE or index >= plan_length:
                return await super().run_step(incident_id, scenario, index, step, rung=rung)
            number = str(index + 1)
            prompt = (
                f"step {number} '{step.name}' is {step.risk.value}: type {number} to run it "
                "(anything else stops the plan here): "
            )
            answer = await asyncio.to_thread(ask, prompt)
            if answer is not None and answer.strip() == number:
                return await super().run_step(incident_id, scenario, index, step, rung=rung)
            why = f"not confirmed by the operator (answer {answer!r}): not run"
            journal = self._journal
            row = journal.step_started(incident_id, index=index, step=step, at=time.time(),
                                       rung=rung)
            journal.step_finished(row, status="failed", at=time.time(), output=why)
            return ActionOutcome(False, why)

    def make(*args: Any, **kwargs: Any) -> Executor:
        return Gated(*args, **kwargs)

    return make


async def full_rollback(
    policy: Policy,
    settings: Settings,
    *,
    stop_only: bool,
    force: bool,
    yes: bool,
    dry_run: bool,
    ask: Ask = ask_terminal,
    out: Callable[[str], None] = print,
) -> int:
    """Print the plan, get the typed confirmations, run it by hand; the exit code."""
    stack = policy.stack.name
    journal = open_journal(settings.state)
    try:
        async with httpx.AsyncClient() as client:
            chosen = backends(settings, client, policy, journal)
            if chosen.docker is None:
                raise ValueError(
                    "WATCHDOG_ORCHESTRATOR is not docker: the full rollback acts on a Docker "
                    "engine (docker or docker+unix:///PATH)"
                )
            operator = getpass.getuser()
            made = plan_for(
                policy,
                scenario=prepared_scenario(policy),
                severity=Severity.P0,
                subject=stack,
                params={"series": stack},
                why=f"{'emergency stop' if stop_only else 'full system rollback'} of {stack} "
                f"by hand by {operator}",
            )
            plan, notes = shape(
                made, stop_only=stop_only, force=force, database=bool(chosen.database_url)
            )
            reader = getattr(chosen.orchestrator, "dependency_map", None)
            windows = Windows()  # the pre-rollback checklist's readings, read once now
            spec = policy.scenarios[plan.scenario]
            named = {p.signal for p in spec.prechecks if p.signal}
            windows.record_all(await observe_all(probes_for(policy, client, chosen, named)))
            source = FactSource(policy, journal, windows, time.time, graph_reader=reader)
            await source.refresh()
            plan, _, _ = assess(source, plan, Severity.P0, None)
            for line in [*render.plan_lines(plan), *(f"  note: {n}" for n in notes)]:
                out(line)
            gated = [(i, s) for i, s in enumerate(plan.steps, 1) if s.risk is not Risk.SAFE]
            if yes and gated:
                index, step = gated[0]
                out(f"REFUSED: --yes cannot confirm step {index} '{step.name}' "
                    f"({step.risk.value}): run without --yes and answer the questions")
                return 2
            if not (dry_run or yes):
                answer = await asyncio.to_thread(
                    ask, f"type the stack's name ({stack}) to run this plan: "
                )
                if answer is None or answer.strip() != stack:
                    out(f"not confirmed (answer {answer!r}, expected {stack!r}): nothing was done")
                    return 1
            return await _run_by_hand(
                policy, settings, journal, client, chosen, plan, stack, dry_run=dry_run,
                out=out, severity=Severity.P0,
                make_executor=gated_executor(ask, len(plan.steps)),
            )
    finally:
        journal.close()
