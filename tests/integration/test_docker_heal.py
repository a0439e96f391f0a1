"""The generic policy heals every fault it detects, on a real engine, whatever the stack's size.

A running container whose health fails (its `healthy` file gone, back once the
container is started again: the fault lives in the process) is not something
Docker's restart policy sees. On a one-service stack it is also "every service
down" (P0), which supersedes the P2 restart; on a three-service stack two of them
are "most services down" (P1). Either share rule must restart what is failing
and start what is stopped, and its plan must never sit in verification on steps
that changed nothing. The project, environment and policy are test_docker_daemon's,
its clock compressed tenfold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from tests.dockerengine import sick_until_restarted
from tests.integration.test_docker_daemon import (
    Project,
    compose_project,
    start_daemon,
    write_policy,
)
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def guarded(
    client: docker.DockerClient, folder: Path, docker_url: str, services: tuple[str, ...]
) -> Iterator[Project]:
    with compose_project(client, folder, prefix="wdheal", services=services) as project:
        try:
            policy = write_policy(project)
            data = yaml.safe_load(policy.read_text())
            data["guards"]["cooldown"] = "0s"  # every fault here is a new one, not a loop
            data["scenarios"]["start_everything"]["verify_for"] = "10s"  # 1 s at this scale
            for signal in data["signals"]:  # the HTTP check reads /ready, Docker's /healthy
                if signal.get("kind") == "http":
                    signal["path"] = "/ready"
            # The share rule decides alone, as it does whenever it fires first (a Docker
            # healthcheck at its default 30 s interval lags the HTTP check): the P2 rules
            # wait longer than the share rule's plan may take to heal.
            for rule in data["rules"]:
                if rule["severity"] == "P2":
                    rule["for"] = "5m"
            policy.write_text(yaml.safe_dump(data, sort_keys=False))
            start_daemon(project, docker_url, policy=policy)
            wait_for(lambda: all(project.last_good_recorded(s) for s in services), 30,
                     "every service's last known good image")
            for service in services:
                (project.www[service] / "ready").write_text("ok\n")
            yield project
        finally:
            if project.process is not None:
                project.process.terminate()
                project.process.wait(30)


def answers(project: Project, service: str) -> bool:
    url = f"http://127.0.0.1:{project.ports[service]}/ready"
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def settled(project: Project, known: set[int]) -> list[dict[str, Any]]:
    """Wait until the fault's incidents are all closed; return them, newest last."""

    def closed() -> bool:
        new = [i for i in project.incidents() if i["id"] not in known]
        return bool(new) and all(i["closed_at"] is not None for i in new)

    # Tenfold: a start_everything plan left to wait out its old 10 min timeout takes 60 s.
    try:
        wait_for(closed, 45, "the fault's incidents to close")
    except TimeoutError as error:
        left = [i for i in project.incidents() if i["id"] not in known]
        raise AssertionError(f"{error}: {words(left)}") from error
    return sorted((i for i in project.incidents() if i["id"] not in known), key=lambda i: i["id"])


def words(incidents: list[dict[str, Any]]) -> list[Any]:
    return [(i["key"], i["state"], [(s["name"], s["output"]) for s in i["steps"]],
             [e["summary"] for e in i["timeline"]][-3:]) for i in incidents]


def quiet(project: Project) -> set[int]:
    """Wait for the stack to answer with no incident open; the incidents known so far."""
    wait_for(lambda: all(answers(project, s) for s in project.ports) and not [
        i for i in project.incidents() if i["closed_at"] is None], 30, "a quiet stack")
    return {i["id"] for i in project.incidents()}


def test_every_service_down_on_one_service_restarts_it_when_unhealthy_and_starts_it_when_dead(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str
) -> None:
    with guarded(docker_client, tmp_path, docker_url, ("web",)) as project:
        for files, did in ((("ready",), "restarted"), (("ready", "healthy"), "restarted")):
            known = quiet(project)
            web = project.container("web")
            with sick_until_restarted(docker_client, web, project.www["web"], files):
                incidents = settled(project, known)
            (incident,) = incidents
            assert incident["key"] == "system" and incident["state"] == "resolved", words(incidents)
            assert f"web: running, unhealthy → {did}" in incident["steps"][0]["output"]
            assert answers(project, "web")
            assert project.container("web").id == web.id  # restarted, not recreated

        known = quiet(project)
        project.container("web").kill()
        (incident,) = settled(project, known)
        assert incident["state"] == "resolved", words([incident])
        assert "web: exited → started" in incident["steps"][0]["output"]
        assert answers(project, "web")


def test_two_unhealthy_services_of_three_are_restarted_and_the_healthy_one_left_alone(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str
) -> None:
    with guarded(docker_client, tmp_path, docker_url, ("web", "api", "worker")) as project:
        worker_started = project.container("worker").attrs["State"]["StartedAt"]
        known = quiet(project)
        with contextlib.ExitStack() as faults:
            for service in ("web", "api"):
                container = project.container(service)
                faults.enter_context(sick_until_restarted(
                    docker_client, container, project.www[service], ("ready",)
                ))
            incidents = settled(project, known)
        assert answers(project, "web") and answers(project, "api"), words(incidents)
        (incident,) = incidents
        assert incident["key"] == "system" and incident["state"] == "resolved", words(incidents)
        output = incident["steps"][0]["output"]
        assert "web: running, unhealthy → restarted" in output
        assert "api: running, unhealthy → restarted" in output
        assert "worker: healthy, left alone" in output
        assert project.container("worker").attrs["State"]["StartedAt"] == worker_started
