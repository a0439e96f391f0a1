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


# Preflight, compensation, rungs (issue 12) ----------------------------------------------

STOP = Step(
    "stop the workers", "service.stop", Risk.SAFE, params=(("services", ["worker"]),)
)
RESTORE = Step("restore", "config.restore", Risk.SAFE, params=(("table", "t"),))


@pytest.mark.asyncio
async def test_a_failed_preflight_acts_on_nothing(journal: Journal) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)

    async def no_snapshot(step: Step) -> list[str]:
        raise ActionFailed("no last known good snapshot of t")

    run = await Executor(
        journal,
        {"service.stop": recorder.ok, "config.restore": recorder.ok},
        Metrics(),
        clock=lambda: 10.0,
        preflights={"config.restore": no_snapshot},
    ).run_plan(incident_id, plan_of(STOP, RESTORE))
    assert not run.ok and run.steps_run == 0
    assert run.blocked == "step 2 'restore': no last known good snapshot of t"
    assert "nothing was done" in run.reason
    assert recorder.calls == [] and journal.steps(incident_id) == []
    [event] = [e for e in journal.timeline(incident_id) if e.kind == "preflight"]
    assert "refused, nothing was done" in event.summary


@pytest.mark.asyncio
async def test_a_later_failure_puts_back_what_the_plan_stopped_last_first(
    journal: Journal,
) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    disable = Step(
        "disable acme", "provider.disable", Risk.SAFE,
        params=(("provider", "acme"), ("table", "t")),
    )
    handlers: dict[str, Handler] = {
        "service.stop": recorder.ok,
        "provider.disable": recorder.ok,
        "config.restore": recorder.refuse,
        "service.start": recorder.ok,
        "provider.enable": recorder.ok,
    }
    run = await executor(journal, handlers).run_plan(
        incident_id, plan_of(STOP, disable, RESTORE, Step("never", "service.start", Risk.SAFE))
    )
    assert not run.ok and run.failed_step == "restore" and run.blocked is None
    assert run.compensated == (
        "enable acme again from the before-images of 'disable acme' (the plan did not finish)",
        "start worker again (stopped by 'stop the workers'; the plan did not finish)",
    )
    assert run.compensation_failed == ()
    assert "put back: enable acme again" in run.reason
    steps = journal.steps(incident_id)
    assert [(s.index, s.action, s.status) for s in steps] == [
        (0, "service.stop", "succeeded"),
        (1, "provider.disable", "succeeded"),
        (2, "config.restore", "failed"),
        (4, "provider.enable", "succeeded"),
        (5, "service.start", "succeeded"),
    ]
    assert all(s.name.startswith("compensate: ") for s in steps[3:])
    assert steps[3].params == {"incident": incident_id}


@pytest.mark.asyncio
async def test_a_compensation_that_fails_is_reported_as_not_put_back(journal: Journal) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    handlers: dict[str, Handler] = {
        "service.stop": recorder.ok,
        "config.restore": recorder.refuse,
        "service.start": recorder.refuse,
    }
    run = await executor(journal, handlers).run_plan(incident_id, plan_of(STOP, RESTORE))
    assert run.compensated == ()
    [failed] = run.compensation_failed
    assert failed.startswith("start worker again") and "the service said no" in failed
    assert "could NOT put back: start worker again" in run.reason


@pytest.mark.asyncio
async def test_a_resume_compensates_the_steps_its_rung_finished_before(journal: Journal) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    first = journal.step_started(incident_id, index=0, step=STOP, at=1.0, rung=1)
    journal.step_finished(first, status="succeeded", at=2.0, output="stopped")
    handlers: dict[str, Handler] = {
        "config.restore": recorder.refuse, "service.start": recorder.ok,
    }
    run = await executor(journal, handlers).run_plan(
        incident_id, plan_of(STOP, RESTORE), start=1, rung=1
    )
    assert run.compensated and run.compensated[0].startswith("start worker again")
    assert {s.rung for s in journal.steps(incident_id)} == {1}


@pytest.mark.asyncio
async def test_step_rows_carry_their_rung_and_attempts_stay_unique(journal: Journal) -> None:
    incident_id = incident(journal)
    recorder = Recorder(journal, incident_id)
    handlers: dict[str, Handler] = {"bad": recorder.refuse, "wait": recorder.ok}
    ex = executor(journal, handlers)
    await ex.run_plan(incident_id, plan_of(Step("restart", "bad", Risk.SAFE)), rung=0)
    await ex.run_plan(
        incident_id,
        plan_of(Step("revert", "wait", Risk.SAFE), Step("page", "wait", Risk.SAFE)),
        rung=1,
    )
    assert [(s.rung, s.index, s.attempt, s.name) for s in journal.steps(incident_id)] == [
        (0, 0, 1, "restart"),
        (1, 0, 2, "revert"),
        (1, 1, 1, "page"),
    ]
    started = [e for e in journal.timeline(incident_id) if e.kind == "step_started"]
    assert [e.data["rung"] for e in started] == [0, 1, 1]
    with pytest.raises(ValueError, match="rung -1"):
        journal.step_started(incident_id, index=5, step=STOP, at=1.0, rung=-1)
