"""Process management for the sandbox: the stand-in for Docker Compose.

Each service is a child process with a port fixed for the supervisor's lifetime (so a
restarted service is found where it was). Start waits until the service really answers,
stop escalates SIGTERM to SIGKILL after 2 s, and nothing restarts by itself: recovering
a crashed service is the watchdog's job, so the sandbox must not do it behind its back.

Each process runs a version (what an image tag is to Docker). A deploy replaces the
process with one of another version, recording when it was created; a version
deployed as failing exits at start-up with an error in its log (a bad release that
cannot come up), and so does every restart of it, until a good version is deployed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.sandbox import jsonhttp
from watchdog.sandbox.catalog import (
    DEPENDS_ON,
    HTTP_HEALTH_ROLES,
    INITIAL_VERSION,
    PORTLESS_ROLES,
    SERVICES,
    TCP_ROLES,
    compose_service,
    service_url,
)

START_TIMEOUT_SECONDS = 5.0
#: The whole stack at once: a dozen Python processes importing at the same time on a
#: loaded 2-core machine took longer than 5 s (the suite's crash matrix, beside other
#: work). Below SandboxStack's 20 s wait for the supervisor's line; a quick start
#: returns as soon as every service answers.
START_ALL_TIMEOUT_SECONDS = 15.0
STOP_GRACE_SECONDS = 2.0
#: Environment of a stub: its version, and whether that version fails at start-up.
VERSION_ENV = "WATCHDOG_SANDBOX_VERSION"
FAILS_ENV = "WATCHDOG_SANDBOX_FAILS"
#: Directory that contains the `watchdog` package, for the children's PYTHONPATH.
CODE_ROOT = Path(__file__).resolve().parents[2]


class UnknownServiceError(KeyError):
    """No service of that name (HTTP 404); the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class StartTimeoutError(RuntimeError):
    """A started service did not answer in time (HTTP 504); names the service."""


def free_port() -> int:
    """A port the kernel considers free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((jsonhttp.HOST, 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """Environment for children: our code importable, output unbuffered for the logs."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{CODE_ROOT}{os.pathsep}{path}" if path else str(CODE_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def catches_sigusr1(pid: int) -> bool:
    """Whether the process has installed its SIGUSR1 handler (a worker is "ready").

    Signalling a worker before its handler exists would kill it instead of breaking it.
    Reads /proc; where that is unavailable, being alive has to do.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGUSR1 - 1) & 1)
    except OSError:
        return True
    return True


@dataclass
class ManagedService:
    """One service: its fixed address and its current process, if any."""

    name: str
    role: str
    port: int | None
    process: subprocess.Popen[bytes] | None = None
    spawns: int = 0
    version: str = INITIAL_VERSION
    #: This version cannot come up (a deploy fault's bad release); restarts keep failing.
    fails: bool = False
    #: Wall-clock time the current process was created (a container's `Created`).
    created: float | None = None
    #: The current process answered once (Docker's "healthy" after "starting").
    ready: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def running(self) -> bool:
        """The process exists and has not exited (poll() also reaps it)."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """Pid of the running process, else None."""
        return self.process.pid if self.process is not None and self.running else None

    @property
    def url(self) -> str | None:
        """Client address of the service."""
        return service_url(self.role, self.port)

    def describe(self) -> dict[str, Any]:
        """The entry of GET /services."""
        service = compose_service(self.name)
        return {"role": self.role, "port": self.port, "url": self.url,
                "running": self.running, "pid": self.pid, "restarts": max(0, self.spawns - 1),
                "service": service, "version": self.version, "created": self.created,
                "ready": self.ready and self.running,
                "depends_on": list(DEPENDS_ON.get(service, ()))}

    def brief(self) -> dict[str, Any]:
        """The answer of start/stop/restart."""
        return {"name": self.name, "running": self.running, "pid": self.pid}


class Supervisor:
    """Starts, stops and signals the stub processes."""

    def __init__(self, control_url: str, log_dir: Path, python: str = sys.executable) -> None:
        self.control_url = control_url
        self.log_dir = log_dir
        self.python = python
        self.on_started: list[Callable[[str], None]] = []
        used: set[int] = set()
        self.services: dict[str, ManagedService] = {}
        for name, role in SERVICES.items():
            port = None
            if role not in PORTLESS_ROLES:
                port = free_port()
                while port in used:
                    port = free_port()
                used.add(port)
            self.services[name] = ManagedService(name, role, port)

    def get(self, name: str) -> ManagedService:
        """The service, or UnknownServiceError naming the known ones."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(self.services)
            raise UnknownServiceError(f"unknown service '{name}'; known: {known}") from None

    def describe(self) -> dict[str, dict[str, Any]]:
        """GET /services."""
        return {name: svc.describe() for name, svc in self.services.items()}

    # ------------------------------------------------------------ internals

    def _spawn(self, svc: ManagedService) -> None:
        command = [self.python, "-m", "watchdog.sandbox", "service", svc.role,
                   "--control", self.control_url, "--name", svc.name]
        if svc.port is not None:
            command += ["--port", str(svc.port)]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = child_env()
        env[VERSION_ENV] = svc.version
        if svc.fails:
            env[FAILS_ENV] = "1"
        with open(self.log_dir / f"{svc.name}.log", "ab") as log:
            log.write(f"--- sandbox: starting {svc.name} {svc.version}\n".encode())
            log.flush()
            svc.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, env=env,
                                           close_fds=True)
        svc.spawns += 1
        svc.created = time.time()
        svc.ready = False

    def _answers(self, svc: ManagedService) -> bool:
        if svc.role in PORTLESS_ROLES:
            return svc.process is not None and catches_sigusr1(svc.process.pid)
        if svc.port is None:
            return False
        if svc.role in HTTP_HEALTH_ROLES:
            try:
                jsonhttp.request("GET", f"http://{jsonhttp.HOST}:{svc.port}/health", timeout=1.0)
                return True
            except OSError:
                return False
        if svc.role in TCP_ROLES:
            try:
                with socket.create_connection((jsonhttp.HOST, svc.port), timeout=0.5):
                    return True
            except OSError:
                return False
        raise ValueError(f"no readiness check for role {svc.role!r}")

    def _wait_ready(self, svc: ManagedService, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if not svc.running:
                return False
            if self._answers(svc):
                svc.ready = True
                return True
            time.sleep(0.02)
        return False

    def _stop(self, svc: ManagedService, grace: float) -> None:
        process = svc.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _start(self, svc: ManagedService, timeout: float) -> bool:
        """Spawn unless running; True if a new process was started."""
        if svc.running:
            return False
        self._spawn(svc)
        if not self._wait_ready(svc, time.monotonic() + timeout):
            raise StartTimeoutError(
                f"service '{svc.name}' did not answer within {timeout:g} s after start"
                + ("" if svc.running else " (process exited; see its log)"))
        return True

    def _notify_started(self, name: str) -> None:
        for callback in self.on_started:
            callback(name)

    # ------------------------------------------------------------ operations

    def start(self, name: str, timeout: float = START_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Start if not running and wait until it answers; a no-op when running."""
        svc = self.get(name)
        with svc.lock:
            started = self._start(svc, timeout)
        if started:
            self._notify_started(name)
        return svc.brief()

    def stop(self, name: str, grace: float = STOP_GRACE_SECONDS) -> dict[str, Any]:
        """SIGTERM, SIGKILL after `grace`; a no-op when not running."""
        svc = self.get(name)
        with svc.lock:
            self._stop(svc, grace)
        return svc.brief()

    def restart(self, name: str, timeout: float = START_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Stop (if running) then start; always a new process."""
        svc = self.get(name)
        with svc.lock:
            self._stop(svc, STOP_GRACE_SECONDS)
            self._start(svc, timeout)
        self._notify_started(name)
        return svc.brief()

    def deploy(self, name: str, version: str, *, fails: bool = False,
               timeout: float = START_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Replace the process with one running `version` (`docker compose up` of a new tag).

        A good version is waited for like a start; a failing one is not (it exits at
        start-up, as a bad release does), so the answer says it is not running.
        """
        svc = self.get(name)
        with svc.lock:
            self._stop(svc, STOP_GRACE_SECONDS)
            svc.version, svc.fails = version, fails
            if fails:
                self._spawn(svc)
            else:
                self._start(svc, timeout)
        if not fails:
            self._notify_started(name)
        return {**svc.brief(), "version": version, "created": svc.created}

    def logs(self, name: str, lines: int) -> list[str]:
        """The last `lines` lines of the service's output, every process of it so far."""
        svc = self.get(name)
        try:
            with open(self.log_dir / f"{svc.name}.log", "rb") as log:
                text = log.read()[-256 * 1024:].decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:] if lines > 0 else []

    def kill(self, name: str) -> int | None:
        """SIGKILL without restart (a crash); returns the killed pid, None if not running."""
        svc = self.get(name)
        with svc.lock:
            process = svc.process
            if process is None or process.poll() is not None:
                return None
            process.kill()
            process.wait()
            return process.pid

    def send_signal(self, name: str, signum: int) -> int | None:
        """Signal a running service; returns its pid, None if not running."""
        svc = self.get(name)
        with svc.lock:
            if svc.process is None or svc.process.poll() is not None:
                return None
            svc.process.send_signal(signum)
            return svc.process.pid

    def start_all(self, timeout: float = START_ALL_TIMEOUT_SECONDS) -> list[str]:
        """Spawn everything at once, then wait; returns the names that did not answer."""
        for svc in self.services.values():
            with svc.lock:
                if not svc.running:
                    self._spawn(svc)
        deadline = time.monotonic() + timeout
        return [svc.name for svc in self.services.values()
                if not self._wait_ready(svc, deadline)]

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM everything at once, SIGKILL whatever is left after `grace`."""
        processes = [svc.process for svc in self.services.values()
                     if svc.process is not None and svc.process.poll() is None]
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
