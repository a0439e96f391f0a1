"""What every stub process shares: finding its siblings, dying with its supervisor,
exiting cleanly on SIGTERM, and small probes.

A stub learns the addresses of the other services from the supervisor's control API
(`GET {control}/services`) rather than from its command line, so the command line stays
`service ROLE --port P --control URL [--name NAME]` and ports live in one place.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from watchdog.sandbox import jsonhttp


def utc_now_iso() -> str:
    """An ISO-8601 timestamp, as the real services put in their bodies."""
    return datetime.now(UTC).isoformat()


class Peers:
    """Addresses of sibling services, fetched once from the control API and cached.

    Ports never change during a supervisor's life (a service keeps its port across
    restarts), so one successful lookup is good for the whole process.
    """

    def __init__(self, control_url: str) -> None:
        self._control_url = control_url.rstrip("/")
        self._services: dict[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._services is None:
                reply = jsonhttp.request("GET", f"{self._control_url}/services", timeout=2.0)
                data = reply.json()
                if not reply.ok or not isinstance(data, dict):
                    raise OSError(f"control API answered HTTP {reply.status}")
                self._services = data
            return self._services

    def port(self, name: str) -> int:
        """The port of a sibling service; raises OSError if it cannot be learned."""
        port = self._load().get(name, {}).get("port")
        if not isinstance(port, int):
            raise OSError(f"service {name!r} has no port")
        return port

    def http_url(self, name: str) -> str:
        """Base HTTP URL of a sibling service."""
        return f"http://{jsonhttp.HOST}:{self.port(name)}"


def tcp_check(port: int, timeout: float = 0.2) -> str:
    """"healthy" if a TCP connect to 127.0.0.1:port succeeds, else "unhealthy: <reason>"."""
    try:
        with socket.create_connection((jsonhttp.HOST, port), timeout=timeout):
            return "healthy"
    except ConnectionRefusedError:
        return "unhealthy: connection refused"
    except TimeoutError:
        return "unhealthy: timed out"
    except OSError as exc:
        return f"unhealthy: {exc.strerror or exc}"


def peer_tcp_check(peers: Peers, name: str, timeout: float = 0.2) -> str:
    """tcp_check by service name; an unknown address counts as unhealthy."""
    try:
        return tcp_check(peers.port(name), timeout)
    except OSError as exc:
        return f"unhealthy: {exc}"


def start_orphan_guard(interval: float = 1.0) -> None:
    """Exit as soon as the parent (the supervisor) is gone.

    A SIGKILLed supervisor cannot clean up; without this its stubs would keep ports
    and keep generating traffic forever. Re-parenting changes getppid(), which we poll.
    """
    parent = os.getppid()

    def guard() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=guard, name="orphan-guard", daemon=True).start()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    sys.stderr.flush()
    os._exit(0)


def install_exit_signals() -> None:
    """SIGTERM/SIGINT end the process at once and quietly.

    A stub holds nothing worth flushing (its state is meant to be lost), and skipping
    interpreter finalisation matters when fifteen stubs stop at once on two CPUs.
    """
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)


def serve(router: jsonhttp.Router, port: int) -> None:
    """Bind, then serve until a signal ends the process."""
    server = jsonhttp.JsonServer(router, port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
