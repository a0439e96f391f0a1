"""Crash-matrix scenarios on real engines: the Docker ladder (restart → revert → page).

tests/integration/crash_matrix.py drives the sandbox; this drives the daemon with
`WATCHDOG_ORCHESTRATOR=docker+unix://...` against real containers on a real Docker
engine, as tests/integration/test_docker_daemon.py does (its Project, policy,
environment and deploy are reused, not copied), SIGKILLed at one journal write
(watchdog/store/crashpoints.py) and restarted without the setting.

`docker_ladder` climbs the Docker ladder in two faults, each followed until every
incident is final:

1. web's container is killed: the restart rung brings it back (resolved);
2. a crash-looping image is deployed over web, which loses its health file: a
   failure right after a deploy, runbook scenario 1 (evidence, backup check, stop,
   revert): the revert recreates it from the last known good image, which is
   unhealthy too (the fault is not in the image), so the previous container is put
   back and the incident is escalated and paged.

`docker_ladder_climb` has one incident climb every rung instead: after the same first
fault, api loses its health file, the restart rung's verification fails, the revert
rung (`next: revert_service`) fails and puts the container back, and it is paged
(31 writes, a clean run 27 s, against 23 writes and 13 s for `docker_ladder`).

The world check: the containers as the journal says. One container per service,
under its Compose name (nothing left half-created by a revert cut short), and every
service not named by an escalated incident's page running its good image.

One engine serves every run of the process (started once if none answers).
"""

from __future__ import annotations

import atexit
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import yaml

from tests.dockerengine import BROKEN, GOOD, build_images, docker_engine
from tests.integration.crash_matrix import (
    Daemon,
    KillPoint,
    Run,
    _fault_done,
    _rows,
    _until,
    escalation_pages,
    judged,
    pagers,
    read_commit_log,
    revived,
)
from tests.integration.test_docker_daemon import (
    SERVICES,
    Project,
    compose_project,
    deploy,
    environment,
    write_policy,
)

#: The ladder's second fault (crash loop, revert, its verification, the swap back) takes
#: about 40 s at the policy's tenfold clock; a restart after a kill re-detects it all.
LADDER_BOUND = 150.0
OUTBOX_BOUND = 15.0

_ENGINE_LOCK = threading.Lock()
_ENGINE: list[str] = []


def engine_url() -> str:
    """The test engine's DOCKER_HOST URL, started (and its images built) once per process."""
    with _ENGINE_LOCK:
        if not _ENGINE:
            stack = contextlib.ExitStack()
            url = stack.enter_context(docker_engine())
            atexit.register(stack.close)
            client = docker.DockerClient(base_url=url, timeout=60)
            try:
                build_images(client)
            finally:
                client.close()
            _ENGINE.append(url)
        return _ENGINE[0]


class DockerDaemon(Daemon):
    """`watchdog run` guarding a Compose project on the Docker engine (crash_matrix.Daemon's
    start, revive and stop)."""

    def __init__(self, project: Project, url: str, policy: Path, env: dict[str, str]) -> None:
        self.policy = policy
        self.prepare(project.folder,
                     lambda listen: {**environment(project, url), "WATCHDOG_LISTEN": listen}, env)


def ladder_policy(project: Project) -> Path:
    """compose-generic with a 1 s cooldown (10 s at the tenfold clock): the second fault
    on web must climb the ladder, not be refused because the first one acted on web."""
    path = write_policy(project)
    data = yaml.safe_load(path.read_text())
    data["guards"]["cooldown"] = "10s"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _kill_web(project: Project) -> None:
    project.container("web").kill()


def _broken_deploy_unhealthy(project: Project) -> None:
    # The deploy first, as in life: had web failed first, a change probe reading taken
    # between the failure and the deploy (seen under load) would rightly call it no deploy.
    deploy(project, "web", BROKEN)
    (project.www["web"] / "healthy").unlink()  # the fault is not in the image at all


def _api_unhealthy(project: Project) -> None:
    (project.www["api"] / "healthy").unlink()  # no restart nor image cures it


#: The faults of each engine scenario, injected once each, in order.
FAULTS: dict[str, tuple[Callable[[Project], None], ...]] = {
    "docker_ladder": (_kill_web, _broken_deploy_unhealthy),
    # One incident climbing the rungs: restart (its verification fails), revert, page.
    "docker_ladder_climb": (_kill_web, _api_unhealthy),
}


def containers_agree(db: Path, project: Project) -> list[str]:
    """One container per service under its Compose name; each service that no escalated
    incident's page names is running its good image."""
    named = escalation_pages(db)
    out = []
    for service in SERVICES:
        found = project.client.containers.list(
            all=True, ignore_removed=True,
            filters={"label": [f"com.docker.compose.project={project.name}",
                               f"com.docker.compose.service={service}"]},
        )
        names = sorted(c.name for c in found)
        if names != [f"{project.name}-{service}-1"]:
            out.append(f"service {service} has containers {names}, expected exactly"
                       f" {project.name}-{service}-1")
        if service in named or len(found) != 1:
            continue
        container = found[0]
        if not container.attrs["State"]["Running"]:
            out.append(f"service {service} is stopped and no escalated incident's page names it")
        if GOOD not in container.image.tags:
            out.append(f"service {service} runs {container.image.tags} (not {GOOD}) and no"
                       " escalated incident's page names it")
    return out


def judge(db: Path, project: Project) -> list[str]:
    """crash_matrix's journal invariants and the containers' own check."""
    return judged(db, "containers_agree", lambda: containers_agree(db, project))


def run_engine_scenario(scenario: str, kill: KillPoint | None = None) -> Run:
    """A fresh Compose project and daemon through `scenario`, killed at `kill`."""
    began = time.monotonic()
    run = Run(scenario, kill)
    url = engine_url()
    with tempfile.TemporaryDirectory(prefix="crash-docker-") as tmp, contextlib.ExitStack() as es:
        folder = Path(tmp)
        log = folder / "commits.log"
        paging = pagers(es, log)[2]
        client = docker.DockerClient(base_url=url, timeout=60)
        es.callback(client.close)
        project = es.enter_context(compose_project(client, folder, prefix="wdcm"))
        daemon = DockerDaemon(project, url, ladder_policy(project), paging)
        es.callback(daemon.stop)
        crash = {} if kill is None else kill.environment()
        db = folder / "journal.db"
        daemon.start(crash)
        _until(lambda: revived(daemon) and _last_good(db, "web"), 30, "a baseline")
        for fault in FAULTS[scenario]:
            known = {r["id"] for r in _rows(db, "SELECT id FROM incidents")}
            fault(project)
            _until(lambda known=known: revived(daemon) and _fault_done(db, known),  # type: ignore[misc]
                   LADDER_BOUND, "final")
        _until(lambda: revived(daemon) and not _rows(
            db, "SELECT 1 FROM outbox WHERE status = 'pending'"), OUTBOX_BOUND, "pages sent")
        daemon.stop()
        read_commit_log(run, log, db)
        run.violations += judge(db, project)
    run.seconds = time.monotonic() - began
    return run


def _last_good(db: Path, service: str) -> bool:
    return bool(_rows(db, "SELECT 1 FROM snapshots WHERE table_name = ?",
                      (f"docker:last_good:{service}",)))
