"""Fault injectors for drills: on the sandbox, a real Docker engine, or a drill database.

Each injector does one thing a bad day does, through the same client the daemon's
actions use, and returns a line saying what it did (for the progress output and
the journal). None of them undoes its fault: the drill exists to see the daemon do
that. `wrong_image` recreates the service's container from the same create body
with another image, as a `docker compose up` of a bad tag would; it never pulls.

`unhealthy` is the fault docker-autoheal exists for: the container stays `running`
(not `paused`, not exited, so Docker's restart policy never fires) while its service
answers nothing, and an HTTP healthcheck turns `unhealthy` (one that only reads a
file keeps passing). `kill -STOP -1` inside freezes every process but PID 1 (behind an
init such as docker-init, that is the server), then SIGSTOP from the engine freezes
PID 1 itself: from an ancestor PID namespace SIGSTOP is forcibly delivered
(pid_namespaces(7)), so a server that *is* PID 1 (no init) freezes too, and so does
PID 1 of an image without `kill`. `docker restart` still ends it: a stopped process
acts on no SIGTERM, but the SIGKILL Docker sends after the stop timeout kills it, and
the container starts afresh. (The `pause` fault is the other case: a cgroup freeze
that Docker's state shows as `paused`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watchdog.actions.docker_spec import create_config, good_row
from watchdog.policy.drillspecs import DrillSpec
from watchdog.policy.identifiers import split_table
from watchdog.sandbox.control import SandboxControl

Injector = Callable[[DrillSpec], str]
FREEZE = ("kill", "-STOP", "-1")  # the watchdog's own argv, never the policy's


def sandbox_injector(control_url: str) -> Injector:
    """Injects the drill's sandbox fault through the sandbox's control API."""

    def inject(spec: DrillSpec) -> str:
        if spec.fault != "sandbox" or spec.kind is None:
            raise ValueError(f"the sandbox takes sandbox faults only, not {spec.fault}")
        SandboxControl(control_url).inject(spec.kind, **spec.body)
        return f"sandbox fault {spec.kind} {spec.body or ''}".rstrip()

    return inject


def docker_injector(connect: Callable[[], Any], project: str) -> Injector:
    """Injects kill, pause, unhealthy or wrong_image into a service of the Compose project."""

    def inject(spec: DrillSpec) -> str:
        client = connect()
        try:
            container = _container(client, project, spec.service or "")
            name = container.name
            if spec.fault == "kill":
                container.kill()
                return f"killed {name}"
            if spec.fault == "pause":
                container.pause()
                return f"paused {name}"
            if spec.fault == "unhealthy":
                return _freeze(container)
            if spec.fault == "wrong_image":
                return _wrong_image(client, project, container, spec.image or "")
            raise ValueError(f"a Docker drill target takes kill, pause, unhealthy or "
                             f"wrong_image, not {spec.fault}")
        finally:
            client.close()

    return inject


def _container(client: Any, project: str, service: str) -> Any:
    found = client.containers.list(all=True, filters={"label": [
        f"com.docker.compose.project={project}", f"com.docker.compose.service={service}",
    ]})
    if not found:
        raise LookupError(f"no container of service {service!r} in Compose project {project!r}")
    return min(found, key=lambda c: c.name)


def _freeze(container: Any) -> str:
    """SIGSTOP to every process of `container` (module docstring); what was frozen, in words."""
    import docker.errors  # loaded by a Docker drill only

    try:
        result = container.exec_run(list(FREEZE))  # all but PID 1 and the kill itself
        code, said = result.exit_code, bytes(result.output or b"").decode(errors="replace")
    except docker.errors.APIError as error:  # an engine that refuses the exec outright
        code, said = None, str(error)
    container.kill(signal="SIGSTOP")  # PID 1, from the engine's (ancestor) namespace
    name = container.name
    if code == 0:
        return f"froze {name}: SIGSTOP to PID 1 and to every other process"
    if "No such process" in said:
        return f"froze {name}: SIGSTOP to PID 1, its only process"
    if code == 127 or "not found" in said:
        return f"froze PID 1 of {name} (SIGSTOP); no kill in the image for the others, if any"
    if code is None:
        return f"froze PID 1 of {name} (SIGSTOP); the engine refused kill -STOP -1 for the rest"
    return f"froze PID 1 of {name} (SIGSTOP); kill -STOP -1 inside failed (exit {code})"


def _wrong_image(client: Any, project: str, container: Any, image: str) -> str:
    """Recreate `container` from `image` (a bad deploy), under its own name and labels."""
    attrs = container.attrs
    siblings = [c.attrs for c in client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"})]
    row = {**good_row(attrs, siblings), "image": image, "image_id": image}  # the tag, resolved now
    body, _networks = create_config(
        row, network_mode=str(attrs["HostConfig"].get("NetworkMode") or "default"), current=attrs
    )
    name = container.name
    container.remove(force=True)
    created = client.api.create_container_from_config(body, name)
    client.api.start(created["Id"])
    return f"recreated {name} from {image} (was {attrs['Config']['Image']})"


def postgres_injector(database_url: str) -> Injector:
    """Sets the drill's column of its configuration table to NULL in every row."""

    def inject(spec: DrillSpec) -> str:
        if spec.fault != "corrupt_config" or not spec.table or not spec.column:
            raise ValueError(f"a drill database takes corrupt_config only, not {spec.fault}")
        import psycopg  # loaded by a drill that uses it: 9 MB a Docker drill never needs
        from psycopg import sql

        statement = sql.SQL("UPDATE {} SET {} = NULL").format(
            sql.Identifier(*split_table(spec.table)), sql.Identifier(spec.column)
        )
        with psycopg.connect(database_url, autocommit=True) as connection:
            cursor = connection.execute(statement)
            return f"set {spec.table}.{spec.column} to NULL in {cursor.rowcount} rows"

    return inject
