"""The executor: runs a plan's steps through the action handlers, write-ahead.

Every step is journaled as started before its handler is called and as
succeeded or failed (with its output) after, so a crash at any instant leaves a
journal that says exactly how far the plan got. A step has a timeout; a handler
that raises anything becomes a failed step with the error in words, never a
crashed daemon. In dry-run mode the steps are journaled and printed with their
exact parameters, and nothing is touched.

Three habits keep a plan from making the outage worse:
- preflight: before the first step acts, every check a later step can make in
  advance runs (a snapshot to restore, a backup, the containers and tables); a
  refusal acts on nothing;
- compensation: when a step fails, the steps already done that took something
  down are put back, last first (`watchdog.policy.compensation`), journaled as
  steps named "compensate: ...";
- a timed-out step's work is not forgotten (`watchdog.engine.inflight`): a later
  step on the same service waits for it, or cancels it, and the journal says which.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from watchdog.actions.base import ActionFailed, ActionOutcome, Handler, services_param
from watchdog.actions.threads import BlockingCall, track_blocking_calls
from watchdog.engine.inflight import InFlight, StillRunning
from watchdog.metrics import Metrics
from watchdog.model import Plan, Step
from watchdog.policy.compensation import compensations
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.executor")

# Read-only checks an action can make before its plan acts or is put to a human:
# impact lines for the page, or ActionFailed when the plan cannot work (no backup).
Preflight = Callable[[Step], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the preflights found: lines for the impact assessment, or why the plan is blocked."""

    impact: tuple[str, ...]
    blocked: str | None = None


@dataclass(frozen=True, slots=True)
class PlanRun:
    """How a plan's run ended, in words for the journal and the page.

    `blocked`: the preflight refused and nothing ran. `compensated`: what was
    put back after a failed step; `compensation_failed`: what could not be put
    back (a human must, and the page must say so).
    """

    ok: bool
    reason: str
    steps_run: int
    failed_step: str | None = None
    blocked: str | None = None
    compensated: tuple[str, ...] = ()
    compensation_failed: tuple[str, ...] = ()


def step_targets(step: Step) -> tuple[str, ...]:
    """The services a step touches: what timed-out work on them must not overlap."""
    params = step.param_map()
    named = services_param(step)
    if "service" in params:
        named.append(str(params["service"]))
    return tuple(dict.fromkeys(named))


class Executor:
    def __init__(
        self,
        journal: Journal,
        handlers: Mapping[str, Handler],
        metrics: Metrics,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        previews: Mapping[str, Handler] | None = None,
        preflights: Mapping[str, Preflight] | None = None,
    ) -> None:
        self._journal = journal
        self._handlers = handlers
        self._preflights = preflights or {}
        self._metrics = metrics
        self._dry_run = dry_run
        self._clock = clock
        self._previews = previews or {}
        self.inflight = InFlight()

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    def has_preflight(self, plan: Plan) -> bool:
        return any(step.action in self._preflights for step in plan.steps)

    async def preflight(self, plan: Plan, *, start: int = 0) -> Assessment:
        """Run the preflight of every step from `start` (read-only); the first refusal blocks.

        A check that raises something other than `ActionFailed` (a bug of
        ours) blocks too: acting on a plan nobody could check is the risk
        the preflight exists to avoid.
        """
        impact: list[str] = []
        for index in range(start, len(plan.steps)):
            step = plan.steps[index]
            check = self._preflights.get(step.action)
            if check is None:
                continue
            where = f"step {index + 1} '{step.name}'"
            try:
                impact += await asyncio.wait_for(check(step), timeout=step.timeout_seconds)
            except ActionFailed as error:
                return Assessment(tuple(impact), f"{where}: {error}")
            except TimeoutError:
                return Assessment(
                    tuple(impact),
                    f"{where}: its check did not finish within {step.timeout_seconds:g} s",
                )
            except Exception as error:  # a bug in a check must refuse the plan, not crash
                log.exception("preflight_crashed", action=step.action)
                return Assessment(
                    tuple(impact), f"{where}: its check failed: {type(error).__name__}: {error}"
                )
        return Assessment(tuple(impact))

    async def assess(self, plan: Plan) -> Assessment:
        """The preflight of the whole plan, before it is put to a human."""
        return await self.preflight(plan)

    async def run_plan(
        self, incident_id: int, plan: Plan, *, start: int = 0, rung: int = 0
    ) -> PlanRun:
        """Preflight the steps from `start`, run them, and put back what a failure left down.

        `rung` is the ladder rung the plan belongs to; every step row carries
        it. A resume (`start` > 0) checks only the remaining steps, and counts
        the steps this rung already finished as done for compensation.
        """
        began = time.monotonic()
        if self.has_preflight(replace(plan, steps=plan.steps[start:])):
            checked = await self.preflight(plan, start=start)
            self._journal.add_event(
                incident_id,
                at=self._clock(),
                kind="preflight",
                summary=(
                    f"refused, nothing was done: {checked.blocked}"
                    if checked.blocked is not None
                    else "passed: " + ("; ".join(checked.impact) or "every check")
                ),
                data={"impact": list(checked.impact), "blocked": checked.blocked, "rung": rung},
            )
            if checked.blocked is not None:
                log.warning("plan_blocked", incident=incident_id, reason=checked.blocked)
                return PlanRun(
                    False,
                    f"the preflight refused the plan, nothing was done: {checked.blocked}",
                    0,
                    blocked=checked.blocked,
                )
        done = self._done_before(incident_id, plan, start, rung)
        for index in range(start, len(plan.steps)):
            step = plan.steps[index]
            outcome = await self.run_step(incident_id, plan.scenario, index, step, rung=rung)
            if not outcome.ok:
                put_back, not_back = await self._compensate(incident_id, plan, done, rung)
                elapsed = time.monotonic() - began
                self._metrics.rollback_duration.labels(plan.scenario, "failed").observe(elapsed)
                reason = f"step {index + 1} '{step.name}' failed: {outcome.output}"
                if put_back:
                    reason += "; put back: " + "; ".join(put_back)
                if not_back:
                    reason += "; could NOT put back: " + "; ".join(not_back)
                return PlanRun(
                    False,
                    reason,
                    index - start + 1,
                    step.name,
                    compensated=tuple(put_back),
                    compensation_failed=tuple(not_back),
                )
            done.append(step)
        elapsed = time.monotonic() - began
        self._metrics.rollback_duration.labels(plan.scenario, "succeeded").observe(elapsed)
        verb = "would run" if self._dry_run else "ran"
        return PlanRun(
            True,
            f"{verb} {len(plan.steps) - start} step(s) in {elapsed:.2f} s",
            len(plan.steps) - start,
        )

    def _done_before(self, incident_id: int, plan: Plan, start: int, rung: int) -> list[Step]:
        """The steps of this rung that succeeded before a resume at `start`, in plan order."""
        if start == 0:
            return []
        finished = {
            record.index
            for record in self._journal.steps(incident_id)
            if record.rung == rung and record.status == "succeeded" and record.index < start
        }
        return [plan.steps[i] for i in sorted(finished)]

    async def _compensate(
        self, incident_id: int, plan: Plan, done: list[Step], rung: int
    ) -> tuple[list[str], list[str]]:
        """Run the undos of `done`, last first, each journaled as a step after the plan's own."""
        put_back: list[str] = []
        not_back: list[str] = []
        for offset, undo in enumerate(compensations(done, incident_id)):
            index = len(plan.steps) + offset
            outcome = await self.run_step(incident_id, plan.scenario, index, undo, rung=rung)
            words = undo.name.removeprefix("compensate: ")
            if outcome.ok:
                put_back.append(words)
            else:
                not_back.append(f"{words}: {outcome.output}")
        return put_back, not_back

    async def run_step(
        self, incident_id: int, scenario: str, index: int, step: Step, *, rung: int = 0
    ) -> ActionOutcome:
        step_id = self._journal.step_started(
            incident_id, index=index, step=step, at=self._clock(), rung=rung
        )
        log.info(
            "step_started",
            incident=incident_id,
            step=step.name,
            action=step.action,
            params=step.param_map(),
            dry_run=self._dry_run,
        )
        if self._dry_run:
            outcome = await self._preview(step)
            self._journal.step_finished(
                step_id, status="skipped", at=self._clock(), output=outcome.output
            )
            self._metrics.actions.labels(scenario, step.action, "dry_run").inc()
            return outcome
        outcome = await self._settle_then_call(incident_id, step)
        if outcome.data:
            self._journal.add_event(
                incident_id,
                at=self._clock(),
                kind="step_evidence",
                summary=f"what {step.name!r} saw before acting: {evidence_words(outcome.data)}",
                data=outcome.data,
            )
        status = "succeeded" if outcome.ok else "failed"
        self._journal.step_finished(step_id, status=status, at=self._clock(), output=outcome.output)
        self._metrics.actions.labels(scenario, step.action, status).inc()
        log.info("step_" + status, incident=incident_id, step=step.name, output=outcome.output)
        return outcome

    async def _settle_then_call(self, incident_id: int, step: Step) -> ActionOutcome:
        """First end any timed-out work on the step's services, saying how; then run it."""
        targets = step_targets(step)
        try:
            notes = await self.inflight.settle(targets)
        except StillRunning as error:
            return ActionOutcome(False, str(error))
        for note in notes:
            self._journal.add_event(
                incident_id, at=self._clock(), kind="inflight", summary=note,
                data={"step": step.name, "services": list(targets)},
            )
            log.info("inflight_settled", incident=incident_id, step=step.name, what=note)
        outcome = await self._call(incident_id, step, targets)
        if notes:
            outcome = replace(outcome, output="; ".join(notes) + "; then " + outcome.output)
        return outcome

    async def _preview(self, step: Step) -> ActionOutcome:
        """What the step would do: the backend's exact calls where it can say, else the step."""
        generic = ActionOutcome(True, f"dry run: would call {step.action} with {step.param_map()}")
        preview = self._previews.get(step.action)
        if preview is None:
            return generic
        try:
            return await asyncio.wait_for(preview(step), timeout=step.timeout_seconds)
        except (ActionFailed, TimeoutError) as error:
            return ActionOutcome(
                True, f"{generic.output} (the backend could not say more: {error})"
            )

    async def _call(self, incident_id: int, step: Step, targets: tuple[str, ...]) -> ActionOutcome:
        """The handler, bounded by the step's timeout; timed-out work on services is tracked.

        Work that touches no service is cancelled at the timeout, as before.
        Work on services is left to end (a thread cannot be interrupted anyway)
        and registered in `inflight` with a grace of the step's timeout: the
        next step on those services waits for it or cancels it.
        """
        handler = self._handlers.get(step.action)
        if handler is None:
            return ActionOutcome(
                False,
                f"no backend for action {step.action!r} in this deployment "
                f"(available: {', '.join(sorted(self._handlers))})",
            )
        calls: list[BlockingCall] = []
        task = asyncio.create_task(_guarded(handler, step, calls), name=f"step {step.name}")
        try:
            finished, _ = await asyncio.wait({task}, timeout=step.timeout_seconds)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in finished:
            return task.result()
        late = f"{step.action} did not finish within {step.timeout_seconds:g} s"
        if not targets:
            task.cancel()
            return ActionOutcome(False, late)
        work = self.inflight.add(
            step=step.name,
            action=step.action,
            targets=targets,
            task=task,
            calls=calls,
            grace=step.timeout_seconds,
        )
        task.add_done_callback(lambda done: self._late_end(incident_id, work.what(), done))
        return ActionOutcome(
            False,
            f"{late}; its work on {', '.join(targets)} goes on: anything else on "
            f"{'it' if len(targets) == 1 else 'them'} first waits for it to end, at most "
            f"{step.timeout_seconds:g} s more, then cancels it",
        )

    def _late_end(self, incident_id: int, what: str, task: asyncio.Task[ActionOutcome]) -> None:
        """Journal how timed-out work finally ended: its outcome is evidence too."""
        if task.cancelled():
            summary = f"{what} was cancelled"
        else:
            outcome = task.result()
            summary = f"{what} ended late, {'ok' if outcome.ok else 'failed'}: {outcome.output}"
        try:
            self._journal.add_event(incident_id, at=self._clock(), kind="inflight", summary=summary)
        except Exception:  # a closed journal at shutdown must not raise in a callback
            log.exception("inflight_journal_failed", what=what)
        log.info("inflight_ended", incident=incident_id, what=summary)


async def _guarded(handler: Handler, step: Step, calls: list[BlockingCall]) -> ActionOutcome:
    """The handler with its blocking calls tracked and every error turned into an outcome."""
    track_blocking_calls(calls)
    try:
        return await handler(step)
    except ActionFailed as error:
        return ActionOutcome(False, str(error))
    except Exception as error:  # an adapter bug must fail the step, not the daemon
        log.exception("action_crashed", action=step.action)
        return ActionOutcome(False, f"{step.action} raised {type(error).__name__}: {error}")


def evidence_words(data: Mapping[str, Any], limit: int = 3) -> str:
    """What a step kept, in a few words for the timeline (the whole of it is in the
    event's data, the report and the API): "logs of dlq-manager (100 lines); dependents: none"."""
    said = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            names = ", ".join(str(k) for k in list(value)[:limit])
            more = f" and {len(value) - limit} more" if len(value) > limit else ""
            said.append(f"{key} of {names}{more}" if value else f"{key}: none")
        elif isinstance(value, list | tuple):
            said.append(f"{key}: {len(value)} item{'' if len(value) == 1 else 's'}")
        else:
            text = str(value)
            said.append(f"{key}: {text if len(text) <= 60 else text[:59] + '…'}")
    return "; ".join(said) or "nothing"
