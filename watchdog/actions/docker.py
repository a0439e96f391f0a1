"""The Docker orchestrator: restart, stop, start and revert a Compose stack's services.

It implements the same `Orchestrator` Protocol as the sandbox, so the daemon
acts on the real stack exactly as it does in the drills. Containers are found
only by Compose's labels (project and service, every replica, one-offs left
out), never by name, so nothing outside the project is ever touched. Protected
(stateful) services are refused here a second time, whatever the registry let
through. Each call pings the engine first and fails whole when it does not
answer; every SDK error becomes one `ActionFailed` at `docker_engine`'s edge.

`revert` recreates a service's containers from the last configuration the
daemon saw healthy (`record_last_good`, kept in the journal's snapshots): the
old container is parked under another name, not removed, until the new one is
healthy, and is put back if it never is, so the service is never silently gone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from watchdog.actions.base import ActionFailed
from watchdog.actions.docker_engine import Engine, connect
from watchdog.actions.docker_recover import recover
from watchdog.actions.docker_revert import Reverting, log_orphaned_revert
from watchdog.actions.docker_spec import (
    PREV_MARK,
    dependency_graph,
    dependents,
    gives_up,
    good_row,
    has_healthcheck,
    health,
    is_replica,
    name,
    number,
    order,
    service_of,
    short_id,
    state_words,
    summary,
)

if TYPE_CHECKING:
    import docker

log = structlog.get_logger("watchdog.docker")

LAST_GOOD_TABLE = "docker:last_good:{service}"
SETTLE_SECONDS = 3.0  # a container without a healthcheck counts as up after this long running
CRASH_LOOP_RESTARTS = 3  # as the policies' crash-loop rule: 3 restarts and it is not coming up


class SnapshotRows(Protocol):
    @property
    def rows(self) -> list[dict[str, Any]]: ...

    @property
    def at(self) -> float: ...


class SnapshotStore(Protocol):
    """Where last known good container configurations are kept (the journal's snapshots)."""

    def save_snapshot(
        self, table: str, rows: list[dict[str, Any]], *, at: float, keep: int = 10
    ) -> object:
        """Store the rows unless they equal the newest version; None when nothing was stored."""
        ...

    def latest_snapshot(self, table: str) -> SnapshotRows | None: ...


class DockerOrchestrator:
    """Compose services of one project, acted on through the Docker engine API.

    `client_factory` is called once per operation (a fresh client survives an
    engine restart); `health_timeout` bounds how long a revert and a start with
    `service_healthy` dependencies wait for health. `inspected` holds, after
    each call, the full inspect data of every container it touched, as it was
    just before: the returned text only summarises it.
    """

    def __init__(
        self,
        client_factory: Callable[[], docker.DockerClient],
        project: str,
        *,
        snapshots: SnapshotStore,
        protected: Sequence[str] = (),
        health_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 0.25,
    ) -> None:
        self._factory = client_factory
        self.project = project
        self._snapshots = snapshots
        self._protected = frozenset(protected)
        self._health_timeout = health_timeout
        self._clock = clock
        self._poll = poll_interval
        self._background: set[asyncio.Task[str]] = set()
        self.inspected: dict[str, dict[str, Any]] = {}

    # The Orchestrator Protocol ----------------------------------------------

    async def restart(self, services: Sequence[str], *, stop_timeout: float) -> str:
        """Restart every replica, dependencies first (as `docker compose restart`)."""
        return await self._each("restart", services, stop_timeout, dependents_first=False)

    async def stop(self, services: Sequence[str], *, stop_timeout: float) -> str:
        """Stop every replica; a service's dependents before the services it depends on."""
        return await self._each("stop", services, stop_timeout, dependents_first=True)

    async def _each(
        self, verb: str, services: Sequence[str], stop_timeout: float, *, dependents_first: bool
    ) -> str:
        self._refuse_protected(verb, services)
        seconds = _whole_seconds(stop_timeout)
        async with self._engine() as engine:
            groups, graph = await self._resolve(engine, services)
            lines = []
            for svc in _ordered(graph, services, dependents_first=dependents_first):
                done = []
                for container in groups[svc]:
                    done.append(self._capture(container))
                    await engine.call(
                        f"{verb} {container.name} (service {svc})",
                        partial(getattr(container, verb), timeout=seconds),
                    )
                past = "restarted" if verb == "restart" else "stopped"
                lines.append(f"{past} {svc}: " + ", ".join(done))
            return "; ".join(lines)

    async def start(self, services: Sequence[str]) -> str:
        """Start every replica, dependencies first.

        As Compose does, a service whose dependency is declared
        `service_healthy` starts only once that dependency (started in this
        same call) is healthy, within `health_timeout`.
        """
        async with self._engine() as engine:
            groups, graph = await self._resolve(engine, services)
            lines = []
            started: set[str] = set()
            for svc in _ordered(graph, services, dependents_first=False):
                for dep, condition in sorted(graph.get(svc, {}).items()):
                    if dep in started and condition == "service_healthy":
                        for container in groups[dep]:
                            await self._wait_ready(engine, container, f"{dep}, before {svc}")
                done = []
                for container in groups[svc]:
                    done.append(self._capture(container))
                    await engine.call(f"start {container.name} (service {svc})", container.start)
                started.add(svc)
                lines.append(f"started {svc}: " + ", ".join(done))
            return "; ".join(lines)

    async def recover(
        self, services: Sequence[str], *, failing: Sequence[str], stop_timeout: float
    ) -> str:
        """Restart the failing, start the stopped, leave the healthy alone (docker_recover)."""
        async with self._engine() as engine:
            groups, graph = await self._resolve(engine, services)
            ordered = _ordered(graph, services, dependents_first=False)
            return await recover(
                engine, groups, ordered, graph, failing=frozenset(failing),
                stop_timeout=_whole_seconds(stop_timeout), capture=self._capture,
                ready=self._wait_ready,
            )

    async def check_exist(self, services: Sequence[str]) -> None:
        """Preflight: every named service has a container in the project; touches nothing."""
        async with self._engine() as engine:
            project = await engine.project_containers()
        self._group(project, services)

    # Dependencies -----------------------------------------------------------

    async def dependency_order(self, services: Sequence[str]) -> list[str]:
        """`services` with every dependency before its dependents (the order to start)."""
        async with self._engine() as engine:
            _, graph = await self._resolve(engine, services)
            return _ordered(graph, services, dependents_first=False)

    async def dependency_map(self) -> dict[str, list[str]]:
        """service → every service depending on it (directly or not): the impact's graph."""
        async with self._engine() as engine:
            project = await engine.project_containers()
        graph = dependency_graph(c.attrs for c in project if is_replica(c.attrs))
        return {service: dependents(graph, service) for service in graph}  # ValueError: a cycle

    async def dependents_of(self, service: str) -> list[str]:
        """Every service that depends on this one, directly or not, in the order to stop."""
        async with self._engine() as engine:
            _, graph = await self._resolve(engine, [service])
            try:
                return dependents(graph, service)
            except ValueError as error:
                raise ActionFailed(f"project {self.project!r}: {error}") from error

    # Last known good ----------------------------------------------------------

    async def record_last_good(self, service: str) -> bool:
        """Keep how the service's replicas are configured now; True if that was new.

        The daemon calls this once it has verified the service healthy, so the
        newest row set is always the last configuration that worked.
        """
        async with self._engine() as engine:
            project = await engine.project_containers()
            groups = self._group(project, [service])
            attrs = [c.attrs for c in project]
            rows = [good_row(c.attrs, attrs) for c in groups[service]]
        table = LAST_GOOD_TABLE.format(service=service)
        return self._snapshots.save_snapshot(table, rows, at=self._clock()) is not None

    async def revert(self, service: str) -> str:
        """Recreate each replica from its last known good row, or put the old one back.

        A replica already running the good image and healthy is left alone, so
        a second revert is a no-op; a replica whose container is gone is
        created from its row (the record, not a container, says it existed).
        The work goes on in a task of its own: a step timeout that cancels the
        caller must not cut a recreate in half, so it finishes (healthy, or the
        previous container back) regardless.
        """
        self._refuse_protected("recreate (revert)", [service])
        table = LAST_GOOD_TABLE.format(service=service)
        snapshot = self._snapshots.latest_snapshot(table)
        if snapshot is None or not snapshot.rows:
            raise ActionFailed(
                f"cannot revert {service}: no last known good configuration was "
                f"recorded for it (snapshot table {table!r} is empty)"
            )
        rows = sorted(snapshot.rows, key=lambda r: (int(r.get("number") or 0), str(r["name"])))
        task = asyncio.create_task(self._revert(service, rows), name=f"revert {service}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(log_orphaned_revert)
            raise

    async def drain(self) -> None:
        """Wait for reverts whose callers stopped waiting: a shutdown must not cut one in half."""
        while self._background:
            await asyncio.wait(set(self._background))

    async def _revert(self, service_name: str, rows: list[dict[str, Any]]) -> str:
        self.inspected = {}
        async with self._engine() as engine:
            reverting = Reverting(
                engine, service_name, ready=self._wait_ready, capture=self._capture
            )
            return await reverting.run(rows)

    async def _wait_ready(self, engine: Engine, container: Any, what: str) -> str:
        """Until Docker says healthy (or, with no healthcheck, running for 3 s); else fail.

        It fails as soon as the answer is known rather than at `health_timeout`:
        exited with no restart policy to bring it back; "unhealthy", which
        Docker reports only once the healthcheck's own retries and start period
        are spent (Compose's `service_healthy` gives up there too); or
        restarted `CRASH_LOOP_RESTARTS` times (Docker's back-off makes that
        about a second).
        """
        deadline = time.monotonic() + self._health_timeout
        started_at, since = "", 0.0
        while True:
            await engine.call(f"inspect {what}", container.reload)
            attrs = container.attrs
            state = attrs.get("State") or {}
            if has_healthcheck(attrs):
                if health(attrs) == "healthy":
                    return "healthy"
            elif state.get("Running") and not state.get("Restarting"):
                if state.get("StartedAt") != started_at:
                    started_at, since = str(state.get("StartedAt")), time.monotonic()
                elif time.monotonic() - since >= SETTLE_SECONDS:
                    return f"running for {SETTLE_SECONDS:g} s (no healthcheck)"
            restarts = int(attrs.get("RestartCount") or 0)
            why = ""
            if gives_up(attrs):
                why = "stopped"
            elif health(attrs) == "unhealthy":
                why = "reported unhealthy"
            elif restarts >= CRASH_LOOP_RESTARTS:
                why = f"is crash-looping ({restarts} restarts)"
            elif time.monotonic() >= deadline:
                why = f"not up within {self._health_timeout:g} s"
            if why:
                raise ActionFailed(f"{what} {why}: {state_words(attrs)}")
            await asyncio.sleep(self._poll)

    # Shared -------------------------------------------------------------------

    def _engine(self) -> AbstractAsyncContextManager[Engine]:
        return connect(self._factory, self.project)

    def _refuse_protected(self, verb: str, services: Sequence[str]) -> None:
        touched = sorted(set(services) & self._protected)
        if touched:
            raise ActionFailed(
                f"refusing to {verb} protected service(s) {touched} of project "
                f"{self.project!r}: they are stateful and this orchestrator never does that"
            )

    def _capture(self, container: Any) -> str:
        self.inspected[container.name] = dict(container.attrs)
        return summary(container.attrs)

    async def preview(self, verb: str, services: Sequence[str], *, stop_timeout: float) -> str:
        """The exact Engine API calls `verb` would make, for --dry-run; touches nothing."""
        async with connect(self._factory, self.project) as engine:
            groups, graph = await self._resolve(engine, services)
        ordered = _ordered(graph, list(groups), dependents_first=verb == "stop")
        seconds = _whole_seconds(stop_timeout)
        calls = []
        for service in ordered:
            for container in groups[service]:
                short, named = short_id(container.id), name(container.attrs)
                if verb == "restart":
                    calls.append(f"POST /containers/{short}/restart?t={seconds} ({named})")
                elif verb == "stop":
                    calls.append(f"POST /containers/{short}/stop?t={seconds} ({named})")
                elif verb == "start":
                    calls.append(f"POST /containers/{short}/start ({named})")
                elif verb == "recover":
                    calls.append(f"POST /containers/{short}/start if stopped, /restart?t={seconds}"
                                 f" if unhealthy or failing, else nothing ({named})")
                else:
                    snapshot = self._snapshots.latest_snapshot(
                        LAST_GOOD_TABLE.format(service=service)
                    )
                    good = (
                        "no last known good image"
                        if snapshot is None
                        else ("image " + short_id(str(snapshot.rows[0].get("image_id", "?"))))
                    )
                    calls.append(
                        f"POST /containers/{short}/stop, POST /containers/{short}/rename "
                        f"(to {named}{PREV_MARK}<time>), POST /containers/create?name={named} "
                        f"from {good}, POST /containers/<new>/start, wait healthy, "
                        f"DELETE /containers/{short}"
                    )
        return "; ".join(calls)

    async def _resolve(
        self, engine: Engine, services: Sequence[str]
    ) -> tuple[dict[str, list[Any]], dict[str, dict[str, str]]]:
        self.inspected = {}
        project = await engine.project_containers()
        groups = self._group(project, services)
        graph = dependency_graph(c.attrs for c in project if is_replica(c.attrs))
        return groups, graph

    def _group(self, project: list[Any], services: Sequence[str]) -> dict[str, list[Any]]:
        """The replicas of each service, by container number; unknown services fail."""
        replicas = [c for c in project if is_replica(c.attrs) and service_of(c.attrs)]
        groups = {
            s: sorted(
                (c for c in replicas if service_of(c.attrs) == s),
                key=lambda c: (number(c.attrs), name(c.attrs)),
            )
            for s in dict.fromkeys(services)
        }
        missing = [s for s, found in groups.items() if not found]
        if missing:
            known = sorted({service_of(c.attrs) for c in replicas})
            raise ActionFailed(
                f"no container of service(s) {missing} in Compose project {self.project!r}; "
                + (f"its services: {', '.join(known)}" if known else "it has no containers")
            )
        return groups


def _ordered(
    graph: Mapping[str, Mapping[str, str]], services: Sequence[str], *, dependents_first: bool
) -> list[str]:
    try:
        return order(graph, services, dependents_first=dependents_first)
    except ValueError as error:
        raise ActionFailed(str(error)) from error


def _whole_seconds(seconds: float) -> int:
    """The engine takes a stop timeout in whole seconds; never round a grace period down."""
    return max(0, math.ceil(seconds))
