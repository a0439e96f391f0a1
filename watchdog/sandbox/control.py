"""A small synchronous client of the sandbox's control API, for tests, the demo and
SandboxStack. Standard library only, so it works wherever the sandbox does.
"""

from __future__ import annotations

from typing import Any

from watchdog.sandbox import jsonhttp


class SandboxError(RuntimeError):
    """The control API answered with an error; carries its status and detail."""

    def __init__(self, status: int, detail: Any, method: str, path: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class SandboxControl:
    """Client of `python -m watchdog.sandbox up`'s control API."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Raw call: (status, decoded JSON body); never raises for HTTP errors."""
        reply = jsonhttp.request(method, f"{self.base_url}{path}", body, timeout=self.timeout)
        return reply.status, reply.json()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.request(method, path, body)
        if not 200 <= status < 300:
            detail = payload.get("detail") if isinstance(payload, dict) else payload
            raise SandboxError(status, detail, method, path)
        return payload

    def services(self) -> dict[str, dict[str, Any]]:
        """name -> {role, port, url, running, pid, restarts}."""
        result: dict[str, dict[str, Any]] = self._call("GET", "/services")
        return result

    def service(self, name: str) -> dict[str, Any]:
        """One service's entry."""
        result: dict[str, Any] = self._call("GET", f"/services/{name}")
        return result

    def start(self, name: str) -> dict[str, Any]:
        """Start (no-op if running); waits until it answers. SandboxError 504 otherwise."""
        result: dict[str, Any] = self._call("POST", f"/services/{name}/start")
        return result

    def stop(self, name: str) -> dict[str, Any]:
        """Stop (no-op if stopped)."""
        result: dict[str, Any] = self._call("POST", f"/services/{name}/stop")
        return result

    def restart(self, name: str) -> dict[str, Any]:
        """Stop then start; a new process on the same port."""
        result: dict[str, Any] = self._call("POST", f"/services/{name}/restart")
        return result

    def deploy(self, name: str, version: str) -> dict[str, Any]:
        """Replace the process with a (good) `version`; waits until it answers."""
        result: dict[str, Any] = self._call("POST", f"/services/{name}/deploy",
                                            {"version": version})
        return result

    def logs(self, name: str, lines: int = 100) -> list[str]:
        """The last `lines` lines of the service's output."""
        found: list[str] = self._call("GET", f"/services/{name}/logs?lines={lines}")["lines"]
        return found

    def table(self, table: str) -> list[dict[str, Any]]:
        """All rows of a table."""
        rows: list[dict[str, Any]] = self._call("GET", f"/db/tables/{table}")["rows"]
        return rows

    def put_table(self, table: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace all rows of a table."""
        result: dict[str, Any] = self._call("PUT", f"/db/tables/{table}", {"rows": rows})
        return result

    def inject(self, kind: str, **body: Any) -> dict[str, Any]:
        """Inject a fault; returns what the sandbox did."""
        result: dict[str, Any] = self._call("POST", f"/faults/{kind}", body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        """Faults still in effect."""
        active: list[dict[str, Any]] = self._call("GET", "/faults")["active"]
        return active
