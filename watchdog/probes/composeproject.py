"""Which Compose project the watchdog guards, and saying loudly when it holds nothing.

A wrong project name used to fail silently: the Docker probes filter containers by
the project label, an unknown project matches none, and every container signal
just vanished (`watchdog check` said "0 failing"). So:

- with no `WATCHDOG_COMPOSE_PROJECT` (unset or empty, as Compose passes
  `${WATCHDOG_COMPOSE_PROJECT:-}`), a daemon running in a container guards its
  own Compose project: the `com.docker.compose.project` label of the container
  whose id is its HOSTNAME (Docker's default hostname). The sidecar is then a
  service of the stack it guards (`docker compose -p STACK -f
  deploy/docker-compose.watchdog.yml up -d`), and it leaves its own container
  out of what it reads (`is_self`);
- a project with no container is an error that names it and the projects the
  engine does have (`empty_project_error`), at start and in `watchdog check`.

Blocking SDK calls: callers run them in a worker thread or before the event loop.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from watchdog.dockersocket import permission_advice

PROJECT_VARIABLE = "WATCHDOG_COMPOSE_PROJECT"
PROJECT_LABEL = "com.docker.compose.project"
log = structlog.get_logger("watchdog.compose")
_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")


class ProjectError(ValueError):
    """The guarded project cannot be found out; the message says what to set (a ValueError:
    the command line prints it and exits 2, as for any other bad setting)."""


def own_container_id(environ: Mapping[str, str] | None = None) -> str | None:
    """This process's container id, if it runs in one whose hostname Docker chose
    (the first 12 hex digits of the id); None on a host or with `hostname:` set."""
    hostname = (os.environ if environ is None else environ).get("HOSTNAME", "")
    return hostname if _CONTAINER_ID.fullmatch(hostname) else None


def is_self(container_id: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a container (by its full id) is the one this process runs in."""
    own = own_container_id(environ)
    return own is not None and container_id.startswith(own)


def own_project(client_factory: Callable[[], Any], container_id: str) -> str:
    """The Compose project label of container `container_id`, or a ProjectError."""
    import docker.errors  # only a daemon in a container that guards Docker gets here

    try:
        client = client_factory()  # the SDK asks the engine its API version here already
        try:
            labels = client.containers.get(container_id).labels or {}
        finally:
            client.close()
    except (docker.errors.DockerException, OSError) as exc:
        raise ProjectError(
            f"{PROJECT_VARIABLE} is not set and this container ({container_id}) cannot be "
            f"inspected to read its Compose project: {type(exc).__name__}: {exc}"
            f"{permission_advice(exc)}; set {PROJECT_VARIABLE} to the project to guard"
        ) from exc
    project = str(labels.get(PROJECT_LABEL) or "")
    if not project:
        raise ProjectError(
            f"{PROJECT_VARIABLE} is not set and this container ({container_id}) was not "
            f"started by Compose (no {PROJECT_LABEL} label); set {PROJECT_VARIABLE} to the "
            "project to guard"
        )
    return project


def guarded_environment(
    environ: Mapping[str, str], client_factory: Callable[[], Any]
) -> Mapping[str, str]:
    """`environ` with WATCHDOG_COMPOSE_PROJECT filled in from this container's own labels
    when it is unset or empty; unchanged when it is set or this is no container (the
    policy's own `${WATCHDOG_COMPOSE_PROJECT:-default}` then applies)."""
    if environ.get(PROJECT_VARIABLE, "").strip():
        return environ
    container_id = own_container_id(environ)
    rest = {k: v for k, v in environ.items() if k != PROJECT_VARIABLE}
    if container_id is None:
        return rest
    return {**rest, PROJECT_VARIABLE: own_project(client_factory, container_id)}


def engine_projects(client: Any) -> list[str]:
    """Every Compose project the engine has a container of, sorted."""
    found = client.containers.list(all=True, filters={"label": PROJECT_LABEL},
                                   ignore_removed=True)
    return sorted({str(c.labels.get(PROJECT_LABEL)) for c in found} - {"", "None"})


def empty_project_error(project: str, known: list[str]) -> str:
    """What to say when `project` has no container: it, and what the engine does have."""
    others = ", ".join(known) if known else "none"
    return (
        f"Compose project {project!r} has no containers (the engine's projects: {others}); "
        f"set {PROJECT_VARIABLE} to the stack's project"
    )


def project_problem(client: Any, project: str) -> str | None:
    """None when `project` has a container other than this process's own; else the error."""
    found = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"},
                                   ignore_removed=True)
    if any(not is_self(str(c.id)) for c in found):
        return None
    return empty_project_error(project, engine_projects(client))


def report_empty_projects(client_factory: Callable[[], Any], projects: list[str]) -> list[str]:
    """At start: each guarded project with no container, logged as an error naming the
    engine's projects; the errors are returned. An engine that does not answer is left
    to the `engine_up` signal, which pages for it."""
    import docker.errors

    try:
        client = client_factory()  # the SDK asks the engine its API version here already
        try:
            found = {project: project_problem(client, project) for project in projects}
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return []
    problems = {project: problem for project, problem in found.items() if problem}
    for project, problem in problems.items():
        log.error("compose_project_empty", project=project, error=problem)
    return list(problems.values())
