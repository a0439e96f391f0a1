"""A timed-out step's work is waited for, or cancelled, before the next step on its service.

`asyncio.wait_for` cancels an await, not the thread under it: a Docker stop
that outlives its step goes on in its worker thread. These tests run such work
for real (a blocking call in a thread; a real container that ignores SIGTERM)
and check that the next step on the same service waits for it, or cancels it,
or refuses to race it, and that the journal says which.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.dockerengine import GOOD, Projects
from tests.integration.test_docker_actions import moment
from tests.integration.test_executor import incident, plan_of
from watchdog.actions.base import ActionOutcome, Handler, services_param
from watchdog.actions.docker import DockerOrchestrator
from watchdog.actions.threads import run_blocking
from watchdog.engine.executor import Executor
from watchdog.metrics import Metrics
from watchdog.model import Risk, Step
from watchdog.store.journal import Journal, open_journal


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = open_journal(str(tmp_path / "journal.db"))
    yield opened
    opened.close()


def on(service: str, name: str, action: str, timeout: float = 30.0) -> Step:
    return Step(name, action, Risk.SAFE, params=(("services", [service]),),
                timeout_seconds=timeout)


class BlockingRestart:
    """A restart whose blocking call (in a worker thread) ends only when released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.thread_ended = threading.Event()
        self.later_saw_thread_ended: list[bool] = []

    async def restart(self, step: Step) -> ActionOutcome:
        def body() -> None:
            self.release.wait(30)
            self.thread_ended.set()

        await run_blocking("restart dlq-manager", body)
        return ActionOutcome(True, "restarted")

    async def start(self, step: Step) -> ActionOutcome:
        self.later_saw_thread_ended.append(self.thread_ended.is_set())
        return ActionOutcome(True, "started")


def inflight_events(journal: Journal, incident_id: int) -> list[str]:
    return [e.summary for e in journal.timeline(incident_id) if e.kind == "inflight"]


@pytest.mark.asyncio
async def test_the_next_step_on_the_service_waits_for_the_timed_out_thread(
    journal: Journal,
) -> None:
    incident_id = incident(journal)
    slow = BlockingRestart()
    handlers: dict[str, Handler] = {"service.restart": slow.restart, "service.start": slow.start}
    executor = Executor(journal, handlers, Metrics())
    run = await executor.run_plan(
        incident_id, plan_of(on("dlq-manager", "restart", "service.restart", timeout=0.5))
    )
    assert not run.ok and "did not finish within 0.5 s" in run.reason
    assert "its work on dlq-manager goes on" in run.reason
    assert not slow.thread_ended.is_set()  # the thread outlived its step

    asyncio.get_running_loop().call_later(0.1, slow.release.set)
    run = await executor.run_plan(
        incident_id, plan_of(on("dlq-manager", "start again", "service.start")), rung=1
    )
    assert run.ok
    assert slow.later_saw_thread_ended == [True]
    [waited] = [s for s in inflight_events(journal, incident_id) if s.startswith("waited")]
    assert waited.endswith("for the timed-out 'restart' of dlq-manager to end")
    later = journal.steps(incident_id)[-1]
    assert later.rung == 1 and later.output.startswith("waited ")


@pytest.mark.asyncio
async def test_a_thread_still_running_after_its_grace_refuses_the_next_step(
    journal: Journal,
) -> None:
    incident_id = incident(journal)
    slow = BlockingRestart()
    handlers: dict[str, Handler] = {"service.restart": slow.restart, "service.start": slow.start}
    executor = Executor(journal, handlers, Metrics())
    try:
        await executor.run_plan(
            incident_id, plan_of(on("dlq-manager", "restart", "service.restart", timeout=0.2))
        )
        run = await executor.run_plan(
            incident_id, plan_of(on("dlq-manager", "start again", "service.start"))
        )
    finally:
        slow.release.set()
    assert not run.ok and slow.later_saw_thread_ended == []
    assert "the timed-out 'restart' of dlq-manager is still running after its grace" in run.reason
    assert "restart dlq-manager in a worker thread; not touching dlq-manager" in run.reason


@pytest.mark.asyncio
async def test_async_work_past_its_grace_is_cancelled_and_other_services_do_not_wait(
    journal: Journal,
) -> None:
    incident_id = incident(journal)
    calls: list[str] = []

    async def hang(step: Step) -> ActionOutcome:
        await asyncio.sleep(60)
        return ActionOutcome(True, "never")

    async def start(step: Step) -> ActionOutcome:
        calls.append(",".join(services_param(step)))
        return ActionOutcome(True, "started")

    executor = Executor(journal, {"service.restart": hang, "service.start": start}, Metrics())
    await executor.run_plan(
        incident_id, plan_of(on("dlq-manager", "restart", "service.restart", timeout=0.2))
    )
    other = await executor.run_plan(incident_id, plan_of(on("rest-api", "s", "service.start")))
    assert other.ok and "waited" not in other.reason and calls == ["rest-api"]
    run = await executor.run_plan(incident_id, plan_of(on("dlq-manager", "s", "service.start")))
    assert run.ok and calls == ["rest-api", "dlq-manager"]
    said = inflight_events(journal, incident_id)
    assert any(s.startswith("cancelled the timed-out 'restart' of dlq-manager") for s in said) \
        or "the timed-out 'restart' of dlq-manager was cancelled" in said


# A real Docker stop that outlives its step ---------------------------------------------


@pytest.fixture
def projects(docker_client: docker.DockerClient) -> Iterator[Projects]:
    with Projects(docker_client, "wdinfl") as made:
        yield made


def stubborn(client: docker.DockerClient, project: str, service: str) -> str:
    """A container, labelled as Compose labels it, whose process ignores SIGTERM."""
    container = client.containers.run(
        GOOD,
        command=["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
        name=f"{project}-{service}-1",
        labels={
            "com.docker.compose.project": project,
            "com.docker.compose.service": service,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
        },
        network_mode="none",
        detach=True,
    )
    return str(container.name)


@pytest.mark.asyncio
async def test_a_start_after_a_timed_out_docker_stop_waits_and_the_container_ends_running(
    journal: Journal,
    docker_client: docker.DockerClient,
    docker_url: str,
    projects: Projects,
) -> None:
    project = projects.new()
    name = stubborn(docker_client, project, "worker")
    factory: Callable[[], docker.DockerClient] = lambda: docker.DockerClient(  # noqa: E731
        base_url=docker_url, timeout=30
    )
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal)

    async def stop(step: Step) -> ActionOutcome:
        seconds = float(step.param_map()["stop_timeout"])
        return ActionOutcome(True, await orchestrator.stop(["worker"], stop_timeout=seconds))

    async def start(step: Step) -> ActionOutcome:
        return ActionOutcome(True, await orchestrator.start(["worker"]))

    incident_id = incident(journal)
    executor = Executor(journal, {"service.stop": stop, "service.start": start}, Metrics())
    # docker stop -t 4 on a process that ignores SIGTERM takes 4 s; the step allows 3 s.
    slow_stop = Step(
        "stop the worker", "service.stop", Risk.SAFE,
        params=(("services", ["worker"]), ("stop_timeout", 4)), timeout_seconds=3,
    )
    first = await executor.run_plan(incident_id, plan_of(slow_stop))
    assert not first.ok and "did not finish within 3 s" in first.reason
    assert docker_client.api.inspect_container(name)["State"]["Running"]  # still stopping

    then = await executor.run_plan(
        incident_id, plan_of(on("worker", "start the worker", "service.start")), rung=1
    )
    assert then.ok, then.reason
    # The stop had ended before the start was sent (not raced by it), so the container
    # stopped once and runs again, and no work on it is left going on.
    after = docker_client.api.inspect_container(name)["State"]
    assert after["Running"]
    assert not after["FinishedAt"].startswith("0001-"), "the start did not wait for the stop"
    assert moment(after["StartedAt"]) > moment(after["FinishedAt"])
    assert executor.inflight.running_on(["worker"]) == []
    [waited] = [s for s in inflight_events(journal, incident_id) if s.startswith("waited")]
    assert waited.endswith("for the timed-out 'stop the worker' of worker to end")
