"""The Docker signals' metrics, read from the sandbox's control API instead of an engine.

The sandbox plays Docker for the demo and the tests: its supervisor knows, per
process, the Compose service it is a replica of, whether it runs, whether it has
answered since it started (Docker's "healthy" after "starting"), its version and
when it was created. So the policy's Docker signals (`container_healthy`,
`container_changed`, `docker_engine_up`, ...) are read here with the same series
(one per Compose service; `engine_up` alone) and the same meaning as on an engine,
and the daemon decides exactly as it does there: `healthy` feeds the last known
good records, `changed` routes a failure right after a deploy to scenario 1.

`changed` compares each replica's version with the service's last known good
record (the journal's `docker:last_good:<service>`, through `last_good`): the
seconds since the newest replica that differs was created, with what differs.
The sandbox restarts nothing by itself (no restart policy), so nothing in it
crash-loops: `crash_loop` reads 0, saying so. One `GET /services` answer, at most
`CACHE_SECONDS` old, serves every signal's run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx

from watchdog.model import Observation
from watchdog.policy.changes import CHANGED
from watchdog.policy.schema import AnySignal, DockerSignal
from watchdog.probes.stamp import Stamp, Stopwatch

#: The rows of a service's last known good record (None when none was recorded).
LastGoodRows = Callable[[str], Sequence[Mapping[str, Any]] | None]


class SandboxSource(Protocol):
    """The sandbox's control URL, and where its last known good records are (the sandbox
    orchestrator, on the journal)."""

    @property
    def url(self) -> str: ...

    def last_good(self, service: str) -> Sequence[Mapping[str, Any]] | None: ...
CACHE_SECONDS = 0.2
UNREACHABLE = "sandbox control API unreachable"


class SandboxServices:
    """`GET /services` of one sandbox, shared by its signals' probes."""

    def __init__(self, control_url: str, client: httpx.AsyncClient) -> None:
        self.url = control_url.rstrip("/") + "/services"
        self._client = client
        self._lock = asyncio.Lock()
        self._answer: tuple[float, dict[str, Any]] | None = None

    async def read(self, timeout: float) -> dict[str, Any]:
        """name → entry; raises httpx.HTTPError or ValueError when there is no answer."""
        async with self._lock:
            now = time.monotonic()
            if self._answer is not None and now - self._answer[0] <= CACHE_SECONDS:
                return self._answer[1]
            reply = await self._client.get(self.url, timeout=timeout)
            reply.raise_for_status()
            body = reply.json()
            if not isinstance(body, dict):
                raise ValueError(f"GET /services answered {type(body).__name__}, not an object")
            self._answer = (time.monotonic(), body)
            return body


class SandboxDockerProbe:
    """One Docker signal of the policy, read from the sandbox: one reading per service."""

    def __init__(
        self, signal: DockerSignal, services: SandboxServices, last_good: LastGoodRows | None
    ) -> None:
        self.signal = signal
        self._services = services
        self._last_good = last_good
        self._seen: tuple[str, ...] = ()

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        try:
            known = await self._services.read(self.signal.timeout)
        except (httpx.HTTPError, ValueError) as exc:
            return self._unreachable(watch.stop(), f"{type(exc).__name__}: {exc}")
        stamp = watch.stop()
        if self.signal.metric == "engine_up":
            return [stamp.reading(1.0, detail="sandbox supervisor answers")]
        grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for name, entry in sorted(known.items()):
            grouped.setdefault(str(entry.get("service", name)), []).append((name, entry))
        wanted = [s for s in self.signal.services or sorted(grouped) if s in grouped]
        self._seen = tuple(wanted)
        return [self._reading(stamp, s, grouped[s]) for s in wanted]

    def _reading(
        self, stamp: Stamp, service: str, replicas: list[tuple[str, dict[str, Any]]]
    ) -> Observation:
        metric = self.signal.metric
        detail = "; ".join(_words(name, e) for name, e in replicas)
        if metric == "changed":
            return self._changed(stamp, service, replicas)
        if metric == "crash_loop":
            return stamp.reading(0.0, series=service, detail="no restart policy in the sandbox: "
                                 f"nothing restarts by itself; {detail}")
        value = {
            "running": float(all(e.get("running") for _, e in replicas)),
            "healthy": float(all(e.get("running") and e.get("ready") for _, e in replicas)),
            "restarts": float(sum(int(e.get("restarts") or 0) for _, e in replicas)),
            "oom_killed": 0.0,
        }[metric]
        return stamp.reading(value, series=service, detail=detail)

    def _changed(
        self, stamp: Stamp, service: str, replicas: list[tuple[str, dict[str, Any]]]
    ) -> Observation:
        rows = self._last_good(service) if self._last_good is not None else None
        if not rows:
            return Observation(signal=self.signal.name, at=stamp.at, value=None, series=service,
                               detail="no last known good record yet")
        good = {str(r.get("name", "")): str(r.get("version", "")) for r in rows}
        found = []
        for name, entry in replicas:
            version, created = str(entry.get("version", "")), entry.get("created")
            if name in good and version != good[name] and isinstance(created, int | float):
                found.append((float(created), f"version{CHANGED}{version}, last good {good[name]}"))
        if not found:
            return Observation(signal=self.signal.name, at=stamp.at, value=None, series=service,
                               detail="runs its last known good version")
        created, words = max(found)
        return stamp.reading(max(0.0, stamp.at - created), series=service, detail=words)

    def _unreachable(self, stamp: Stamp, reason: str) -> list[Observation]:
        error = f"{UNREACHABLE}: {reason}"
        if self.signal.metric == "engine_up":
            return [stamp.failure(error, value=0.0)]
        return [stamp.failure(error, series=s) for s in self.signal.services or self._seen or ("",)]


def sandbox_docker_probes(
    signals: Sequence[AnySignal],
    names: set[str] | None,
    client: httpx.AsyncClient,
    sandbox: SandboxSource,
) -> tuple[set[str], list[SandboxDockerProbe]]:
    """The sandbox's probes of the Docker signals among `signals` (those in `names`, if
    given), and the names of the other signals, which the usual probes read."""
    every = {s.name for s in signals} if names is None else names
    docker = [s for s in signals if isinstance(s, DockerSignal) and s.name in every]
    services = SandboxServices(sandbox.url, client)
    probes = [SandboxDockerProbe(s, services, sandbox.last_good) for s in docker]
    return every - {s.name for s in docker}, probes


def _words(name: str, entry: Mapping[str, Any]) -> str:
    state = "running" if entry.get("running") else "stopped"
    ready = "" if not entry.get("running") or entry.get("ready") else " starting"
    return f"{name} {entry.get('version', '?')} {state}{ready} restarts={entry.get('restarts', 0)}"
