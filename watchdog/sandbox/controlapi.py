"""The supervisor process (`python -m watchdog.sandbox up`): its HTTP control API and
its lifecycle.

The control API plays the parts the watchdog talks to outside the services themselves:
the orchestrator (`/services`), the database (`/db/tables`), and a fault injector
(`/faults`) that only tests and demos use. When every service answers, one JSON line
with the address map goes to stdout; SIGTERM/SIGINT stop all children, then the process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from watchdog.sandbox import jsonhttp
from watchdog.sandbox.catalog import TABLE_KEYS
from watchdog.sandbox.faults import FaultError, FaultInjector
from watchdog.sandbox.jsonhttp import HttpError, Request, Response, json_response
from watchdog.sandbox.supervisor import StartTimeoutError, Supervisor, UnknownServiceError
from watchdog.sandbox.tables import TableError, TableStore, UnknownTableError


class ControlApi:
    """Routes of the control API, translating domain errors into HTTP answers."""

    def __init__(self, supervisor: Supervisor, store: TableStore, faults: FaultInjector) -> None:
        self.supervisor = supervisor
        self.store = store
        self.faults = faults

    def register(self, router: jsonhttp.Router) -> None:
        """Add all routes to a router."""
        router.add("GET", "/health", self.health)
        router.add("GET", "/services", self.list_services)
        router.add("GET", "/services/{name}", self.get_service)
        router.add("GET", "/services/{name}/logs", self.service_logs)
        router.add("POST", "/services/{name}/{action}", self.service_action)
        router.add("GET", "/db/tables", self.list_tables)
        router.add("GET", "/db/tables/{table}", self.get_table)
        router.add("PUT", "/db/tables/{table}", self.put_table)
        router.add("GET", "/faults", self.list_faults)
        router.add("POST", "/faults/{kind}", self.inject)

    def health(self, request: Request) -> Response:
        """The supervisor itself is up."""
        return json_response({"status": "healthy", "pid": os.getpid()})

    def list_services(self, request: Request) -> Response:
        """name -> role, port, url, running, pid, restarts."""
        return json_response(self.supervisor.describe())

    def get_service(self, request: Request) -> Response:
        """One entry of /services."""
        try:
            return json_response(self.supervisor.get(request.params["name"]).describe())
        except UnknownServiceError as exc:
            raise HttpError(404, str(exc)) from exc

    def service_logs(self, request: Request) -> Response:
        """`{"lines": [...]}`: the last `?lines=N` (default 100) lines of its output."""
        try:
            lines = int(request.query.get("lines", "100"))
        except ValueError as exc:
            raise HttpError(400, "lines must be a whole number") from exc
        try:
            return json_response({"lines": self.supervisor.logs(request.params["name"], lines)})
        except UnknownServiceError as exc:
            raise HttpError(404, str(exc)) from exc

    def _deploy(self, name: str, request: Request) -> dict[str, object]:
        body = request.json()
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not version:
            raise HttpError(400, 'deploy needs {"version": "<version>"}')
        return self.supervisor.deploy(name, version)

    def service_action(self, request: Request) -> Response:
        """start / stop / restart, each idempotent where that makes sense; deploy a
        version (a good one: a failing release is the `deploy` fault's)."""
        name, action = request.params["name"], request.params["action"]
        actions = {"start": self.supervisor.start, "stop": self.supervisor.stop,
                   "restart": self.supervisor.restart}
        try:
            self.supervisor.get(name)
            if action == "deploy":
                return json_response(self._deploy(name, request))
            if action not in actions:
                raise HttpError(
                    404, f"unknown action '{action}'; known: start, stop, restart, deploy")
            return json_response(actions[action](name))
        except UnknownServiceError as exc:
            raise HttpError(404, str(exc)) from exc
        except StartTimeoutError as exc:
            raise HttpError(504, str(exc)) from exc

    def list_tables(self, request: Request) -> Response:
        """Names of the tables."""
        return json_response({"tables": self.store.names()})

    def get_table(self, request: Request) -> Response:
        """`{"rows": [...], "key": "<primary key column>"}`."""
        table = request.params["table"]
        try:
            return json_response({"rows": self.store.rows(table), "key": TABLE_KEYS.get(table)})
        except UnknownTableError as exc:
            raise HttpError(404, exc.args[0]) from exc

    def put_table(self, request: Request) -> Response:
        """Replace every row at once; 400 naming the problem if a row is invalid."""
        table = request.params["table"]
        body = request.json()
        if not isinstance(body, dict) or "rows" not in body:
            raise HttpError(400, 'body must be {"rows": [...]}')
        try:
            rows = self.store.replace(table, body["rows"])
        except UnknownTableError as exc:
            raise HttpError(404, exc.args[0]) from exc
        except TableError as exc:
            raise HttpError(400, f"{table}: {exc}") from exc
        self.faults.table_replaced(table)
        return json_response({"table": table, "rows": rows, "row_count": len(rows)})

    def list_faults(self, request: Request) -> Response:
        """Faults still in effect, and the kinds that exist."""
        return json_response({"active": self.faults.active(), "kinds": list(self.faults.KINDS)})

    def inject(self, request: Request) -> Response:
        """Apply a fault and say what was done."""
        try:
            return json_response(self.faults.inject(request.params["kind"], request.json()))
        except FaultError as exc:
            raise HttpError(exc.status, exc.detail) from exc
        except UnknownServiceError as exc:
            raise HttpError(404, str(exc)) from exc


class _Stop:
    """Set from a signal handler; polled by the main thread (no locks in handlers)."""

    requested = False

    @classmethod
    def handler(cls, signum: int, frame: FrameType | None) -> None:
        cls.requested = True


def run_up(
    port: int, state_dir: Path,
    on_ready: Callable[[str, dict[str, str]], None] | None = None,
) -> int:
    """Run the supervisor until SIGTERM/SIGINT; returns the process exit code.

    `on_ready(control_url, urls)` is called once every service answers (the CLI writes
    the daemon's settings file from it)."""
    signal.signal(signal.SIGTERM, _Stop.handler)
    signal.signal(signal.SIGINT, _Stop.handler)
    state_dir.mkdir(parents=True, exist_ok=True)
    store = TableStore(state_dir)

    # Bind first: the children need the control URL, which needs the bound port.
    # Routes are added before serve_forever starts, so no request sees a half router.
    router = jsonhttp.Router()
    server = jsonhttp.JsonServer(router, port)
    control_url = f"http://{jsonhttp.HOST}:{server.port}"
    supervisor = Supervisor(control_url, state_dir / "logs")
    faults = FaultInjector(supervisor, store)
    ControlApi(supervisor, store, faults).register(router)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="control-api", daemon=True)
    thread.start()
    code = 0
    try:
        failed = supervisor.start_all()
        if failed:
            print(f"sandbox: services did not answer in time: {', '.join(failed)} "
                  f"(logs in {state_dir / 'logs'})", file=sys.stderr)
            code = 1
        else:
            urls = {name: svc.url for name, svc in supervisor.services.items() if svc.url}
            if on_ready is not None:
                on_ready(control_url, urls)
            print(json.dumps({"control_url": control_url, "urls": urls, "pid": os.getpid(),
                              "state_dir": str(state_dir)}), flush=True)
            while not _Stop.requested:
                time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
        supervisor.stop_all()
    return code

