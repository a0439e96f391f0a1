"""Scenario 1's pre-rollback checklist, read from the engine before anything is touched.

The runbook's first two items are `docker compose logs <service> --tail=100` and
"check dependent services status". Once the failed service is stopped and
reverted its logs go with its container, so `service.evidence` keeps them first:
the last `lines` log lines of each failing replica and the state of every service
that depends on it, journaled as the step's evidence (the incident's timeline,
`watchdog report`). Logs may print a password or a token: everything kept goes
through the process's scrubber. It only reads, so it is safe and idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from watchdog.actions.base import ActionOutcome, services_param
from watchdog.actions.docker_engine import Engine, connect
from watchdog.actions.docker_spec import (
    dependency_graph,
    dependents_of_all,
    is_replica,
    name,
    service_of,
    state_words,
)
from watchdog.model import Step
from watchdog.scrub import scrub_text

LOG_LINES = 100


class DockerEvidence:
    """Logs and dependents' status of one Compose project's services, through the engine."""

    def __init__(self, client_factory: Callable[[], Any], project: str) -> None:
        self._factory = client_factory
        self.project = project

    async def capture(self, step: Step) -> ActionOutcome:
        services = services_param(step)
        lines = int(step.param_map().get("lines", LOG_LINES))
        async with connect(self._factory, self.project) as engine:
            containers = [c for c in await engine.project_containers() if is_replica(c.attrs)]
            logs = {}
            for container in containers:
                if service_of(container.attrs) in services:
                    logs[name(container.attrs)] = await tail_logs(engine, container, lines)
        graph = dependency_graph(c.attrs for c in containers)
        status = _dependents_status(graph, containers, services)
        return evidence_outcome(logs, status, lines, services, unit="container")


def evidence_outcome(
    logs: dict[str, list[str]],
    status: dict[str, str],
    lines: int,
    services: list[str],
    *,
    unit: str,
) -> ActionOutcome:
    """The evidence step's outcome, the same on any backend: what was kept, scrubbed."""
    said = [
        f"{who}: {len(text)} log line(s) kept" + (f", last {text[-1]!r}" if text else "")
        for who, text in sorted(logs.items())
    ] or [f"no {unit} of {', '.join(services)} to read logs from"]
    deps = "; ".join(f"{s} {w}" for s, w in status.items()) or "no service depends on it"
    output = "; ".join(said) + f"; dependents: {deps}"
    return ActionOutcome(
        True, scrub_text(output), {"logs": logs, "dependents": status, "lines": lines}
    )


async def tail_logs(engine: Engine, container: Any, lines: int) -> list[str]:
    raw = await engine.call(
        f"read the last {lines} log lines of {container.name}",
        partial(container.logs, stdout=True, stderr=True, tail=lines),
    )
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return [scrub_text(line) for line in text.splitlines()][-lines:]


def _dependents_status(
    graph: dict[str, dict[str, str]], containers: Sequence[Any], services: Sequence[str]
) -> dict[str, str]:
    """Each dependent service (in the order to stop them) and its replicas' states."""
    status = {}
    for service in dependents_of_all(graph, services):
        states = [
            f"{name(c.attrs)} {state_words(c.attrs)}"
            for c in containers
            if service_of(c.attrs) == service
        ]
        status[service] = "; ".join(states) or "no container"
    return status
