"""A revert cut off half-way (the daemon SIGKILLed) is finished, not stacked, by the next one.

`service.revert` stops the running replica, parks it as `<name>-watchdog-prev-<time>`,
creates the replacement from the last known good image and waits for it to be ready.
Killed while waiting, it leaves two containers: the replacement under the service's
name and the container that ran before the revert, parked. The daemon runs the step
again on restart (it is idempotent); found by the crash matrix (bench/crash_matrix.py
docker_ladder, kill at the write another thread made during the revert), the second
try used to revert the replacement in turn: parked it too, and on failure put the
replacement back, so the service was left on neither what ran before nor a healthy
good image, with the first parked container beside it and named by no page.

What the second try must do instead: finish the first. A replacement that gets ready
is kept and the parked container removed; one that does not is removed and the
container that ran before the revert comes back under its name, started, as after any
failed revert.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.dockerengine import BROKEN, Projects, run_service, www_folder
from tests.integration.test_docker_actions import state, wait_health
from watchdog.actions.base import ActionFailed
from watchdog.actions.docker import DockerOrchestrator
from watchdog.demo import free_port
from watchdog.store.journal import Journal


@pytest.fixture
def projects(docker_client: docker.DockerClient) -> Iterator[Projects]:
    with Projects(docker_client, "wdrev") as made:
        yield made


@pytest.mark.asyncio
async def test_a_cut_off_revert_whose_replacement_gets_ready_is_finished(
    docker_client: docker.DockerClient,
    docker_url: str,
    projects: Projects,
    journal: Journal,
    tmp_path: Path,
) -> None:
    folder = www_folder(tmp_path, "web")
    orchestrator, name, _, replacement = await _prepared(
        docker_client, docker_url, projects, journal, folder
    )

    text = await orchestrator.revert("web")

    assert "finished the revert a restart cut off" in text, text
    assert [c.name for c in projects.containers(orchestrator.project)] == [name]
    assert state(docker_client, name)["Id"] == replacement
    wait_health(docker_client, name, "healthy")


@pytest.mark.asyncio
async def test_a_cut_off_revert_whose_replacement_fails_puts_back_what_ran_before_it(
    docker_client: docker.DockerClient,
    docker_url: str,
    projects: Projects,
    journal: Journal,
    tmp_path: Path,
) -> None:
    folder = www_folder(tmp_path, "web")
    orchestrator, name, broken, _ = await _prepared(
        docker_client, docker_url, projects, journal, folder
    )
    (folder / "healthy").unlink()  # the replacement will never be healthy

    with pytest.raises(ActionFailed) as failed:
        await orchestrator.revert("web")

    message = str(failed.value)
    assert "finishing the revert a restart cut off" in message, message
    assert f"the previous container was put back as {name}" in message, message
    assert [c.name for c in projects.containers(orchestrator.project)] == [name]
    back = state(docker_client, name)
    assert back["Id"] == broken, "the container that ran before the revert, not the replacement"
    assert back["State"]["Running"] or back["State"]["Restarting"], back["State"]


async def _prepared(
    client: docker.DockerClient, url: str, projects: Projects, journal: Journal, folder: Path
) -> tuple[DockerOrchestrator, str, str, str]:
    """The good configuration recorded first (the revert's target), then the cut-off revert."""
    project = projects.new()
    port = free_port()
    good = run_service(client, project=project, service="web", port=port, www=folder)
    wait_health(client, good.name, "healthy")
    orchestrator = DockerOrchestrator(
        lambda: docker.DockerClient(base_url=url, timeout=20), project, snapshots=journal,
        health_timeout=15,
    )
    assert await orchestrator.record_last_good("web")
    name = good.name
    good.remove(force=True)
    broken = run_service(client, project=project, service="web", port=port, www=folder,
                         image=BROKEN, restart="always")
    # What the cut-off revert did before the kill: stop, park, create and start anew.
    broken.stop(timeout=1)
    broken.rename(f"{name}-watchdog-prev-1")
    replacement = run_service(client, project=project, service="web", port=port, www=folder)
    return orchestrator, name, broken.id, replacement.id
