"""The Docker probe and the event stream against a real engine and real containers.

Each test gets its own Compose project name, runs busybox containers labelled the
way Compose labels them (host network, 127.0.0.1, free ports), and removes every
container of its projects afterwards, whatever happened. Waits poll the probe
with a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import httpx
import pytest
from structlog.testing import capture_logs

from tests.dockerengine import BROKEN, Projects, run_service, www_folder
from watchdog.demo import free_port
from watchdog.model import Observation
from watchdog.policy.schema import DockerSignal, Policy, StackSpec
from watchdog.probes.base import build_probe
from watchdog.probes.docker import DockerProbe
from watchdog.probes.docker_events import DockerEvents

Metric = Literal["running", "healthy", "restarts", "crash_loop", "oom_killed", "engine_up"]

# The SDK's unix transport leaves the socket of a failed connect unclosed
# (docker/transport/unixconn.py), so an engine that is not there (our tests of it,
# and tests/dockerengine.py's first look for one) warns when that socket is freed. Only
# never-connected unix sockets are let through: a leaked connection still fails the test.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:unclosed <socket\.socket fd=\d+, family=1, type=1, proto=0>$:ResourceWarning"
)


@pytest.fixture(autouse=True)
def _free_failed_sockets() -> Iterator[None]:
    """Collect the SDK's unclosed sockets (held in exception cycles) while the filter holds."""
    yield
    gc.collect()


@pytest.fixture
def projects(docker_client: docker.DockerClient) -> Iterator[Projects]:
    with Projects(docker_client, "wdtest") as made:
        yield made


@pytest.fixture
def factory(docker_url: str) -> Callable[[], docker.DockerClient]:
    return lambda: docker.DockerClient(base_url=docker_url, timeout=5)


www = www_folder


def signal(
    metric: Metric, project: str, *, services: list[str] | None = None, **extra: Any
) -> DockerSignal:
    return DockerSignal(
        name=f"docker_{metric}",
        kind="docker",
        metric=metric,
        project=project,
        services=services or [],
        timeout=extra.pop("timeout", 5.0),
        **extra,
    )


def by_series(observations: list[Observation]) -> dict[str, Observation]:
    return {o.series: o for o in observations}


async def until(
    observe: Callable[[], Awaitable[list[Observation]]],
    holds: Callable[[dict[str, Observation]], bool],
    *,
    within: float,
) -> dict[str, Observation]:
    """Observe every 0.2 s until `holds`; fail with the last observations after `within` s."""
    deadline = time.monotonic() + within
    while True:
        seen = by_series(await observe())
        if holds(seen):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s; last seen: {seen}")
        await asyncio.sleep(0.2)


def value(seen: dict[str, Observation], series: str) -> float | None:
    return seen[series].value if series in seen else None


@pytest.mark.asyncio
async def test_healthy_then_unhealthy_when_the_healthcheck_fails(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    project = projects.new()
    folder = www(tmp_path, "web")
    run_service(docker_client, project=project, service="web", port=free_port(), www=folder)
    running = DockerProbe(signal("running", project), factory)
    healthy = DockerProbe(signal("healthy", project), factory)

    seen = await until(healthy.observe, lambda s: value(s, "web") == 1.0, within=10)
    assert seen["web"].error is None and "healthy" in seen["web"].detail
    assert value(by_series(await running.observe()), "web") == 1.0

    (folder / "healthy").unlink()
    seen = await until(healthy.observe, lambda s: value(s, "web") == 0.0, within=8)
    assert f"{project}-web-1 running unhealthy" in seen["web"].detail
    assert value(by_series(await running.observe()), "web") == 1.0


@pytest.mark.asyncio
async def test_an_exited_container_is_not_running_and_shows_its_exit_code(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    project = projects.new()
    run_service(
        docker_client,
        project=project,
        service="api",
        port=free_port(),
        www=www(tmp_path, "api"),
        image=BROKEN,
    )
    running = DockerProbe(signal("running", project), factory)
    seen = await until(running.observe, lambda s: "exited" in s["api"].detail, within=10)
    assert seen["api"].value == 0.0
    assert f"{project}-api-1 exited exit=1 restarts=0" in seen["api"].detail
    healthy = by_series(await DockerProbe(signal("healthy", project), factory).observe())
    assert healthy["api"].value == 0.0


@pytest.mark.asyncio
async def test_a_crash_loop_grows_restarts_and_counts_in_the_window(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    project = projects.new()
    restarts = DockerProbe(signal("restarts", project), factory)
    crash_loop = DockerProbe(signal("crash_loop", project, window=60.0), factory)
    run_service(
        docker_client,
        project=project,
        service="worker",
        port=free_port(),
        www=www(tmp_path, "worker"),
        image=BROKEN,
        restart="always",
    )
    first = value(by_series(await restarts.observe()), "worker") or 0.0
    deadline = time.monotonic() + 12
    while True:
        grown = by_series(await restarts.observe())["worker"]
        loop_count = by_series(await crash_loop.observe())["worker"]
        if (grown.value or 0.0) >= 2 and (loop_count.value or 0.0) >= 2:
            break
        assert time.monotonic() < deadline, f"no crash loop seen: {grown}, {loop_count}"
        await asyncio.sleep(0.2)
    assert (grown.value or 0.0) > first
    assert "restarts/deaths in 60 s" in loop_count.detail
    assert f"{project}-worker-1" in loop_count.detail  # running or restarting: it loops


@pytest.mark.asyncio
async def test_a_probe_started_mid_loop_counts_the_deaths_it_did_not_watch(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    """A daemon restarted while a service crash-loops (the crash matrix's docker_ladder,
    killed during a revert): its first reading used to count 0, the loop read as quiet,
    and the escalated incident about it settled as "recovered". The engine's event log
    has the deaths from before the probe started; the first reading counts them."""
    project = projects.new()
    run_service(
        docker_client,
        project=project,
        service="worker",
        port=free_port(),
        www=www(tmp_path, "worker"),
        image=BROKEN,
        restart="always",
    )
    deadline = time.monotonic() + 15
    while state_restarts(docker_client, f"{project}-worker-1") < 3:
        assert time.monotonic() < deadline, "the worker never restarted 3 times"
        await asyncio.sleep(0.2)
    fresh = DockerProbe(signal("crash_loop", project, window=60.0), factory)
    first = by_series(await fresh.observe())["worker"]
    assert (first.value or 0.0) >= 3, first


def state_restarts(client: docker.DockerClient, name: str) -> int:
    return int(client.api.inspect_container(name).get("RestartCount") or 0)


@pytest.mark.asyncio
async def test_one_unhealthy_replica_makes_the_service_unhealthy(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    project = projects.new()
    for number, healthy in ((1, True), (2, False)):
        run_service(
            docker_client,
            project=project,
            service="worker",
            port=free_port(),
            www=www(tmp_path, f"w{number}", healthy=healthy),
            number=number,
        )
    probe = DockerProbe(signal("healthy", project), factory)
    seen = await until(probe.observe, lambda s: "unhealthy" in s["worker"].detail, within=10)
    assert seen["worker"].value == 0.0
    assert seen["worker"].detail.startswith(f"{project}-worker-2 running unhealthy")
    running = by_series(await DockerProbe(signal("running", project), factory).observe())
    assert running["worker"].value == 1.0


@pytest.mark.asyncio
async def test_a_listed_service_without_container_and_other_projects_and_one_offs(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    ours, theirs = projects.new(), projects.new()
    run_service(
        docker_client, project=ours, service="web", port=free_port(), www=www(tmp_path, "ours")
    )
    run_service(
        docker_client,
        project=theirs,
        service="web",
        port=free_port(),
        www=www(tmp_path, "theirs"),
        image=BROKEN,
    )
    run_service(
        docker_client, project=theirs, service="db", port=free_port(), www=www(tmp_path, "db")
    )
    docker_client.containers.create(  # `docker compose run web`: not a replica
        BROKEN,
        name=f"{ours}-web-run-1",
        labels={
            "com.docker.compose.project": ours,
            "com.docker.compose.service": "web",
            "com.docker.compose.oneoff": "True",
        },
        network_mode="host",
    )
    listed = DockerProbe(signal("running", ours, services=["web", "ghost"]), factory)
    every = DockerProbe(signal("running", ours), factory)

    seen = by_series(await listed.observe())
    assert set(seen) == {"web"}  # a target with no container is a warning, not "down"
    assert seen["web"].value == 1.0 and seen["web"].detail.startswith(f"{ours}-web-1 running")
    assert "run-1" not in seen["web"].detail and theirs not in seen["web"].detail
    assert set(by_series(await every.observe())) == {"web"}  # not "db" of the other project
    docker_client.containers.get(f"{ours}-web-1").remove(force=True)
    gone = by_series(await listed.observe())  # seen before, then removed: down
    assert (gone["web"].value, gone["web"].detail, gone["web"].error) == (
        0.0,
        "no container",
        None,
    )


@pytest.mark.asyncio
async def test_engine_up_on_a_live_engine(factory: Any) -> None:
    observations = await DockerProbe(signal("engine_up", "any"), factory).observe()
    assert [(o.series, o.value, o.error) for o in observations] == [("", 1.0, None)]


@pytest.mark.asyncio
async def test_build_probe_uses_the_factory_or_docker_host(
    docker_url: str, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = signal("engine_up", "any")
    policy = Policy(version=1, stack=StackSpec(name="test"), authority={}, signals=[up])
    async with httpx.AsyncClient() as client:
        given = build_probe(up, policy, client, docker_client_factory=factory)
        monkeypatch.setenv("DOCKER_HOST", docker_url)
        from_env = build_probe(up, policy, client)
    assert isinstance(given, DockerProbe) and isinstance(from_env, DockerProbe)
    for probe in (given, from_env):
        assert [(o.value, o.error) for o in await probe.observe()] == [(1.0, None)]


@pytest.mark.asyncio
async def test_an_unreachable_engine_is_data_and_answers_promptly(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path}/no-such-dir/docker.sock"

    def nowhere() -> docker.DockerClient:
        return docker.DockerClient(base_url=missing, timeout=1)

    started = time.monotonic()
    up = await DockerProbe(signal("engine_up", "p", timeout=2.0), nowhere).observe()
    assert len(up) == 1 and up[0].value == 0.0
    assert up[0].error is not None and up[0].error.startswith("Docker engine unreachable: ")
    for metric in ("running", "healthy", "restarts", "crash_loop", "oom_killed"):
        probe = DockerProbe(signal(metric, "p", services=["web", "api"], timeout=2.0), nowhere)
        observations = await probe.observe()
        assert [(o.series, o.value) for o in observations] == [("web", None), ("api", None)]
        assert all(
            o.error and o.error.startswith("Docker engine unreachable: ") for o in observations
        )
    assert time.monotonic() - started < 3.0


@pytest.mark.asyncio
async def test_an_engine_that_hangs_is_cut_off_at_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "hang.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(8)  # connections wait in the backlog, and nothing ever answers

        def hanging() -> docker.DockerClient:
            return docker.DockerClient(base_url=f"unix://{path}", timeout=30)

        started = time.monotonic()
        observations = await DockerProbe(signal("running", "p", timeout=0.5), hanging).observe()
        assert time.monotonic() - started < 1.0
        assert observations[0].value is None
        assert observations[0].error == "Docker engine unreachable: no answer within 0.5 s"
        waiting, _ = server.accept()
        waiting.close()  # the abandoned worker thread sees the hang-up and ends
        await asyncio.get_running_loop().shutdown_default_executor()


# ---- the event stream ----------------------------------------------------------------


async def next_matching(
    queue: asyncio.Queue[list[Observation]],
    holds: Callable[[dict[str, Observation]], bool],
    *,
    within: float,
) -> dict[str, Observation]:
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen = by_series(await asyncio.wait_for(queue.get(), left))
        except TimeoutError:
            break
        if holds(seen):
            return seen
    pytest.fail(f"no matching observation on the queue within {within} s")


async def wait_for(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_a_kill_is_seen_through_the_event_stream_within_3_s(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    project = projects.new()
    probe = DockerProbe(signal("running", project, interval=300.0), factory)
    queue: asyncio.Queue[list[Observation]] = asyncio.Queue()
    events = DockerEvents([probe], queue, asyncio.get_running_loop(), factory, project)
    events.start()
    try:
        await wait_for(lambda: events.following, within=5)
        container = run_service(
            docker_client, project=project, service="web", port=free_port(), www=www(tmp_path, "w")
        )
        await next_matching(queue, lambda s: value(s, "web") == 1.0, within=5)
        before = events.events_seen
        assert before > 0  # the start came through the stream: nobody else observes

        killed = time.monotonic()
        container.kill()
        seen = await next_matching(queue, lambda s: value(s, "web") == 0.0, within=3)
        assert time.monotonic() - killed < 3.0
        assert events.events_seen > before
        assert f"{project}-web-1 exited exit=137" in seen["web"].detail
    finally:
        stopping = time.monotonic()
        events.stop()
        assert time.monotonic() - stopping < 2.5
    assert not events.following


@pytest.mark.asyncio
async def test_events_retry_quietly_while_the_engine_is_gone_then_catch_up(
    docker_url: str, tmp_path: Path
) -> None:
    attempts: list[float] = []

    def flaky() -> docker.DockerClient:
        """No engine for the first two attempts (a missing socket), then the real one."""
        attempts.append(time.monotonic())
        where = docker_url if len(attempts) > 2 else f"unix://{tmp_path}/gone/docker.sock"
        return docker.DockerClient(base_url=where, timeout=5)

    probe = DockerProbe(signal("engine_up", "p"), flaky)
    queue: asyncio.Queue[list[Observation]] = asyncio.Queue()
    events = DockerEvents([probe], queue, asyncio.get_running_loop(), flaky, "p")
    with capture_logs() as logs:
        events.start()
        try:
            # after the outage it catches up with one run of every probe, as events were missed
            caught_up = await next_matching(queue, lambda s: value(s, "") == 1.0, within=6)
            assert events.following and caught_up[""].error is None
        finally:
            stopping = time.monotonic()
            events.stop()
            assert time.monotonic() - stopping < 2.5
    assert attempts[2] - attempts[0] >= 1.8  # a second between attempts, not a busy loop
    lost = [entry for entry in logs if entry["event"] == "docker_events_lost"]
    assert len(lost) == 1 and lost[0]["log_level"] == "warning"  # once per outage
    assert "DockerException" in lost[0]["error"]
    assert (events.events_seen, events.following) == (0, False)
