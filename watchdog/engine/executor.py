"""The executor: runs a plan's steps through the action handlers, write-ahead.

Every step is journaled as started before its handler is called and as
succeeded or failed (with its output) after, so a crash at any instant leaves a
journal that says exactly how far the plan got. A step has a timeout; a handler
that raises anything becomes a failed step with the error in words, never a
crashed daemon. In dry-run mode the steps are journaled and printed with their
exact parameters, and nothing is touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from watchdog.actions.base import ActionFailed, ActionOutcome, Handler
from watchdog.metrics import Metrics
from watchdog.model import Plan, Step
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.executor")

# Read-only checks an action can make before its plan is put to a human: impact
# lines for the page, or ActionFailed when the plan cannot work (no backup).
Preflight = Callable[[Step], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the preflights found: lines for the impact assessment, or why the plan is blocked."""

    impact: tuple[str, ...]
    blocked: str | None = None


@dataclass(frozen=True, slots=True)
class PlanRun:
    ok: bool
    reason: str
    steps_run: int
    failed_step: str | None = None
    #: The preflight refused: nothing was changed.
    blocked: str | None = None
    #: What the compensations put back, in words (for the page), and what they could not.
    compensated: tuple[str, ...] = ()
    compensation_failed: tuple[str, ...] = ()


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

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    def has_preflight(self, plan: Plan) -> bool:
        return any(step.action in self._preflights for step in plan.steps)

    async def assess(self, plan: Plan) -> Assessment:
        """Run every step's preflight (read-only); the first refusal blocks the plan."""
        impact: list[str] = []
        for index, step in enumerate(plan.steps):
            preflight = self._preflights.get(step.action)
            if preflight is None:
                continue
            try:
                impact += await asyncio.wait_for(preflight(step), timeout=step.timeout_seconds)
            except ActionFailed as error:
                return Assessment(tuple(impact), f"step {index + 1} '{step.name}': {error}")
            except TimeoutError:
                return Assessment(
                    tuple(impact),
                    f"step {index + 1} '{step.name}': its check did not finish within "
                    f"{step.timeout_seconds:g} s",
                )
        return Assessment(tuple(impact))

    async def run_plan(
        self, incident_id: int, plan: Plan, *, start: int = 0, rung: int = 0
    ) -> PlanRun:
        began = time.monotonic()
        for index in range(start, len(plan.steps)):
            step = plan.steps[index]
            outcome = await self.run_step(incident_id, plan.scenario, index, step)
            if not outcome.ok:
                elapsed = time.monotonic() - began
                self._metrics.rollback_duration.labels(plan.scenario, "failed").observe(elapsed)
                return PlanRun(
                    False,
                    f"step {index + 1} '{step.name}' failed: {outcome.output}",
                    index - start + 1,
                    step.name,
                )
        elapsed = time.monotonic() - began
        self._metrics.rollback_duration.labels(plan.scenario, "succeeded").observe(elapsed)
        verb = "would run" if self._dry_run else "ran"
        return PlanRun(
            True,
            f"{verb} {len(plan.steps) - start} step(s) in {elapsed:.2f} s",
            len(plan.steps) - start,
        )

    async def run_step(
        self, incident_id: int, scenario: str, index: int, step: Step
    ) -> ActionOutcome:
        step_id = self._journal.step_started(incident_id, index=index, step=step, at=self._clock())
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
        outcome = await self._call(step)
        if outcome.data:
            self._journal.add_event(
                incident_id,
                at=self._clock(),
                kind="step_evidence",
                summary=f"what {step.name!r} saw before acting",
                data=outcome.data,
            )
        status = "succeeded" if outcome.ok else "failed"
        self._journal.step_finished(step_id, status=status, at=self._clock(), output=outcome.output)
        self._metrics.actions.labels(scenario, step.action, status).inc()
        log.info("step_" + status, incident=incident_id, step=step.name, output=outcome.output)
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

    async def _call(self, step: Step) -> ActionOutcome:
        handler = self._handlers.get(step.action)
        if handler is None:
            return ActionOutcome(
                False,
                f"no backend for action {step.action!r} in this deployment "
                f"(available: {', '.join(sorted(self._handlers))})",
            )
        try:
            return await asyncio.wait_for(handler(step), timeout=step.timeout_seconds)
        except TimeoutError:
            return ActionOutcome(
                False, f"{step.action} did not finish within {step.timeout_seconds:g} s"
            )
        except ActionFailed as error:
            return ActionOutcome(False, str(error))
        except Exception as error:  # an adapter bug must fail the step, not the daemon
            log.exception("action_crashed", action=step.action)
            return ActionOutcome(False, f"{step.action} raised {type(error).__name__}: {error}")
