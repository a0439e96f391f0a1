"""Fault injectors for drills: on the sandbox, a real Docker engine, or a drill database.

Each injector does one thing a bad day does, through the same client the daemon's
actions use, and returns a line saying what it did (for the progress output and
the journal). None of them undoes its fault: the drill exists to see the daemon do
that. `wrong_image` recreates the service's container from the same create body
with another image, as a `docker compose up` of a bad tag would; it never pulls.
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
                # SIGSTOP to every process but PID 1 (an init) and kill itself: the container
                # stays running, its service answers nothing, its healthcheck fails.
                result = container.exec_run(list(FREEZE))
                return f"froze the processes of {name} (exit {result.exit_code})"
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
