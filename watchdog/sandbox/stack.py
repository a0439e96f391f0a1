"""SandboxStack: the whole sandbox as one Python object, for tests and `watchdog demo`.

It runs the supervisor as a subprocess in its own session, so that `stop()` can make a
hard guarantee: after the supervisor's own orderly shutdown, anything still left in the
process group is SIGKILLed. No stub outlives the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from watchdog.sandbox.control import SandboxControl
from watchdog.sandbox.supervisor import child_env


class SandboxStartError(RuntimeError):
    """The supervisor did not report a running stack; the message includes its log tail."""


def _read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from a pipe, or whatever arrived before the deadline or EOF."""
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
    return buffer


class SandboxStack:
    """Start the sandbox in `state_dir`; use as a context manager or call start()/stop()."""

    def __init__(self, state_dir: str | os.PathLike[str], *, port: int = 0,
                 startup_timeout: float = 20.0, python: str = sys.executable) -> None:
        self.state_dir = Path(state_dir)
        self.port = port
        self.startup_timeout = startup_timeout
        self.python = python
        self.urls: dict[str, str] = {}
        self.control_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._control: SandboxControl | None = None

    @property
    def control(self) -> SandboxControl:
        """Client of the control API (only while started)."""
        if self._control is None:
            raise RuntimeError("the sandbox is not started")
        return self._control

    @property
    def pid(self) -> int | None:
        """The supervisor's pid while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> SandboxStack:
        """Launch the supervisor and wait for its JSON line; SandboxStartError on failure."""
        if self._process is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / "supervisor.log"
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.python, "-m", "watchdog.sandbox", "up", "--port", str(self.port),
                 "--state-dir", str(self.state_dir)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                env=child_env(), start_new_session=True, bufsize=0)
        assert self._process.stdout is not None
        line = _read_line(self._process.stdout, time.monotonic() + self.startup_timeout)
        try:
            info = json.loads(line)
            self.control_url = str(info["control_url"])
            self.urls = {str(k): str(v) for k, v in info["urls"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            self.stop()
            tail = log_path.read_text("utf-8", "replace")[-2000:]
            raise SandboxStartError(
                f"sandbox supervisor did not start (stdout {line[:200]!r}); log tail:\n{tail}"
            ) from None
        self._control = SandboxControl(self.control_url)
        return self

    def inject(self, kind: str, **body: Any) -> dict[str, Any]:
        """Inject a fault (see the control API's /faults)."""
        return self.control.inject(kind, **body)

    def service(self, name: str) -> dict[str, Any]:
        """One service's entry of /services (port, url, running, pid, restarts)."""
        return self.control.service(name)

    def stop(self) -> None:
        """Orderly shutdown (SIGTERM to the supervisor), then SIGKILL any leftover."""
        process, self._process, self._control = self._process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SandboxStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
