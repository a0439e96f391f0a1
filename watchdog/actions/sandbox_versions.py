"""The sandbox as the engine's stand-in for scenario 1: versions, last good, dependents, logs.

On a real stack the Docker orchestrator records each healthy service's image and
configuration (`record_last_good`), recreates it from that record (`revert`),
reads the Compose graph from the containers' labels (`dependents_of`) and keeps
the failing containers' logs (`service.evidence`). The sandbox has the same facts
behind its control API: each process runs a version, `GET /services` says which,
since when, whether it answered, and what its Compose service depends on, and
`GET /services/<name>/logs` is its output. This base class reads them and keeps
the last good record in the same journal table the Docker reverter uses
(`docker:last_good:<service>`), so the daemon's decisions (the `changed` reading,
`ServiceLastGood`, the scenario-1 plan) are the very ones it makes on Docker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from watchdog.actions.base import ActionFailed, ActionOutcome, services_param
from watchdog.actions.docker import LAST_GOOD_TABLE, SnapshotStore
from watchdog.actions.docker_evidence import LOG_LINES, evidence_outcome
from watchdog.actions.docker_spec import dependents, dependents_of_all
from watchdog.actions.schemaguard import SchemaGuard
from watchdog.model import Step
from watchdog.scrub import scrub_text


class SandboxControl:
    """The sandbox's control API, and what scenario 1 reads and does through it."""

    def __init__(
        self,
        control_url: str,
        client: httpx.AsyncClient,
        *,
        snapshots: SnapshotStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = self.url = control_url.rstrip("/")
        self._client = client
        self._snapshots = snapshots
        self._clock = clock

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._client.request(method, self._url + path, json=body, timeout=15.0)
        except httpx.HTTPError as error:
            raise ActionFailed(
                f"sandbox control {method} {path}: {type(error).__name__}: {error}"
            ) from error
        if not response.is_success:
            raise ActionFailed(
                f"sandbox control {method} {path} answered {response.status_code}: "
                f"{response.text[:200]}"
            )
        return response.json()

    async def _services(self) -> dict[str, Any]:
        body = await self._request("GET", "/services")
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _replicas(known: dict[str, Any], service: str) -> list[tuple[str, dict[str, Any]]]:
        """The processes of one Compose service (`service` as `GET /services` names it)."""
        return sorted((n, e) for n, e in known.items() if e.get("service", n) == service)

    @staticmethod
    def _graph(known: dict[str, Any]) -> dict[str, dict[str, str]]:
        """service → {dependency: condition}, the shape `docker_spec` reads from labels."""
        graph: dict[str, dict[str, str]] = {}
        for name, entry in known.items():
            deps = graph.setdefault(str(entry.get("service", name)), {})
            for dep in entry.get("depends_on") or []:
                deps.setdefault(str(dep), "service_started")
        return graph

    # Dependencies -------------------------------------------------------------

    async def dependents_of(self, service: str) -> list[str]:
        """Every service that depends on this one, directly or not, in the order to stop."""
        try:
            return dependents(self._graph(await self._services()), service)
        except ValueError as error:
            raise ActionFailed(f"the sandbox's dependency graph: {error}") from error

    async def dependency_map(self) -> dict[str, list[str]]:
        """service → every service depending on it: the impact's graph."""
        graph = self._graph(await self._services())
        return {service: dependents(graph, service) for service in graph}

    # Last known good ------------------------------------------------------------

    def last_good(self, service: str) -> list[dict[str, Any]] | None:
        """The service's last known good record: what the `changed` reading compares with."""
        table = LAST_GOOD_TABLE.format(service=service)
        found = self._snapshots.latest_snapshot(table) if self._snapshots else None
        return None if found is None else list(found.rows)

    async def record_last_good(self, service: str) -> bool:
        """Keep the version each replica runs now; True if that was new.

        Only replicas that run and have answered count: a process still starting,
        or a release that exits at start-up, is never recorded as good.
        """
        if self._snapshots is None:
            return False
        replicas = self._replicas(await self._services(), service)
        if not replicas or not all(e.get("running") and e.get("ready") for _, e in replicas):
            return False
        rows = [{"name": name, "version": str(e.get("version", ""))} for name, e in replicas]
        table = LAST_GOOD_TABLE.format(service=service)
        return self._snapshots.save_snapshot(table, rows, at=self._clock()) is not None

    async def revert(self, service: str) -> str:
        """Redeploy each replica's last known good version, waiting until it answers.

        A replica already running its good version and answering is left alone, so
        a second revert is a no-op.
        """
        table = LAST_GOOD_TABLE.format(service=service)
        snapshot = self._snapshots.latest_snapshot(table) if self._snapshots else None
        if snapshot is None or not snapshot.rows:
            raise ActionFailed(
                f"cannot revert {service}: no last known good version was recorded for it "
                f"(snapshot table {table!r} is empty)"
            )
        known = await self._services()
        done = []
        for row in sorted(snapshot.rows, key=lambda r: str(r["name"])):
            name, good = str(row["name"]), str(row["version"])
            entry = known.get(name) or {}
            was = str(entry.get("version", "?"))
            if was == good and entry.get("running") and entry.get("ready"):
                done.append(f"{name} already runs {good}, left alone")
                continue
            answer = await self._request("POST", f"/services/{name}/deploy", {"version": good})
            pid = answer.get("pid") if isinstance(answer, dict) else None
            done.append(f"{name} {was} → {good} (pid {pid}), answering")
        return f"reverted {service} to its last known good version: " + "; ".join(done)

    # Evidence -------------------------------------------------------------------

    async def evidence(self, step: Step) -> ActionOutcome:
        """The runbook's first checklist items: each failing process's last `lines`
        output lines and its dependents' status, scrubbed, before anything is touched."""
        services = services_param(step)
        lines = int(step.param_map().get("lines", LOG_LINES))
        known = await self._services()
        logs: dict[str, list[str]] = {}
        for service in services:
            for name, _ in self._replicas(known, service):
                body = await self._request("GET", f"/services/{name}/logs?lines={lines}")
                text = body.get("lines", []) if isinstance(body, dict) else []
                logs[name] = [scrub_text(str(line)) for line in text][-lines:]
        status = _dependents_status(self._graph(known), known, services)
        return evidence_outcome(logs, status, lines, services, unit="process")


class SandboxSchemaGuard(SchemaGuard):
    """The migration guard where the sandbox plays PostgreSQL with no database URL.

    The sandbox's database is a fixed set of tables with no `schema_migrations`:
    its schema never changes, so no migration can have run since a version was
    recorded, which is exactly the guard's question (a daemon given a real
    WATCHDOG_DATABASE_URL asks the real table instead).
    """

    async def migrations_since(self, at: float) -> list[tuple[str, float]]:
        return []


def _dependents_status(
    graph: dict[str, dict[str, str]], known: dict[str, Any], services: Sequence[str]
) -> dict[str, str]:
    """Each dependent service (in the order to stop them) and its processes' states."""
    status = {}
    for service in dependents_of_all(graph, services):
        states = [
            f"{name} {_state(entry)}"
            for name, entry in sorted(known.items())
            if entry.get("service", name) == service
        ]
        status[service] = "; ".join(states) or "no process"
    return status


def _state(entry: dict[str, Any]) -> str:
    if not entry.get("running"):
        return f"stopped ({entry.get('version', '?')})"
    answering = "" if entry.get("ready") else ", not answering"
    return f"running {entry.get('version', '?')}{answering}"
