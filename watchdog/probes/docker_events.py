"""Docker's event stream as a trigger: a container dies, and the probes look at once.

Polling alone sees a crash up to one interval late. The engine announces every
container's `die`, `oom`, `start`, `health_status`, `kill` and `stop`, so a
daemon thread follows that stream (filtered to the project's label) and, on
each of them, runs every Docker probe on the daemon's loop and puts the result
on the daemon's queue, exactly where the scheduler puts its own. The scheduler
keeps polling: the stream only makes a change visible sooner, and when it
breaks (the engine restarts, the socket vanishes) nothing is lost but speed.
The thread then reconnects every second until stopped, and never raises.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

import structlog

from watchdog.model import Observation
from watchdog.probes.composeproject import PROJECT_LABEL
from watchdog.probes.docker import ClientFactory, DockerProbe

log = structlog.get_logger("watchdog.docker")

#: `destroy`: a service removed at run time stops being read at once (with discovery).
RELEVANT = frozenset({"die", "oom", "start", "health_status", "kill", "stop", "destroy"})
RETRY_SECONDS = 1.0
JOIN_SECONDS = 2.0


def action(event: dict[str, Any]) -> str:
    """The event's verb: "health_status: unhealthy" is a `health_status` event."""
    words = str(event.get("Action") or event.get("status") or "")
    return words.split(":", 1)[0].strip()


class DockerEvents:
    """Follows the engine's container events for one Compose project in a daemon thread.

    `events_seen` counts the relevant events received (each one triggered a
    refresh); `following` says whether the stream is open right now. Refreshes
    are coalesced per probe: a burst such as kill, die, stop queues one more run
    of a probe only if none is waiting to start, so a run that starts after the
    last event always follows.
    """

    def __init__(
        self,
        probes: list[DockerProbe],
        queue: asyncio.Queue[list[Observation]],
        loop: asyncio.AbstractEventLoop,
        client_factory: ClientFactory,
        project: str,
    ) -> None:
        self._probes = probes
        self._queue = queue
        self._loop = loop
        self._client_factory = client_factory
        self._project = project
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._client: Any = None
        self._stream: Any = None
        self._waiting: set[int] = set()
        self._futures: set[Future[None]] = set()
        self._thread: threading.Thread | None = None
        self._events_seen = 0
        self._lost = False

    @property
    def events_seen(self) -> int:
        return self._events_seen

    @property
    def following(self) -> bool:
        """True while the stream is open: changes show at once, not at the next poll."""
        return self._stream is not None

    def start(self) -> None:
        """Start following the stream; safe to call twice."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._follow, name=f"docker-events-{self._project}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the stream to unblock the thread, and wait for it at most ~2 s."""
        with self._lock:
            self._stopping.set()
            client, stream = self._client, self._stream
        _close(stream)
        _close(client)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(JOIN_SECONDS)
        with self._lock:
            pending, self._futures = self._futures, set()
        if not self._loop.is_closed():
            for future in pending:
                future.cancel()

    def _follow(self) -> None:
        """Connect, read until the stream ends, and again after a pause, until stopped."""
        while not self._stopping.is_set():
            try:
                self._read()
                if not self._stopping.is_set():
                    raise ConnectionError("the event stream ended")
            except Exception as exc:  # the engine's failures are logged and retried
                if self._stopping.is_set():
                    break
                if not self._lost:  # once per outage, not once a second
                    log.warning(
                        "docker_events_lost",
                        project=self._project,
                        error=f"{type(exc).__name__}: {exc}",
                        retry_seconds=RETRY_SECONDS,
                    )
                self._lost = True
            self._stopping.wait(RETRY_SECONDS)

    def _read(self) -> None:
        client = self._client_factory()
        try:
            stream = client.events(
                decode=True,
                filters={"type": "container", "label": [f"{PROJECT_LABEL}={self._project}"]},
            )
            with self._lock:
                if self._stopping.is_set():
                    _close(stream)
                    return
                self._client, self._stream = client, stream
            log.info("docker_events_following", project=self._project, after_outage=self._lost)
            if self._lost:  # events were missed while the stream was down
                self._lost = False
                self._refresh()
            for event in stream:
                if self._stopping.is_set():
                    return
                if isinstance(event, dict) and action(event) in RELEVANT:
                    self._events_seen += 1
                    self._refresh()
        finally:
            with self._lock:
                self._client = self._stream = None
            _close(client)

    def _refresh(self) -> None:
        """Queue one run of each probe on the loop, unless one is already waiting to start."""
        if self._loop.is_closed():
            return
        for probe in self._probes:
            with self._lock:
                if id(probe) in self._waiting:
                    continue
                self._waiting.add(id(probe))
            coroutine = self._observe(probe)
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            except RuntimeError:  # the loop closed under us: the daemon is shutting down
                coroutine.close()
                return
            with self._lock:
                self._futures.add(future)
            future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    async def _observe(self, probe: DockerProbe) -> None:
        with self._lock:
            self._waiting.discard(id(probe))
        try:
            observations = await probe.observe()
        except Exception:  # a probe bug must not kill the event path; polling reports it
            log.exception("docker_event_probe_failed", signal=probe.signal.name)
            return
        await self._queue.put(observations)


def _close(resource: Any) -> None:
    """Close a client or stream that may already be closed or half-open."""
    if resource is None:
        return
    try:
        resource.close()
    except Exception as exc:  # closing a dead socket may fail; it is going away anyway
        log.debug("docker_events_close_failed", error=str(exc))
