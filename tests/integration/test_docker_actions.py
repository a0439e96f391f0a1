"""The Docker orchestrator against a real engine: restart, stop, start, revert.

Each test runs busybox containers labelled as Compose labels them (host network,
127.0.0.1, free ports) under Compose project names of its own, and removes every
container of those projects afterwards, whatever happened. Waits poll the engine
with a deadline; nothing sleeps blindly. Last known good configurations go to a
real SQLite journal, the store the daemon uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.dockerengine import BROKEN, GOOD, Projects, run_service, www_folder
from watchdog.actions.base import ActionFailed
from watchdog.actions.docker import DockerOrchestrator
from watchdog.demo import free_port
from watchdog.store.journal import Journal

PROJECT_LABEL = "com.docker.compose.project"


@pytest.fixture
def projects(docker_client: docker.DockerClient) -> Iterator[Projects]:
    with Projects(docker_client, "wdact") as made:
        yield made


@pytest.fixture
def factory(docker_url: str) -> Callable[[], docker.DockerClient]:
    return lambda: docker.DockerClient(base_url=docker_url, timeout=20)


www = www_folder


def state(client: docker.DockerClient, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = client.api.inspect_container(name)
    return attrs


def health_of(client: docker.DockerClient, name: str) -> str:
    return str((state(client, name)["State"].get("Health") or {}).get("Status", ""))


def wait_health(client: docker.DockerClient, name: str, wanted: str, within: float = 15) -> None:
    deadline = time.monotonic() + within
    while (seen := health_of(client, name)) != wanted:
        assert time.monotonic() < deadline, f"{name} is {seen!r}, not {wanted!r}, after {within} s"
        time.sleep(0.1)


def moment(stamp: str) -> datetime:
    """Docker's RFC 3339 with nanoseconds, to a datetime (microseconds are enough here)."""
    head, _, tail = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(tail + '000000')[:6]}+00:00")


def started_at(client: docker.DockerClient, name: str) -> datetime:
    return moment(state(client, name)["State"]["StartedAt"])


def finished_at(client: docker.DockerClient, name: str) -> datetime:
    return moment(state(client, name)["State"]["FinishedAt"])


@pytest.mark.asyncio
async def test_restart_brings_an_unhealthy_service_back_under_the_same_name(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
) -> None:
    project = projects.new()
    folder = www(tmp_path, "web")
    container = run_service(
        docker_client, project=project, service="web", port=free_port(), www=folder
    )
    wait_health(docker_client, container.name, "healthy")
    (folder / "healthy").unlink()
    wait_health(docker_client, container.name, "unhealthy")
    before = state(docker_client, container.name)

    # The operator's fix lands, and the restart follows at once, as a human would do it.
    (folder / "healthy").write_text("ok\n")
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal)
    text = await orchestrator.restart(["web"], stop_timeout=5)

    assert re.fullmatch(
        rf"restarted web: {container.name} \(image [0-9a-f]{{12}}, "
        r"was running/(un)?healthy, exit=0\)",
        text,
    ), text
    assert orchestrator.inspected[container.name]["Id"] == container.id
    wait_health(docker_client, container.name, "healthy")
    after = state(docker_client, container.name)
    assert after["Id"] == before["Id"]
    assert after["Config"]["Labels"] == before["Config"]["Labels"]
    assert moment(after["State"]["StartedAt"]) > moment(before["State"]["StartedAt"])


@pytest.mark.asyncio
async def test_stop_goes_dependents_first_and_start_dependencies_first(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
) -> None:
    project = projects.new()
    folder = www(tmp_path, "www")
    a = run_service(docker_client, project=project, service="a", port=free_port(), www=folder)
    b = run_service(
        docker_client,
        project=project,
        service="b",
        port=free_port(),
        www=folder,
        depends_on="a:service_started:false",
    )
    c = run_service(
        docker_client,
        project=project,
        service="c",
        port=free_port(),
        www=folder,
        depends_on="a:service_healthy:true",
    )
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal)
    assert await orchestrator.dependency_order(["c", "b", "a"]) == ["a", "c", "b"]
    assert await orchestrator.dependents_of("a") == ["b", "c"]
    assert await orchestrator.dependents_of("b") == []

    stopped = await orchestrator.stop(["a", "b", "c"], stop_timeout=5)
    assert [part.split(":")[0] for part in stopped.split("; ")] == [
        "stopped b",
        "stopped c",
        "stopped a",
    ]
    assert finished_at(docker_client, b.name) < finished_at(docker_client, a.name)
    assert finished_at(docker_client, c.name) < finished_at(docker_client, a.name)
    assert all(not state(docker_client, x.name)["State"]["Running"] for x in (a, b, c))

    started = await orchestrator.start(["c", "b", "a"])
    assert [part.split(":")[0] for part in started.split("; ")] == [
        "started a",
        "started c",
        "started b",
    ]
    assert started_at(docker_client, a.name) < started_at(docker_client, b.name)
    # c waits for a's first healthy check (1 s interval), as Compose's service_healthy does
    assert (
        started_at(docker_client, c.name) - started_at(docker_client, a.name)
    ).total_seconds() > 0.5
    assert all(state(docker_client, x.name)["State"]["Running"] for x in (a, b, c))


@pytest.mark.asyncio
async def test_every_replica_is_restarted_and_nothing_outside_the_project(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
) -> None:
    project, other = projects.new(), projects.new()
    folder = www(tmp_path, "www")
    replicas = [
        run_service(
            docker_client, project=project, service="w", port=free_port(), www=folder, number=n
        )
        for n in (1, 2)
    ]
    stranger = run_service(docker_client, project=other, service="w", port=free_port(), www=folder)
    before = {x.name: started_at(docker_client, x.name) for x in [*replicas, stranger]}
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal)

    text = await orchestrator.restart(["w"], stop_timeout=5)
    assert all(x.name in text for x in replicas) and stranger.name not in text
    for replica in replicas:
        assert started_at(docker_client, replica.name) > before[replica.name]
        assert state(docker_client, replica.name)["State"]["Running"]
    await orchestrator.stop(["w"], stop_timeout=5)
    assert all(not state(docker_client, x.name)["State"]["Running"] for x in replicas)
    await orchestrator.start(["w"])

    stranger_now = state(docker_client, stranger.name)["State"]
    assert stranger_now["Running"] and moment(stranger_now["StartedAt"]) == before[stranger.name]

    with pytest.raises(ActionFailed) as unknown:
        await orchestrator.restart(["w", "nope"], stop_timeout=5)
    assert "'nope'" in str(unknown.value) and "its services: w" in str(unknown.value)


@pytest.mark.asyncio
async def test_a_protected_service_is_refused_and_keeps_running(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
) -> None:
    project = projects.new()
    folder = www(tmp_path, "www")
    db = run_service(docker_client, project=project, service="db", port=free_port(), www=folder)
    web = run_service(docker_client, project=project, service="web", port=free_port(), www=folder)
    assert await DockerOrchestrator(factory, project, snapshots=journal).record_last_good("db")
    before = {x.name: started_at(docker_client, x.name) for x in (db, web)}
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal, protected=["db"])

    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: orchestrator.restart(["web", "db"], stop_timeout=5),
        lambda: orchestrator.stop(["db"], stop_timeout=5),
        lambda: orchestrator.revert("db"),
    ]
    for attempt in attempts:
        with pytest.raises(ActionFailed, match=r"refusing to .* protected service.*'db'"):
            await attempt()

    for container in (db, web):
        now = state(docker_client, container.name)["State"]
        assert now["Running"] and moment(now["StartedAt"]) == before[container.name]


@pytest.mark.asyncio
async def test_revert_recreates_the_last_good_container_and_a_second_revert_does_nothing(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
) -> None:
    project = projects.new()
    folder = www(tmp_path, "web")
    port = free_port()
    good = run_service(docker_client, project=project, service="web", port=port, www=folder)
    wait_health(docker_client, good.name, "healthy")
    good_attrs = state(docker_client, good.name)
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal, health_timeout=15)
    with pytest.raises(ActionFailed, match="no last known good configuration"):
        await orchestrator.revert("web")
    assert await orchestrator.record_last_good("web") is True
    assert await orchestrator.record_last_good("web") is False  # unchanged: nothing new stored

    # A bad deploy: the same name and labels, a new image that crash-loops.
    good.remove(force=True)
    bad = run_service(
        docker_client,
        project=project,
        service="web",
        port=port,
        www=folder,
        image=BROKEN,
        restart="always",  # crash-looping: the engine cannot rename it between restarts
    )
    assert bad.name == good.name and bad.attrs["Image"] != good_attrs["Image"]

    text = await orchestrator.revert("web")
    assert text.startswith(f"reverted web: {bad.name} (image ") and "healthy" in text, text
    now = state(docker_client, good.name)
    assert now["Id"] not in (good_attrs["Id"], bad.id)
    assert now["Image"] == good_attrs["Image"]
    assert now["Config"]["Labels"] == good_attrs["Config"]["Labels"]
    assert now["Config"]["Env"] == good_attrs["Config"]["Env"]
    assert now["Config"]["Cmd"] == good_attrs["Config"]["Cmd"]
    assert now["Config"]["Healthcheck"] == good_attrs["Config"]["Healthcheck"]
    assert now["HostConfig"]["Binds"] == good_attrs["HostConfig"]["Binds"] == [f"{folder}:/www:ro"]
    assert now["HostConfig"]["NetworkMode"] == "host" and now["HostConfig"]["Init"] is True
    assert now["State"]["Health"]["Status"] == "healthy"
    assert [x.name for x in projects.containers(project)] == [good.name]  # the bad one is gone

    again = await orchestrator.revert("web")
    assert "already runs the last known good image" in again, again
    assert state(docker_client, good.name)["Id"] == now["Id"]


@pytest.mark.asyncio
# A crash loop shows as unhealthy or as restarts, whichever Docker reports first.
@pytest.mark.parametrize(
    ("restart", "why"),
    [("no", "stopped"), ("always", "(is crash-looping|reported unhealthy)")],
    ids=["exits", "crash-loops"],
)
async def test_a_revert_that_never_gets_healthy_puts_the_previous_container_back(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
    restart: str,
    why: str,
) -> None:
    project = projects.new()
    folder = www(tmp_path, "web")
    port = free_port()
    declared = run_service(
        docker_client,
        project=project,
        service="web",
        port=port,
        www=folder,
        image=BROKEN,
        restart=restart,
    )
    # a timeout the test would notice: the failure must be seen long before it
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal, health_timeout=30)
    assert await orchestrator.record_last_good("web")  # a "good" record that is not
    declared.remove(force=True)
    current = run_service(docker_client, project=project, service="web", port=port, www=folder)
    wait_health(docker_client, current.name, "healthy")

    began = time.monotonic()
    with pytest.raises(ActionFailed) as failed:
        await orchestrator.revert("web")
    assert time.monotonic() - began < 10
    message = str(failed.value)
    assert message.startswith("revert of web"), message
    assert re.search(f"new {current.name} {why}: ", message), message
    assert f"the previous container was put back as {current.name}" in message, message

    containers = projects.containers(project)
    assert [x.name for x in containers] == [current.name]
    back = state(docker_client, current.name)
    assert back["Id"] == current.id and back["Image"] == current.attrs["Image"]
    assert back["State"]["Running"]
    wait_health(docker_client, current.name, "healthy")


# docker-py's UnixHTTPConnection.connect does not close a socket whose connect()
# fails, so each refused call leaves one for the garbage collector: collected
# below, inside this test, and its ResourceWarning is docker-py's, not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.asyncio
@pytest.mark.parametrize("pinned", [False, True], ids=["auto-version", "pinned-version"])
async def test_an_unreachable_engine_fails_every_call_at_once(
    journal: Journal, tmp_path: Path, pinned: bool
) -> None:
    socket_path = tmp_path / "no-such-docker.sock"

    def factory() -> docker.DockerClient:
        if pinned:  # the client is made without a word to the engine; the ping finds it gone
            return docker.DockerClient(base_url=f"unix://{socket_path}", version="1.41", timeout=5)
        return docker.DockerClient(base_url=f"unix://{socket_path}", timeout=5)

    journal.save_snapshot("docker:last_good:web", [{"name": "x", "image_id": "sha256:1"}], at=1)
    orchestrator = DockerOrchestrator(factory, "p", snapshots=journal)
    began = time.monotonic()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: orchestrator.restart(["web"], stop_timeout=5),
        lambda: orchestrator.stop(["web"], stop_timeout=5),
        lambda: orchestrator.start(["web"]),
        lambda: orchestrator.dependency_order(["web"]),
        lambda: orchestrator.dependents_of("web"),
        lambda: orchestrator.record_last_good("web"),
        lambda: orchestrator.revert("web"),
    ]
    for call in calls:
        with pytest.raises(ActionFailed, match=r"^Docker engine unreachable: ") as failed:
            await call()
        assert failed.value.__cause__ is not None
        del failed
    assert time.monotonic() - began < 3
    gc.collect()


async def eventually(check: Callable[[], bool], within: float, what: str) -> None:
    """Poll without blocking the loop (a revert may be finishing in a task of its own)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_a_revert_survives_its_caller_timing_out_and_a_parked_container_comes_back(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
    tmp_path: Path,
) -> None:
    project = projects.new()
    folder = www(tmp_path, "web")
    port = free_port()
    good = run_service(docker_client, project=project, service="web", port=port, www=folder)
    wait_health(docker_client, good.name, "healthy")
    image = state(docker_client, good.name)["Image"]
    orchestrator = DockerOrchestrator(factory, project, snapshots=journal, health_timeout=15)
    assert await orchestrator.record_last_good("web")

    # A crash right after the revert parked the old container: the name is free.
    good.rename(f"{good.name}-watchdog-prev-1")
    with pytest.raises(ActionFailed, match="no container of service"):
        await orchestrator.restart(["web"], stop_timeout=5)  # a parked one is no replica
    text = await orchestrator.revert("web")
    assert "already runs the last known good image" in text, text
    assert state(docker_client, good.name)["Id"] == good.id

    # The executor's step timeout cancels the caller; the recreate still finishes.
    good.remove(force=True)
    run_service(docker_client, project=project, service="web", port=port, www=folder, image=BROKEN)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(orchestrator.revert("web"), timeout=0.3)

    def settled() -> bool:
        names = [x.name for x in projects.containers(project)]
        return names == [good.name] and health_of(docker_client, good.name) == "healthy"

    await eventually(settled, 15, "the good container alone, healthy, under its name")
    await asyncio.wait_for(orchestrator.drain(), timeout=5)
    assert state(docker_client, good.name)["Image"] == image


@pytest.mark.asyncio
async def test_revert_keeps_networks_aliases_ports_volumes_and_the_rest_of_the_host_config(
    docker_client: docker.DockerClient,
    projects: Projects,
    journal: Journal,
    factory: Callable[[], docker.DockerClient],
) -> None:
    project = projects.new()
    network = docker_client.networks.create(f"{project}_default", driver="bridge", internal=True)
    volume = ""
    try:
        labels = {
            PROJECT_LABEL: project,
            "com.docker.compose.service": "api",
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
        }
        name = f"{project}-api-1"
        good = docker_client.containers.run(
            GOOD,
            ["/bin/sleep", "300"],
            name=name,
            labels=labels,
            detach=True,
            init=True,
            network=network.name,
            networking_config={
                network.name: docker_client.api.create_endpoint_config(aliases=["api", name])
            },
            ports={"8080/tcp": ("127.0.0.1", free_port())},
            mounts=[docker.types.Mount(target="/data", source=None, type="volume")],
            cap_add=["NET_ADMIN"],
            hostname="api-host",
            extra_hosts={"db": "127.0.0.2"},
            mem_limit="64m",
            working_dir="/tmp",
            restart_policy={"Name": "unless-stopped"},
        )
        good.exec_run(["/bin/sh", "-c", "echo kept > /data/file"])
        before = state(docker_client, name)
        (volume,) = [m["Name"] for m in before["Mounts"] if m["Destination"] == "/data"]
        orchestrator = DockerOrchestrator(factory, project, snapshots=journal, health_timeout=15)
        assert await orchestrator.record_last_good("api")
        # Compose's recreate hands the anonymous volume to the new container.
        good.remove(force=True)
        docker_client.containers.run(
            BROKEN,
            name=name,
            labels=labels,
            detach=True,
            network=network.name,
            mounts=[docker.types.Mount(target="/data", source=volume, type="volume")],
        )

        text = await orchestrator.revert("api")
        assert "running for 3 s (no healthcheck)" in text, text
        now = state(docker_client, name)
        aliases = now["NetworkSettings"]["Networks"][network.name]["Aliases"]
        assert {"api", name} <= set(aliases)
        assert now["Image"] == before["Image"]
        for key in ("Cmd", "Hostname", "WorkingDir", "Labels", "Env", "ExposedPorts"):
            assert now["Config"][key] == before["Config"][key], key
        for key in (
            "PortBindings",
            "CapAdd",
            "ExtraHosts",
            "Memory",
            "RestartPolicy",
            "Init",
            "NetworkMode",
        ):
            assert now["HostConfig"][key] == before["HostConfig"][key], key
        assert [m["Name"] for m in now["Mounts"] if m["Destination"] == "/data"] == [volume]
        assert docker_client.containers.get(name).exec_run(["/bin/cat", "/data/file"]) == (
            0,
            b"kept\n",
        )
        assert now["State"]["Running"]
    finally:
        for container in projects.containers(project):
            container.remove(force=True, v=True)
        network.remove()
        if volume:
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.volumes.get(volume).remove()
