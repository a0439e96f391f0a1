"""`service.recover` on Docker: each container gets the remedy its own state calls for.

The share rules (half, every service down) see a stack whose services fail in
different ways: some exited, some running but unhealthy, some fine. Starting
everything does nothing to a running unhealthy container; restarting everything
bounces the healthy ones too. So each replica is judged from the engine's own
inspect data and from `failing`, the services whose health signal breached when
the plan was made (the core fills it in from the rule's evidence; this module
never reads a probe):

- not running (created, exited, dead) → started;
- running, and Docker says `unhealthy` or its service is failing → restarted;
- restarting under Docker's own restart policy → left to it;
- otherwise (healthy, starting, or running with no healthcheck) → left alone.

Each line of the output says what was done and why, for the journal and the page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from watchdog.actions.docker_engine import Engine
from watchdog.actions.docker_spec import health

Capture = Callable[[Any], str]
Ready = Callable[[Engine, Any, str], Awaitable[str]]


def remedy(attrs: Mapping[str, Any], service: str, failing: Collection[str]) -> tuple[str, str]:
    """(the verb to call or "", the words for the container's state and why)."""
    state = attrs.get("State") or {}
    docker_health = health(attrs)
    if state.get("Restarting"):
        return "", "restarting under Docker's restart policy, left to it"
    if not state.get("Running"):
        return "start", f"{state.get('Status') or 'stopped'} → started"
    if docker_health == "unhealthy":
        return "restart", "running, unhealthy → restarted (Docker health: unhealthy)"
    if service in failing:
        return "restart", "running, unhealthy → restarted (its health signal is down)"
    return "", f"{docker_health or 'running'}, left alone"


async def recover(
    engine: Engine,
    groups: Mapping[str, Sequence[Any]],
    ordered: Sequence[str],
    graph: Mapping[str, Mapping[str, str]],
    *,
    failing: Collection[str],
    stop_timeout: int,
    capture: Capture,
    ready: Ready,
) -> str:
    """Act on each replica of `ordered` (dependencies first), as `remedy` says.

    As `start` does, a service whose dependency is declared `service_healthy` is
    acted on only once that dependency, if this call started or restarted it, is ready.
    """
    lines: list[str] = []
    touched: set[str] = set()
    for service in ordered:
        for dep, condition in sorted(graph.get(service, {}).items()):
            if dep in touched and condition == "service_healthy":
                for container in groups[dep]:
                    await ready(engine, container, f"{dep}, before {service}")
        replicas = groups[service]
        for container in replicas:
            verb, words = remedy(container.attrs, service, failing)
            label = service if len(replicas) == 1 else str(container.name)
            if verb:
                capture(container)
                call = container.start if verb == "start" else partial(
                    container.restart, timeout=stop_timeout
                )
                await engine.call(f"{verb} {container.name} (service {service})", call)
                touched.add(service)
            lines.append(f"{label}: {words}")
    return "; ".join(lines)
