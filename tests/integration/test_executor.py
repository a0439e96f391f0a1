"""The executor over a real SQLite journal: write-ahead, timeouts, failures, dry-run, logs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from watchdog.actions.base import ActionFailed, ActionOutcome, Handler
from watchdog.engine.executor import Executor
from watchdog.metrics import Metrics
from watchdog.model import AuthMode, Authorization, Plan, Risk, Severity, Step
from watchdog.store.journal import Journal, open_journal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = open_journal(str(tmp_path / "journal.db"))
    yield journal
    journal.close()


def plan_of(*steps: Step) -> Plan:
    return Plan(
        scenario="service_failure",
        title="t",
        steps=steps,
        checklist=(),
        verify_for_seconds=1,
        verify_timeout_seconds=2,
        authorization=Authorization(AuthMode.AUTO, "auto"),
        reason="test",
    )


def incident(journal: Journal) -> int:
    return journal.open_incident(
        key="k",
        severity=Severity.P2,
        scenario="service_failure",
        subject="s",
        state="executing",
        reason="r",
        at=1.0,
        findings=(),
    )


class Recorder:
    """A handler that records its calls, and checks the journal said 'started' first."""

    def __init__(self, journal: Journal, incident_id: int) -> None:
        self.journal = journal
        self.incident_id = incident_id
        self.calls: list[str] = []

    async def ok(self, step: Step) -> ActionOutcome:
        started = [s for s in self.journal.steps(self.incident_id) if s.status == "started"]
        assert [s.name for s in started] == [step.name], "the step was not journaled first"
        self.calls.append(step.name)
        return ActionOutcome(True, f"did {step.name}")

    async def refuse(self, step: Step) -> ActionOutcome:
        self.calls.append(step.name)
        raise ActionFailed("the service said no: 503 {'detail': 'maintenance'}")

    async def hang(self, step: Step) -> ActionOutcome:
        self.calls.append(step.name)
        await asyncio.sleep(60)
        return ActionOutcome(True, "never")

    async def crash(self, step: Step) -> ActionOutcome:
        self.calls.append(step.name)
        raise KeyError("a bug in an adapter")


def executor(journal: Journal, handlers: dict[str, Handler], dry_run: bool = False) -> Executor:
    return Executor(journal, handlers, Metrics(), dry_run=dry_run, clock=lambda: 10.0)


@pytest.mark.asyncio
async def test_steps_run_in_order_each_journaled_before_it_runs(journal: Journal) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    run_plan = executor(journal, {"wait": recorder.ok}).run_plan
    with capture_logs() as logs:
        run = await run_plan(
            incident_id,
            plan_of(Step("first", "wait", Risk.SAFE), Step("second", "wait", Risk.SAFE)),
        )
    assert run.ok and recorder.calls == ["first", "second"]
    assert [(s.name, s.status, s.output) for s in journal.steps(incident_id)] == [
        ("first", "succeeded", "did first"),
        ("second", "succeeded", "did second"),
    ]
    events = [entry["event"] for entry in logs]
    assert events == ["step_started", "step_succeeded", "step_started", "step_succeeded"]


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        ("refuse", "the service said no: 503"),
        ("hang", "did not finish within 0.2 s"),
        ("crash", "raised KeyError"),
    ],
)
@pytest.mark.asyncio
async def test_a_failing_step_stops_the_plan_with_the_reason(
    journal: Journal, handler: str, words: str
) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    handlers: dict[str, Handler] = {"bad": getattr(recorder, handler), "wait": recorder.ok}
    run = await executor(journal, handlers).run_plan(
        incident_id,
        plan_of(
            Step("bad step", "bad", Risk.SAFE, timeout_seconds=0.2),
            Step("never reached", "wait", Risk.SAFE),
        ),
    )
    assert not run.ok and run.failed_step == "bad step"
    assert words in run.reason
    (step,) = journal.steps(incident_id)
    assert step.status == "failed" and words in step.output
    assert recorder.calls == ["bad step"]


@pytest.mark.asyncio
async def test_an_action_without_a_backend_fails_naming_it(journal: Journal) -> None:
    incident_id = incident(journal)
    run = await executor(journal, {}).run_plan(
        incident_id, plan_of(Step("restore", "database.restore", Risk.RISKY))
    )
    assert not run.ok
    assert "no backend for action 'database.restore' in this deployment" in run.reason


@pytest.mark.asyncio
async def test_dry_run_journals_and_calls_nothing(journal: Journal) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    step = Step("restart", "service.restart", Risk.SAFE, params=(("services", ["rest-api"]),))
    run = await executor(journal, {"service.restart": recorder.ok}, dry_run=True).run_plan(
        incident_id, plan_of(step)
    )
    assert run.ok and recorder.calls == []
    (record,) = journal.steps(incident_id)
    assert record.status == "skipped"
    assert record.output == "dry run: would call service.restart with {'services': ['rest-api']}"
