"""policies/compose-generic.yaml, unedited, guards a stack by its labels alone (issue 18, point 5).

A labelled Compose project of busybox services on the suite's one engine: `web`;
`db`, running an image tagged `watchdog-test/postgres:16` (stateful by its image name);
`tool`, labelled `watchdog.enable=false`. `watchdog run` gets the generic policy file
as it is in the repository (no `targets:`), its clock compressed tenfold. Then:

- `watchdog init --compose-project` prints a policy that `watchdog validate` accepts,
  with `db` protected by name and `tool` said to be opted out;
- web's health fails (Docker's healthcheck) → restarted, resolved;
- tool's health fails, then db's → tool never read nor touched; db never restarted or
  reverted: its incident escalates (pages) saying it is protected;
- a service `late` started at run time is read at once (the event stream) and restarted
  when its health fails; removed, it is forgotten.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.dockerengine import GOOD, run_service, sick_until_restarted
from tests.integration.test_docker_daemon import GENERIC, Project, start_daemon
from watchdog.demo import free_port, wait_for

pytestmark = pytest.mark.slow

STATEFUL = "watchdog-test/postgres:16"  # the busybox image, named as a database would be


@contextlib.contextmanager
def labelled_stack(client: docker.DockerClient, folder: Path) -> Iterator[Project]:
    """web, db (stateful by image) and tool (opted out), healthy, on a fresh project name."""
    client.images.get(GOOD).tag(STATEFUL)
    project = Project(f"wdlab{uuid.uuid4().hex[:8]}", folder, client, {}, {})
    try:
        for service in ("web", "db", "tool"):
            add(project, service)
        yield project
    finally:
        if project.process is not None:
            project.process.terminate()
            project.process.wait(30)
        for container in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project.name}"}
        ):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def add(project: Project, service: str) -> Any:
    project.ports[service] = free_port()
    www = project.www[service] = project.folder / f"www-{service}"
    www.mkdir()
    (www / "healthy").write_text("ok")
    return run_service(
        project.client, project=project.name, service=service, port=project.ports[service],
        www=www, image=STATEFUL if service == "db" else GOOD,
        labels={"watchdog.enable": "false"} if service == "tool" else None,
    )


def logged(project: Project, event: str, service: str) -> bool:
    """Whether the daemon's JSON log has `event` for `service`."""
    for line in (project.folder / "daemon.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("event") == event and record.get("service") == service:
                return True
    return False


def settled(project: Project, key: str, states: tuple[str, ...]) -> dict[str, Any]:
    """The newest incident on `key` once it is in one of `states`."""
    found: dict[str, Any] = {}

    def reached() -> bool:
        mine = [i for i in project.incidents() if i["key"] == key]
        found.update(max(mine, key=lambda i: i["id"]) if mine else {})
        return bool(found) and found["state"] in states

    wait_for(reached, 30, f"an incident on {key} in {states}")
    return found


def unhealthy(container: Any) -> bool:
    container.reload()
    return bool(container.attrs["State"].get("Health", {}).get("Status") == "unhealthy")


def test_init_prints_a_policy_validate_accepts_for_the_stack_it_finds(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str
) -> None:
    with labelled_stack(docker_client, tmp_path) as project:
        env = {"DOCKER_HOST": docker_url, "PATH": "/usr/bin:/bin"}
        made = subprocess.run(
            [sys.executable, "-m", "watchdog.cli", "init", "--compose-project", project.name],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        assert made.returncode == 0, made.stderr
        policy = tmp_path / "started.yaml"
        policy.write_text(made.stdout)
        checked = subprocess.run(
            [sys.executable, "-m", "watchdog.cli", "validate", str(policy)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert f'compose_project: "{project.name}"' in made.stdout
        assert 'protected_services: ["db"]' in made.stdout
        assert "#   tool, image watchdog-test/web:good, opted out" in made.stdout
        assert "#   db, image watchdog-test/postgres:16, protected (postgres image)" in made.stdout


def test_the_generic_policy_unedited_heals_what_labels_allow_and_pages_for_the_rest(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str
) -> None:
    with labelled_stack(docker_client, tmp_path) as project:
        start_daemon(project, docker_url, policy=GENERIC)
        wait_for(lambda: project.last_good_recorded("web"), 20, "web seen healthy")

        web = project.container("web")
        with sick_until_restarted(docker_client, web, project.www["web"]):
            incident = settled(project, "service_failure/web", ("resolved", "escalated"))
        assert incident["state"] == "resolved", incident["timeline"]
        assert [(s["name"], s["status"]) for s in incident["steps"]] == [
            ("restart the failed service", "succeeded")
        ]
        assert project.container("web").id == web.id  # restarted, not recreated

        tool, db = project.container("tool"), project.container("db")
        started = {c.name: c.attrs["State"]["StartedAt"] for c in (tool, db)}
        (project.www["tool"] / "healthy").unlink()
        wait_for(lambda: unhealthy(tool), 10, "tool unhealthy by Docker")
        (project.www["db"] / "healthy").unlink()
        incident = settled(project, "service_failure/db", ("escalated", "resolved"))
        assert incident["state"] == "escalated" and incident["steps"] == []
        assert any("protected" in e["summary"] for e in incident["timeline"]), incident
        assert not [i for i in project.incidents() if "tool" in i["key"]]
        for container in (tool, db):
            container.reload()
            assert container.attrs["State"]["StartedAt"] == started[container.name]
        assert logged(project, "service_discovered", "tool")  # seen, and left out
        (project.www["db"] / "healthy").write_text("ok")

        late = add(project, "late")
        # Seen healthy (its last known good recorded): read from its first event on, and
        # its `start` a second old, so the fault below outlives it.
        wait_for(lambda: project.last_good_recorded("late"), 10, "late seen healthy")
        assert logged(project, "service_discovered", "late")
        with sick_until_restarted(docker_client, late, project.www["late"]):
            incident = settled(project, "service_failure/late", ("resolved", "escalated"))
        assert incident["state"] == "resolved", incident["timeline"]
        assert incident["steps"][0]["name"] == "restart the failed service"

        late.remove(force=True)
        wait_for(lambda: logged(project, "service_removed", "late"), 10, "late forgotten")
