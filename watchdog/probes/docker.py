"""The Compose project's containers as the Docker engine sees them, one series per service.

Containers are found by Compose's labels (project and service), never by name:
a name is whatever `container_name` or a rename made it, the labels are what
Compose itself uses. Stopped containers count (`all=True`): an exited replica
is exactly what the runbook's crash scenarios are about. One-off containers
(`docker compose run`) are not replicas of a service and are ignored.

The SDK is blocking, so each run makes its own client in a worker thread
(bounded by the signal's timeout and by `asyncio.wait_for`) and closes it: an
engine that restarted between runs needs no reconnect logic. An engine that
does not answer is data, not an exception: `engine_up` reads 0, every other
metric reads None with the reason, so a rule can tell "down" from "unknown".

`summarize` is the pure part (inspect dicts in, per-service verdicts out), so
the logic is tested without an engine; `CrashHistory` remembers what each
container looked like on earlier runs, which a single inspect cannot tell.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import structlog

from watchdog.dockersocket import permission_advice
from watchdog.model import Observation
from watchdog.policy.schema import DockerSignal
from watchdog.probes.composeproject import (
    PROJECT_LABEL,
    empty_project_error,
    engine_projects,
    is_self,
)
from watchdog.probes.stamp import Stamp, Stopwatch

SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
UNREACHABLE = "Docker engine unreachable"
NO_CONTAINER = "no container"

ClientFactory = Callable[[], Any]
log = structlog.get_logger("watchdog.probes.docker")

#: (project, service) pairs already reported as a target with no container: said once per
#: process, not once per Docker signal and run.
_REPORTED_MISSING: set[tuple[str, str]] = set()


def env_client_factory(timeout: float) -> ClientFactory:
    """Clients as the docker CLI would make them: DOCKER_HOST (and DOCKER_TLS_VERIFY,
    DOCKER_CERT_PATH) from the environment, else the local socket; every call
    bounded by `timeout` seconds so a hung engine cannot pile up worker threads."""

    def make() -> Any:
        import docker  # here, not at start-up: 6 MB that a daemon without Docker never needs

        return docker.DockerClient.from_env(timeout=timeout)

    return make


@dataclass(frozen=True, slots=True)
class Replica:
    """One container of a service, reduced to what the verdicts need."""

    id: str
    name: str
    service: str
    state: str
    health: str
    exit_code: int
    restarts: int
    oom: bool
    started_at: str
    finished_at: str

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def healthy(self) -> bool:
        """Running, and its healthcheck says healthy or it has none ("starting" is not yet)."""
        return self.running and self.health in ("", "healthy")

    def evidence(self) -> str:
        words = [self.name, self.state]
        if self.health and self.running:  # a stopped container's health is its last, stale one
            words.append(self.health)
        if not self.running:
            words.append(f"exit={self.exit_code}")
        words.append(f"restarts={self.restarts}")
        if self.oom:
            words.append("oom=true")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    """Every replica of one service; the verdicts hold for all of them at once."""

    service: str
    replicas: tuple[Replica, ...]

    @property
    def running(self) -> float:
        return 1.0 if self.replicas and all(r.running for r in self.replicas) else 0.0

    @property
    def healthy(self) -> float:
        return 1.0 if self.replicas and all(r.healthy for r in self.replicas) else 0.0

    @property
    def restarts(self) -> float:
        return float(sum(r.restarts for r in self.replicas))

    @property
    def oom_killed(self) -> float:
        return 1.0 if any(r.oom for r in self.replicas) else 0.0

    @property
    def detail(self) -> str:
        """Replicas in trouble first, so clipping never hides the one that matters."""
        if not self.replicas:
            return NO_CONTAINER
        ordered = sorted(self.replicas, key=lambda r: (r.healthy, r.name))
        return "; ".join(r.evidence() for r in ordered)


def replica(inspect: dict[str, Any]) -> Replica | None:
    """A Replica from `docker inspect` output; None for one-offs and unlabelled containers."""
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    service = labels.get(SERVICE_LABEL)
    if not service or str(labels.get(ONEOFF_LABEL, "False")).lower() == "true":
        return None
    state = inspect.get("State") or {}
    health = state.get("Health") or {}
    return Replica(
        id=str(inspect.get("Id", "")),
        name=str(inspect.get("Name", "")).lstrip("/"),
        service=str(service),
        state=str(state.get("Status", "unknown")),
        health=str(health.get("Status", "")),
        exit_code=int(state.get("ExitCode") or 0),
        restarts=int(inspect.get("RestartCount") or 0),
        oom=bool(state.get("OOMKilled")),
        started_at=str(state.get("StartedAt", "")),
        finished_at=str(state.get("FinishedAt", "")),
    )


def summarize(containers: list[dict[str, Any]]) -> dict[str, ServiceSummary]:
    """Inspect dicts grouped into one summary per Compose service, by service name."""
    grouped: dict[str, list[Replica]] = {}
    for inspect in containers:
        found = replica(inspect)
        if found is not None:
            grouped.setdefault(found.service, []).append(found)
    return {
        service: ServiceSummary(service, tuple(sorted(replicas, key=lambda r: r.name)))
        for service, replicas in sorted(grouped.items())
    }


@dataclass(frozen=True, slots=True)
class Sample:
    """What one container looked like at one run: enough to tell a restart or a death."""

    at: float
    restart_count: int
    started_at: str
    finished_at: str
    exit_code: int


def transitions(before: Sample, after: Sample) -> int:
    """Restarts and deaths between two samples of one container.

    The restart policy's restarts between two runs all show in RestartCount,
    even when several happened; a manual start (which resets RestartCount) or a
    death that stays dead shows as a new StartedAt or FinishedAt. One cycle moves
    all three at once, so the largest of them is counted, never their sum.
    """
    restarted = max(0, after.restart_count - before.restart_count)
    started = int(after.started_at != before.started_at)
    died = int(after.finished_at != before.finished_at)
    return max(restarted, started, died)


class CrashHistory:
    """Per-container samples over the last `window` seconds (plus one before, as a baseline)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: dict[str, deque[Sample]] = {}
        #: Deaths the engine remembers from before the first sample (`seed`).
        self._earlier: dict[str, list[float]] = {}

    def seed(self, deaths: dict[str, list[float]]) -> None:
        """Deaths that happened before this process sampled the container (from the
        engine's event log): a restarted daemon still knows a crash loop it did not watch
        begin, instead of reading it as quiet for a whole window."""
        for container_id, times in deaths.items():
            self._earlier[container_id] = sorted(times)

    def record(self, container_id: str, sample: Sample) -> None:
        samples = self._samples.setdefault(container_id, deque())
        if samples and sample.at < samples[-1].at:
            return  # a concurrent run that finished late: its answer is older than ours
        samples.append(sample)
        horizon = sample.at - self.window
        while len(samples) > 1 and samples[1].at < horizon:
            samples.popleft()

    def count(self, container_id: str, now: float) -> int:
        """Restarts and deaths seen in samples newer than `now - window`; the first sample
        of a container has nothing to compare with and counts none."""
        horizon = now - self.window
        earlier = sum(1 for at in self._earlier.get(container_id, ()) if at >= horizon)
        return earlier + sum(
            transitions(before, after)
            for before, after in pairwise(self._samples.get(container_id, ()))
            if after.at >= horizon
        )

    def keep_only(self, container_ids: Iterable[str]) -> None:
        """Forget removed containers, so a long-lived daemon does not grow."""
        alive = set(container_ids)
        for gone in set(self._samples) - alive:
            del self._samples[gone]
        for gone in set(self._earlier) - alive:
            del self._earlier[gone]


@dataclass(frozen=True, slots=True)
class _Answer:
    """One run's answer from the engine: inspect dicts and when they were read."""

    containers: list[dict[str, Any]]
    at: float
    #: Deaths per container id from the engine's event log before `at` (first run only).
    deaths: dict[str, list[float]] | None = None
    #: When the project has no container: every project the engine has (for the error).
    known_projects: list[str] | None = None


class DockerProbe:
    """Reads one `DockerSignal`: one Observation per service, or `engine_up` alone."""

    def __init__(self, signal: DockerSignal, client_factory: ClientFactory) -> None:
        self.signal = signal
        self._client_factory = client_factory
        self._history = CrashHistory(signal.window)
        self._seen_services: tuple[str, ...] = ()
        self._seeded = False

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        timeout = self.signal.timeout
        call = self._ping if self.signal.metric == "engine_up" else self._list
        import docker.errors  # loaded by the first probe that runs, not at start-up

        try:
            answer = await asyncio.wait_for(asyncio.to_thread(call), timeout)
        except TimeoutError:
            return self._unreachable(watch.stop(), f"no answer within {timeout:g} s")
        except (docker.errors.DockerException, OSError) as exc:
            advice = permission_advice(exc)  # a wrong DOCKER_GID says which one is right
            return self._unreachable(watch.stop(), f"{type(exc).__name__}: {exc}{advice}")
        stamp = watch.stop()
        if answer is None:
            return [stamp.reading(1.0, detail="engine answers ping")]
        return self._readings(stamp, answer)

    def _client(self) -> Any:
        """The factory's client, its requests bounded by this signal's timeout whatever the
        factory chose: a run given up by `wait_for` must not leave its thread hanging long."""
        client = self._client_factory()
        limit = self.signal.timeout
        client.api.timeout = min(float(client.api.timeout or limit), limit)
        return client

    def _ping(self) -> None:
        client = self._client()
        try:
            client.ping()
        finally:
            client.close()

    def _list(self) -> _Answer:
        client = self._client()
        try:
            found = client.containers.list(
                all=True,
                filters={"label": [f"{PROJECT_LABEL}={self.signal.project}", SERVICE_LABEL]},
                ignore_removed=True,
            )
            # The sidecar started in the project it guards never reads (nor counts) itself.
            containers = [dict(c.attrs) for c in found if not is_self(str(c.id))]
            at = time.time()
            if not containers:
                return _Answer([], at, known_projects=engine_projects(client))
            deaths = None
            if self.signal.metric == "crash_loop" and not self._seeded:
                deaths = self._deaths_before(client, at)
            return _Answer(containers, at, deaths)
        finally:
            client.close()

    def _deaths_before(self, client: Any, at: float) -> dict[str, list[float]]:
        """The project's container deaths in the last window, from the engine's own event
        log (it keeps the recent ones): what a daemon started mid-loop did not watch."""
        import docker.errors

        deaths: dict[str, list[float]] = {}
        try:
            events = client.events(
                # `until` to the nanosecond (the engine takes "seconds.fraction"): a whole
                # second past `at` would make the engine hold the answer until it comes.
                since=int(at - self.signal.window), until=f"{at:.9f}", decode=True,
                filters={"type": "container", "event": "die",
                         "label": f"{PROJECT_LABEL}={self.signal.project}"},
            )
            for event in events:
                when = float(event.get("timeNano", 0)) / 1e9 or float(event.get("time", 0))
                if when < at:
                    deaths.setdefault(str(event.get("id", "")), []).append(when)
        except (docker.errors.DockerException, OSError) as exc:
            # Only an addition to the count: an engine (or socket proxy) that will not
            # give its event log must not make the containers' listing read as a failure.
            log.warning("docker_events_unread", signal=self.signal.name, error=str(exc))
        return deaths

    def _readings(self, stamp: Stamp, answer: _Answer) -> list[Observation]:
        if answer.known_projects is not None:  # a wrong project is loud, never silence
            error = empty_project_error(self.signal.project, answer.known_projects)
            return [stamp.failure(error, series=s) for s in self.signal.services or ("",)]
        summaries = summarize(answer.containers)
        if answer.deaths is not None and not self._seeded:
            self._history.seed(answer.deaths)
            self._seeded = True
        wanted = [s for s in self.signal.services or summaries if self._present(s, summaries)]
        self._seen_services = tuple(wanted)
        replicas = [r for s in summaries.values() for r in s.replicas]
        for r in replicas:
            self._history.record(
                r.id, Sample(answer.at, r.restarts, r.started_at, r.finished_at, r.exit_code)
            )
        self._history.keep_only(r.id for r in replicas)
        observations: list[Observation] = []
        for service in wanted:
            summary = summaries.get(service, ServiceSummary(service, ()))
            value, detail = self._value(summary, answer.at)
            observations.append(stamp.reading(value, series=service, detail=detail))
        return observations

    def _present(self, service: str, summaries: dict[str, ServiceSummary]) -> bool:
        """Whether `service` gets a reading: it has a container, or it had one on an
        earlier run (gone since, it reads as down). A target that never had one in the
        project is a configuration mistake, said once, and feeds no rule."""
        if service in summaries or service in self._seen_services:
            return True
        key = (self.signal.project, service)
        if key not in _REPORTED_MISSING:
            _REPORTED_MISSING.add(key)
            log.warning("target_without_container", service=service,
                        project=self.signal.project, services=sorted(summaries),
                        hint="a service named in the policy has no container in the guarded "
                        "project: check its name and WATCHDOG_COMPOSE_PROJECT")
        return False

    def _value(self, summary: ServiceSummary, now: float) -> tuple[float, str]:
        metric = self.signal.metric
        if metric == "crash_loop":
            count = sum(self._history.count(r.id, now) for r in summary.replicas)
            window = f"{self.signal.window:g} s"
            return float(count), f"{count} restarts/deaths in {window}: {summary.detail}"
        value = {
            "running": summary.running,
            "healthy": summary.healthy,
            "restarts": summary.restarts,
            "oom_killed": summary.oom_killed,
        }[metric]
        return value, summary.detail

    def _unreachable(self, stamp: Stamp, reason: str) -> list[Observation]:
        error = f"{UNREACHABLE}: {reason}"
        if self.signal.metric == "engine_up":
            return [stamp.failure(error, value=0.0)]
        series = self.signal.services or self._seen_services or ("",)
        return [stamp.failure(error, series=service) for service in series]
