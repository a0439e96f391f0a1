"""The daemon on a real Docker engine, with the generic Compose policy.

A throwaway Compose project of busybox httpd containers (labelled as Compose
labels them, host network, 127.0.0.1 only) is guarded by `watchdog run` with
`WATCHDOG_ORCHESTRATOR=docker+...` and policies/compose-generic.yaml, its clock
compressed tenfold. Each test asserts the journal, the metrics and the
containers' real state.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from tests.dockerengine import BROKEN, Dockerd, build_images, release, run_service
from watchdog.demo import free_port, read_incidents, wait_for
from watchdog.keys import new_key
from watchdog.store.journal import open_journal

pytestmark = pytest.mark.slow

GENERIC = Path(__file__).resolve().parents[2] / "policies" / "compose-generic.yaml"


@dataclass
class Project:
    name: str
    folder: Path
    client: docker.DockerClient
    ports: dict[str, int]
    www: dict[str, Path]
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    read_token: str = field(default_factory=new_key)  # the daemon's WATCHDOG_READ_TOKEN

    def container(self, service: str) -> Any:
        (found,) = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.name}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        return found

    def incidents(self) -> list[dict[str, Any]]:
        return read_incidents(self.url, self.read_token)

    def follow(self, states: tuple[str, ...], seconds: float = 60) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def reached() -> bool:
            incidents = self.incidents()
            if incidents:
                found.clear()
                found.update(max(incidents, key=lambda i: i["id"]))
            return bool(found) and found["state"] in states

        wait_for(reached, seconds, f"an incident in {states}")
        return found

    def last_good_recorded(self, service: str) -> bool:
        journal = open_journal(str(self.folder / "journal.db"))
        try:
            return journal.latest_snapshot(f"docker:last_good:{service}") is not None
        finally:
            journal.close()

    def metric(self, name: str, **labels: str) -> float:
        for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample {name} {labels}")


def environment(
    project: Project, docker_url: str, orchestrator: str | None = None
) -> dict[str, str]:
    return {
        **os.environ,
        "DOCKER_HOST": docker_url,
        "WATCHDOG_COMPOSE_PROJECT": project.name,
        "WATCHDOG_ORCHESTRATOR": orchestrator or f"docker+{docker_url}",
        "WATCHDOG_HEALTH_PATH": "/healthy",
        "WATCHDOG_STATE": str(project.folder / "journal.db"),
        "WATCHDOG_READ_TOKEN": project.read_token,
        "WATCHDOG_TIME_SCALE": "10",
        "WATCHDOG_LOG_FORMAT": "json",
    }


def write_policy(project: Project) -> Path:
    policy = yaml.safe_load(GENERIC.read_text())
    policy["targets"] = {
        service: {"url": f"http://127.0.0.1:{port}", "service": service}
        for service, port in project.ports.items()
    }
    policy["stack"]["protected_services"] = ["postgres"]
    path = project.folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def start_daemon(
    project: Project, docker_url: str, orchestrator: str | None = None, policy: Path | None = None
) -> None:
    path = policy or write_policy(project)
    listen = f"127.0.0.1:{free_port()}"
    env = {**environment(project, docker_url, orchestrator), "WATCHDOG_LISTEN": listen}
    log = (project.folder / "daemon.log").open("ab")
    project.process = subprocess.Popen(
        [sys.executable, "-m", "watchdog.cli", "run", "--policy", str(path)],
        env=env,
        stdout=log,
        stderr=log,
    )
    log.close()
    project.url = f"http://{listen}"

    def answers() -> bool:
        try:
            return httpx.get(project.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, 20, "the daemon to answer")


SERVICES = ("web", "api", "postgres")


@contextlib.contextmanager
def compose_project(
    client: docker.DockerClient,
    folder: Path,
    prefix: str = "wd",
    services: tuple[str, ...] = SERVICES,
) -> Iterator[Project]:
    """web, api (depends on web) and postgres (protected), or the `services` named, healthy,
    under a fresh Compose project name; every container of the project removed at the end."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    ports = {service: free_port() for service in services}
    www = {}
    for service in services:
        www[service] = folder / f"www-{service}"
        www[service].mkdir()
        (www[service] / "healthy").write_text("ok")
    project = Project(name, folder, client, ports, www)
    try:
        for service in services:
            run_service(
                client,
                project=name,
                service=service,
                port=ports[service],
                www=www[service],
                depends_on="web:service_started:false"
                if service == "api" and "web" in services
                else "",
            )
        yield project
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={name}"}
        ):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


@pytest.fixture
def project(
    tmp_path: Path, docker_client: docker.DockerClient, docker_url: str
) -> Iterator[Project]:
    with compose_project(docker_client, tmp_path) as made:
        try:
            yield made
        finally:
            if made.process is not None:
                made.process.terminate()
                made.process.wait(30)


def baseline(project: Project, docker_url: str) -> None:
    start_daemon(project, docker_url)
    wait_for(lambda: project.last_good_recorded("web"), 30, "web's last known good image")


def test_a_dead_container_is_restarted_and_the_incident_resolves(
    project: Project, docker_url: str
) -> None:
    baseline(project, docker_url)
    before = project.container("web")
    before.kill()
    incident = project.follow(("resolved", "escalated"))
    assert incident["state"] == "resolved", incident["timeline"]
    assert incident["key"] == "service_failure/web"
    # Same image and configuration as the last good record: no scenario 1, a plain restart.
    assert incident["scenario"] == "restart_service" and "changed" not in incident["reason"]
    assert [(s["name"], s["status"]) for s in incident["steps"]] == [
        ("restart the failed service", "succeeded")
    ]
    after = project.container("web")
    assert after.id == before.id and after.name == before.name  # restarted, not recreated
    assert after.attrs["State"]["Running"]
    assert (
        project.metric(
            "watchdog_actions_total",
            scenario="restart_service",
            action="service.restart",
            outcome="succeeded",
        )
        == 1
    )


def deploy(project: Project, service: str, image: str) -> Any:
    """What a bad `docker compose up` does: same name and labels, a new image."""
    old = project.container(service)
    old.remove(force=True)
    return run_service(
        project.client,
        project=project.name,
        service=service,
        port=project.ports[service],
        www=project.www[service],
        image=image,
        restart="always",
    )


def test_a_revert_whose_old_image_also_fails_is_swapped_back_and_escalated(
    project: Project, docker_url: str
) -> None:
    baseline(project, docker_url)
    (project.www["web"] / "healthy").unlink()  # the fault is not in the image at all
    broken = deploy(project, "web", BROKEN)
    incident = project.follow(("escalated",), seconds=120)
    revert = [s for s in incident["steps"] if s["name"] == "revert to the last known good image"]
    assert revert and revert[-1]["status"] == "failed"
    assert "put back" in revert[-1]["output"] or "previous" in revert[-1]["output"]
    web = project.container("web")
    assert web.id == broken.id  # the container that was there is there again, by name
    names = [
        c.name
        for c in project.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project.name}"}
        )
    ]
    assert sorted(names) == sorted(f"{project.name}-{s}-1" for s in ("web", "api", "postgres"))


def test_a_protected_service_is_never_touched_and_pages_instead(
    project: Project, docker_url: str
) -> None:
    baseline(project, docker_url)
    postgres = project.container("postgres")
    postgres.kill()
    incident = project.follow(("escalated", "resolved"))
    assert incident["key"] == "service_failure/postgres"
    assert incident["state"] == "escalated" and incident["steps"] == []
    assert any("protected" in e["summary"] for e in incident["timeline"])
    time.sleep(2)
    again = project.container("postgres")
    assert again.id == postgres.id and not again.attrs["State"]["Running"]


def test_an_unreachable_engine_is_a_p0_and_no_docker_action_is_tried(
    project: Project, docker_url: str, tmp_path: Path
) -> None:
    missing = f"unix://{tmp_path / 'no-such-docker.sock'}"
    start_daemon(project, missing, orchestrator=f"docker+{missing}")
    incident = project.follow(("notified", "escalated"), seconds=60)
    assert incident["severity"] == "P0" and incident["scenario"] == "orchestrator_down"
    assert incident["steps"] == []
    assert "Docker engine" in incident["reason"]


def rollback(project: Project, docker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "watchdog.cli",
            "rollback",
            "--policy",
            str(project.folder / "policy.yaml"),
            *args,
        ],
        env=environment(project, docker_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rollback_by_hand_is_journaled_and_verified(project: Project, docker_url: str) -> None:
    baseline(project, docker_url)
    before = project.container("web")
    restarted = rollback(project, docker_url, "--service", "web")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "succeeded restart the failed service" in restarted.stdout
    assert "verified: " in restarted.stdout
    after = project.container("web")
    assert (
        after.id == before.id
        and after.attrs["State"]["StartedAt"] != before.attrs["State"]["StartedAt"]
    )

    same = rollback(project, docker_url, "--service", "web", "--to-last-good")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "already runs the last known good image" in same.stdout

    api = project.container("api")
    dry = rollback(project, docker_url, "--service", "api", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"dry run: would call POST /containers/{api.id[:12]}/restart?t=10" in dry.stdout
    assert project.container("api").attrs["State"]["StartedAt"] == api.attrs["State"]["StartedAt"]

    refused = rollback(project, docker_url, "--service", "postgres")
    assert refused.returncode == 1 and "protected" in refused.stdout
    journal = open_journal(str(project.folder / "journal.db"))
    try:
        manual = [r for r in journal.list_incidents() if r.key.startswith("manual/")]
        restart = min(manual, key=lambda r: r.id)  # a rollback by hand owes the follow-ups
        owed = journal.followups(incident_id=restart.id)
    finally:
        journal.close()
    assert len(manual) == 4
    assert restart.state == "resolved" and "Post-mortem scheduled" in [f.text for f in owed]


def test_a_service_that_keeps_dying_is_restarted_with_growing_delays(
    project: Project, docker_url: str
) -> None:
    """Cooldown 2 s (20 s at the policy's scale) doubling per restart: 2, 4, 8 s ..."""
    policy = write_policy(project)
    data = yaml.safe_load(policy.read_text())
    data["guards"].update(cooldown="20s", actions_per_hour=10)
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    start_daemon(project, docker_url, policy=policy)
    wait_for(lambda: project.last_good_recorded("web"), 30, "web's last known good image")
    outcomes = []
    for _ in range(4):
        wait_for(
            lambda: not [i for i in project.incidents() if i["closed_at"] is None],
            30,
            "no open incident",
        )
        known = {i["id"] for i in project.incidents()}
        project.container("web").kill()

        def finished(known: set[int] = known) -> bool:
            new = [i for i in project.incidents() if i["id"] not in known]
            return bool(new) and new[0]["state"] in ("resolved", "escalated")

        wait_for(finished, 60, "the incident to finish")
        (incident,) = [i for i in project.incidents() if i["id"] not in known]
        outcomes.append(incident)
        if incident["state"] == "escalated":
            break
    states = [i["state"] for i in outcomes]
    assert states[:-1] == ["resolved"] * (len(states) - 1) and states[-1] == "escalated", states
    assert len(states) >= 3  # at least two restarts before the backoff outgrew the fault
    guards = [e["summary"] for e in outcomes[-1]["timeline"] if e["kind"] == "guards"]
    assert "web was acted on" in guards[0] and "grown" in guards[0], guards
    assert outcomes[-1]["steps"] == []


def test_the_engine_going_away_mid_plan_fails_the_step_cleanly_and_escalates(
    tmp_path: Path,
) -> None:
    """A dockerd of its own, stopped while a plan waits before its restart step."""
    # containerd's socket lives under the exec root: keep the path short (108 bytes max).
    engine = Dockerd(Path(tempfile.mkdtemp(prefix="wdd-", dir="/tmp")))
    project: Project | None = None
    try:
        engine.start()
        client = docker.DockerClient(base_url=engine.url, timeout=30)
        build_images(client)
        name = f"wd{uuid.uuid4().hex[:8]}"
        www = tmp_path / "www-web"
        www.mkdir()
        (www / "healthy").write_text("ok")
        project = Project(name, tmp_path, client, {"web": free_port()}, {"web": www})
        run_service(client, project=name, service="web", port=project.ports["web"], www=www)
        policy = write_policy(project)
        data = yaml.safe_load(policy.read_text())
        data["scenarios"]["restart_service"]["steps"].insert(
            0, {"name": "let connections drain", "action": "wait", "params": {"seconds": 3}}
        )
        # A one-service stack is also "every service down", whose pending P0 holds (and then
        # absorbs) the restart: this test is about the restart plan, so no share rule.
        data["rules"] = [r for r in data["rules"] if r["signal"] != "services_down_share"]
        policy.write_text(yaml.safe_dump(data, sort_keys=False))
        start_daemon(project, engine.url, policy=policy)
        wait_for(lambda: project.last_good_recorded("web"), 30, "web's last known good image")
        project.container("web").kill()

        def waiting() -> bool:
            incidents = project.incidents()
            return bool(incidents) and any(s["status"] == "started" for s in incidents[0]["steps"])

        wait_for(waiting, 30, "the plan to be waiting before its restart")
        client.close()
        engine.stop()  # the engine goes away mid-plan

        def escalated() -> bool:
            return any(
                i["key"] == "service_failure/web" and i["state"] == "escalated"
                for i in project.incidents()
            )

        wait_for(escalated, 60, "the service incident to escalate")
        (incident,) = [i for i in project.incidents() if i["key"] == "service_failure/web"]
        steps = [(s["name"], s["status"]) for s in incident["steps"]]
        assert steps[0] == ("let connections drain", "succeeded")
        assert ("restart the failed service", "failed") in steps
        failed = [s["output"] for s in incident["steps"] if s["status"] == "failed"]
        assert all("Docker engine unreachable" in output for output in failed), failed
        orchestrator = [i for i in project.incidents() if i["key"] == "orchestrator"]
        assert orchestrator and orchestrator[0]["severity"] == "P0"

        engine.start()  # back: nothing was left half-created
        client = docker.DockerClient(base_url=engine.url, timeout=30)
        names = [c.name for c in client.containers.list(all=True)]
        assert names == [f"{name}-web-1"], names
        client.close()
    finally:
        if project is not None and project.process is not None:
            project.process.terminate()
            project.process.wait(30)
        engine.stop()
        release(engine.folder)


def test_a_new_image_that_fails_right_after_deploy_opens_scenario_one(
    project: Project, docker_url: str
) -> None:
    """Runbook scenario 1, routed by the shipped policy: evidence, stop, revert, dependents.

    Only the 15-minute watch is compressed (40 s, 4 s at the test's scale); the rules
    are the policy's own, so the plain restart and the plain revert that see the same
    crash loop must lose to it by the policy's data alone.
    """
    policy = write_policy(project)
    data = yaml.safe_load(policy.read_text())
    data["scenarios"]["new_service_failure"]["verify_for"] = "40s"
    policy.write_text(yaml.safe_dump(data, sort_keys=False))
    start_daemon(project, docker_url, policy=policy)
    wait_for(
        lambda: project.last_good_recorded("web") and project.last_good_recorded("api"),
        30,
        "web's and api's last known good images",
    )
    good_image = project.container("web").attrs["Image"]
    api_before = project.container("api").attrs["State"]["StartedAt"]
    deploy(project, "web", BROKEN)

    def handled() -> bool:
        return any(
            i["scenario"] == "new_service_failure" and i["state"] in ("resolved", "escalated")
            for i in project.incidents()
        )

    try:
        wait_for(handled, 90, "scenario 1 to run")
    except TimeoutError as late:
        raise AssertionError([(i["scenario"], i["state"], i.get("reason"))
                              for i in project.incidents()]) from late
    # The first incident about web is scenario 1 (once it is resolved, the crash-loop rule
    # may still be clearing and open a plain revert that finds web already good).
    incident = min(
        (i for i in project.incidents() if i["key"] == "service_failure/web"),
        key=lambda i: i["id"],
    )
    assert incident["scenario"] == "new_service_failure", incident["reason"]
    assert incident["state"] == "resolved", [s["output"] for s in incident["steps"]]
    assert incident["severity"] == "P2"
    assert "web's image changed" in incident["reason"]
    assert "(watchdog-test/web:broken, last good watchdog-test/web:good)" in incident["reason"]
    assert [(s["name"], s["status"]) for s in incident["steps"]] == [
        ("keep the failing containers' logs and the dependents' status", "succeeded"),
        ("confirm a backup exists if the service is schema-coupled", "succeeded"),
        ("stop the failed new service", "succeeded"),
        ("revert to the last known good image", "succeeded"),
        ("restart its dependents in order", "succeeded"),
    ]
    evidence, backup, stop, revert, restart = incident["steps"]
    assert "new version cannot start" in evidence["output"]
    assert "dependents: api" in evidence["output"]
    assert backup["output"].startswith("not applicable: web is not schema-coupled")
    assert stop["output"].startswith("stopped web")
    assert revert["output"].startswith("reverted web")
    assert "restarted api" in restart["output"]
    journal = open_journal(str(project.folder / "journal.db"))
    try:
        kept = [e.data for e in journal.timeline(incident["id"]) if e.kind == "step_evidence"]
    finally:
        journal.close()
    logs = next(d["logs"] for d in kept if "logs" in d)
    assert next(d["dependents"] for d in kept if "logs" in d)["api"].startswith(
        f"{project.name}-api-1 status running"
    )
    assert any("new version cannot start" in line for line in logs[f"{project.name}-web-1"])
    assert len(logs[f"{project.name}-web-1"]) <= 100
    # web is back on the good image, under its own name and labels, serving again.
    web = project.container("web")
    assert web.attrs["Image"] == good_image
    assert web.name == f"{project.name}-web-1"
    assert web.labels["com.docker.compose.service"] == "web"
    mounts = {m["Destination"]: m["Source"] for m in web.attrs["Mounts"]}
    assert mounts["/www"] == str(project.www["web"])
    assert httpx.get(f"http://127.0.0.1:{project.ports['web']}/healthy").status_code == 200
    # api (depends on web) came back after web was stopped.
    api_started = project.container("api").attrs["State"]["StartedAt"]
    assert api_started > api_before
    started = datetime.fromisoformat(api_started[:26].rstrip("Z") + "+00:00").timestamp()
    assert started >= stop["finished_at"] - 0.5
