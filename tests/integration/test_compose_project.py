"""The guarded Compose project on a real engine: found from the sidecar's own labels, and
loud when wrong. A wrong project used to fail silently (every container signal vanished,
`watchdog check` said "0 failing"); a listed service with no container read as down.
"""

from __future__ import annotations

import os
import signal as signals
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from structlog.testing import capture_logs

from tests.dockerengine import GOOD, Projects, run_service, www_folder
from tests.integration.test_docker_probe import by_series, signal
from watchdog.clihandlers import load_guarding
from watchdog.commands.check import render_rows, run_check
from watchdog.demo import free_port, wait_for
from watchdog.policy.schema import DockerSignal, Policy, StackSpec
from watchdog.probes.composeproject import PROJECT_VARIABLE, ProjectError, guarded_environment
from watchdog.probes.docker import DockerProbe
from watchdog.settings import Settings

GENERIC = Path(__file__).parents[2] / "policies" / "compose-generic.yaml"


@pytest.fixture
def projects(docker_client: docker.DockerClient) -> Iterator[Projects]:
    with Projects(docker_client, "wdproj") as made:
        yield made


@pytest.fixture
def factory(docker_url: str) -> Callable[[], docker.DockerClient]:
    return lambda: docker.DockerClient(base_url=docker_url, timeout=5)


def test_the_guarded_project_defaults_to_the_sidecars_own_label(
    docker_client: docker.DockerClient, docker_url: str, projects: Projects, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = projects.new()
    sidecar = run_service(docker_client, project=stack, service="watchdog", port=free_port(),
                          www=www_folder(tmp_path, "sidecar"))
    monkeypatch.setenv("DOCKER_HOST", docker_url)
    monkeypatch.setenv("HOSTNAME", sidecar.id[:12])  # Docker's hostname for a container
    monkeypatch.setenv(PROJECT_VARIABLE, "")  # as Compose passes ${WATCHDOG_COMPOSE_PROJECT:-}
    policy = load_guarding(str(GENERIC))
    docker_signals = [s for s in policy.signals if isinstance(s, DockerSignal)]
    assert docker_signals and {s.project for s in docker_signals} == {stack}
    assert policy.stack.compose_project == stack

    monkeypatch.setenv(PROJECT_VARIABLE, "chosen")  # a setting still wins
    assert {s.project for s in load_guarding(str(GENERIC)).signals
            if isinstance(s, DockerSignal)} == {"chosen"}


def test_a_container_not_started_by_compose_is_a_clear_error(
    docker_client: docker.DockerClient, factory: Any
) -> None:
    plain = docker_client.containers.create(GOOD, name=f"wdplain-{uuid.uuid4().hex[:8]}")
    try:
        no_label = f"no com.docker.compose.project.*{PROJECT_VARIABLE}"
        with pytest.raises(ProjectError, match=no_label):
            guarded_environment({"HOSTNAME": plain.id[:12]}, factory)
    finally:
        plain.remove(force=True)
    on_a_host = guarded_environment({"HOSTNAME": "build-host", PROJECT_VARIABLE: " "}, factory)
    assert PROJECT_VARIABLE not in on_a_host  # the policy's own default then applies


@pytest.mark.asyncio
async def test_a_project_with_no_containers_is_a_failure_naming_it(
    docker_client: docker.DockerClient, docker_url: str, projects: Projects, factory: Any,
    tmp_path: Path,
) -> None:
    real, wrong = projects.new(), projects.new()
    run_service(docker_client, project=real, service="web", port=free_port(),
                www=www_folder(tmp_path, "web"))
    seen = await DockerProbe(signal("healthy", wrong), factory).observe()
    assert [(o.series, o.value) for o in seen] == [("", None)]
    assert seen[0].error is not None and repr(wrong) in seen[0].error and real in seen[0].error

    policy = Policy(version=1, stack=StackSpec(name="t"), authority={},
                    signals=[signal("healthy", wrong)])
    rows = await run_check(policy, Settings(orchestrator=f"docker+{docker_url}"))
    assert [(r.signal, r.status) for r in rows] == [("docker_healthy", "FAIL")]
    table = render_rows(rows)
    assert wrong in table and "1 failing" in table


@pytest.mark.asyncio
async def test_a_listed_service_without_container_warns_once_and_feeds_no_rule(
    docker_client: docker.DockerClient, projects: Projects, factory: Any, tmp_path: Path
) -> None:
    ours = projects.new()
    run_service(docker_client, project=ours, service="web", port=free_port(),
                www=www_folder(tmp_path, "web"))
    running = DockerProbe(signal("running", ours, services=["web", "ghost"]), factory)
    healthy = DockerProbe(signal("healthy", ours, services=["ghost", "web"]), factory)
    with capture_logs() as logs:
        for _ in range(2):
            assert set(by_series(await running.observe())) == {"web"}
            assert set(by_series(await healthy.observe())) == {"web"}
    warnings = [e for e in logs if e["event"] == "target_without_container"]
    assert [(e["log_level"], e["service"], e["project"]) for e in warnings] == [
        ("warning", "ghost", ours)
    ]


def test_watchdog_run_logs_an_empty_project_at_start(
    docker_client: docker.DockerClient, docker_url: str, projects: Projects, tmp_path: Path
) -> None:
    real, wrong = projects.new(), projects.new()
    run_service(docker_client, project=real, service="web", port=free_port(),
                www=www_folder(tmp_path, "web"))
    policy = yaml.safe_load(GENERIC.read_text())
    policy["targets"] = {"web": {"url": f"http://127.0.0.1:{free_port()}", "service": "web"}}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    log = tmp_path / "daemon.log"
    env = {**os.environ, "DOCKER_HOST": docker_url, PROJECT_VARIABLE: wrong,
           "WATCHDOG_ORCHESTRATOR": f"docker+{docker_url}", "WATCHDOG_LOG_FORMAT": "json",
           "WATCHDOG_STATE": str(tmp_path / "journal.db"),
           "WATCHDOG_LISTEN": f"127.0.0.1:{free_port()}"}
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "watchdog.cli", "run", "--policy",
                                    str(path)], env=env, stdout=out, stderr=out)
    try:
        wait_for(lambda: "compose_project_empty" in log.read_text(), 30, "the start-up error")
    finally:
        process.send_signal(signals.SIGTERM)
        process.wait(30)
    line = next(x for x in log.read_text().splitlines() if "compose_project_empty" in x)
    assert '"level": "error"' in line and wrong in line and real in line


def test_an_engine_that_cannot_be_asked_says_what_to_set(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path / 'no-such-docker.sock'}"
    with pytest.raises(ProjectError, match=f"cannot be inspected.*set {PROJECT_VARIABLE}"):
        guarded_environment({"HOSTNAME": "0123456789ab"},
                            lambda: docker.DockerClient(base_url=missing, timeout=2))
