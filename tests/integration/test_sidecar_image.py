"""The sidecar image, built from deploy/Dockerfile and run by docker-compose 1.29 as
deploy/README.md says, on a real engine.

The image is built on the local Debian base (tests/sidecar_image.py: no registry here)
and cached between runs. The sidecar starts from deploy/docker-compose.watchdog.yml and a
deploy/.env made from .env.example as the README says, in a copy of deploy/ and
policies/. Only what this machine needs is adapted: host networking in the copy of the
Compose file (the busybox stack of tests/dockerengine.py binds to 127.0.0.1; the
sidecar's API to a free loopback port), and in an override the built image, the test
engine's socket and the clocks: the daemon's
WATCHDOG_TIME_SCALE=10 (the generic policy's 30 s `for:` becomes 3 s) and a 1 s Docker
health interval, so no check waits on the production timings.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from tests.dockerengine import run_service, www_folder
from tests.sidecar_image import ROOT, Built, context_files, sidecar_image
from watchdog.demo import free_port, read_incidents, wait_for
from watchdog.keys import new_key

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sidecar_image")]

SERVICES = ("web", "api", "worker")


@dataclass
class Sidecar:
    """The Compose-run sidecar and the stack it guards."""

    client: docker.DockerClient
    folder: Path
    compose: list[str]
    env: dict[str, str]
    stack: str
    www: dict[str, Path]
    url: str
    read_token: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*self.compose, *args], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def container(self) -> Any:
        (found,) = self.client.containers.list(
            all=True, filters={"label": [f"com.docker.compose.project={self.folder.name}",
                                         "com.docker.compose.service=watchdog"]})
        return found

    def service(self, name: str) -> Any:
        return self.client.containers.get(f"{self.stack}-{name}-1")

    def health(self) -> str:
        state = self.container().attrs["State"]
        return str(state.get("Health", {}).get("Status", state["Status"]))

    def wait_healthy(self) -> None:
        wait_for(lambda: self.health() == "healthy", 90, "the sidecar's Docker health")

    def incidents(self) -> list[dict[str, Any]]:
        return read_incidents(self.url, self.read_token)

    def resolved(self, service: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def done() -> bool:
            mine = [i for i in self.incidents() if i["key"] == f"service_failure/{service}"]
            found.update(mine[-1] if mine else {})
            return bool(mine) and mine[-1]["state"] in ("resolved", "escalated")

        wait_for(done, 90, f"the incident about {service} to close")
        return found


@pytest.fixture(scope="module")
def image(docker_url: str) -> Built:
    return sidecar_image(docker_url)


def _env_file(example: str, values: dict[str, str]) -> str:
    """deploy/.env from .env.example: its lines with these settings filled in."""
    lines, seen = [], set()
    for line in example.splitlines():
        name = line.lstrip("# ").split("=", 1)[0]
        if "=" in line and name in values and " " not in name:
            lines.append(f"{name}={values[name]}")
            seen.add(name)
        else:
            lines.append(line)
    lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
    return "\n".join(lines) + "\n"


def _on_host_network(compose: str) -> str:
    """The Compose file with host networking in place of the stack's network and the
    published ports: the one change made to it, in the copy (an override cannot drop the
    base file's `networks` and `ports`, which host networking refuses). Every service:
    test_sidecar_ha.py runs the two of docker-compose.ha.yml."""
    data = yaml.safe_load(compose)
    for service in data["services"].values():
        del service["networks"], service["ports"]
        service["network_mode"] = "host"
    del data["networks"]
    return str(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def sidecar(
    image: Built, docker_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    client = docker.DockerClient(base_url=docker_url, timeout=60)
    stack = f"wdimg{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp(f"sidecar-{stack}")
    ports = {service: free_port() for service in SERVICES}
    www = {s: www_folder(folder, f"www-{s}") for s in SERVICES}
    for service in SERVICES:
        run_service(client, project=stack, service=service, port=ports[service], www=www[service])
    shutil.copytree(ROOT / "policies", folder / "policies")
    deploy = folder / "deploy"
    deploy.mkdir()
    (deploy / "docker-compose.watchdog.yml").write_text(_on_host_network(
        (ROOT / "deploy" / "docker-compose.watchdog.yml").read_text()))
    socket = docker_url.removeprefix("unix://")
    read_token, listen = new_key(), f"127.0.0.1:{free_port()}"
    (deploy / ".env").write_text(_env_file((ROOT / "deploy" / ".env.example").read_text(), {
        "STACK_NETWORK": "host",
        "DOCKER_GID": str(os.stat(socket).st_gid),
        "WATCHDOG_COMPOSE_PROJECT": stack,
        "WATCHDOG_READ_TOKEN": read_token,
        "WATCHDOG_HEALTH_PATH": "/healthy",
        **{f"WATCHDOG_URL_{s.upper()}": f"http://127.0.0.1:{ports[s]}" for s in SERVICES},
    }))
    override = {"services": {"watchdog": {
        "image": image.tag,
        "environment": {"WATCHDOG_LISTEN": listen, "WATCHDOG_TIME_SCALE": "10"},
        "volumes": [f"{socket}:/var/run/docker.sock"],
        "healthcheck": {"interval": "1s", "start_period": "30s"},
    }}}
    (deploy / "test.override.yml").write_text(yaml.safe_dump(override))
    # The Compose project is named after the folder: a fresh project, so a fresh volume.
    compose = ["docker-compose", "-p", folder.name, "-f", "deploy/docker-compose.watchdog.yml",
               "-f", "deploy/test.override.yml"]
    env = {**os.environ, "DOCKER_HOST": docker_url}
    made = Sidecar(client, folder, compose, env, stack, www, f"http://{listen}", read_token)
    try:
        made.run("up", "-d", "--no-build")
        yield made
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "10"], cwd=folder, env=env,
                       capture_output=True, timeout=120, check=False)
        for service in SERVICES:
            with contextlib.suppress(docker.errors.NotFound):
                made.service(service).remove(force=True)
        client.close()


def test_the_build_context_is_only_what_the_image_needs() -> None:
    """The root .dockerignore, read as docker-compose 1.29's docker-py reads it."""
    files = context_files()
    assert not [f for f in files if f.startswith((".venv/", ".git/", "tests/", "bench/"))]
    assert {"pyproject.toml", "requirements/runtime.lock", "deploy/healthcheck.py"} <= set(files)
    assert sum((ROOT / f).stat().st_size for f in files) < 5_000_000


def test_the_sidecar_is_healthy_on_a_fresh_volume_without_people(sidecar: Sidecar) -> None:
    sidecar.wait_healthy()
    healthz = httpx.get(sidecar.url + "/healthz", timeout=5)
    assert healthz.status_code == 200 and healthz.json()["status"] == "ok"
    assert "people add" in str(healthz.json()["approvers"]), healthz.json()
    metrics = httpx.get(sidecar.url + "/metrics", timeout=5)
    assert metrics.status_code == 200 and "watchdog_" in metrics.text
    assert sidecar.container().attrs["Config"]["User"] == "10001:10001"


def test_a_killed_service_is_restarted(sidecar: Sidecar) -> None:
    sidecar.wait_healthy()
    web = sidecar.service("web")
    web.kill()
    incident = sidecar.resolved("web")
    assert incident["state"] == "resolved", incident["timeline"]
    assert sidecar.service("web").attrs["State"]["Running"]


def test_an_unhealthy_service_is_restarted(sidecar: Sidecar) -> None:
    """Its health file removed; the restart is what cures it (the file is back once the
    sidecar has restarted the container, as a restart cures a wedged process)."""
    sidecar.wait_healthy()
    started = sidecar.service("api").attrs["State"]["StartedAt"]
    (sidecar.www["api"] / "healthy").unlink()
    wait_for(lambda: sidecar.service("api").attrs["State"]["StartedAt"] != started, 90,
             "the sidecar to restart api")
    (sidecar.www["api"] / "healthy").write_text("ok\n")
    incident = sidecar.resolved("api")
    assert incident["state"] == "resolved", incident["timeline"]
    assert [s["name"] for s in incident["steps"]] == ["restart the failed service"]


def test_sigterm_stops_it_cleanly_and_the_journal_survives_a_restart(sidecar: Sidecar) -> None:
    sidecar.wait_healthy()
    if not sidecar.incidents():  # run alone: an incident of its own to outlive the restart
        sidecar.service("worker").kill()
        sidecar.resolved("worker")
    before = {i["id"] for i in sidecar.incidents()}
    since = datetime.now().astimezone()
    sidecar.run("stop", "-t", "10")
    state = sidecar.container().attrs["State"]
    kills = list(sidecar.client.events(
        # Whole seconds on the engine's side: `until` one second on, so the kill is in.
        since=since, until=datetime.now().astimezone() + timedelta(seconds=1), decode=True,
        filters={"container": sidecar.container().id, "event": "kill"}))
    # Docker sends SIGKILL (and the exit code is 137) only if SIGTERM took over the 10 s.
    assert [e["Actor"]["Attributes"]["signal"] for e in kills] == ["15"], kills
    assert state["ExitCode"] == 0 and not state["OOMKilled"], (
        f"{state}: SIGTERM at {kills[0]['timeNano'] / 1e9:.3f} (epoch), "
        f"StartedAt {state['StartedAt']}, FinishedAt {state['FinishedAt']}")
    sidecar.run("start")
    sidecar.wait_healthy()
    assert before <= {i["id"] for i in sidecar.incidents()}
