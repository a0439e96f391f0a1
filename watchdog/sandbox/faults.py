"""Fault injection: the failure scenarios of the rollback runbook, on demand.

Each fault does what the real incident would do to the stack and nothing more (a
crashed service stays down, a corrupted table stays corrupted until someone writes it
back, a broken worker stays broken until restarted), and answers with exactly what it
did, so a test or demo can check the watchdog's repair against the injected damage.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.sandbox import jsonhttp, runtime
from watchdog.sandbox.catalog import CONFIG_TABLE, HTTP_HEALTH_ROLES, PROVIDERS
from watchdog.sandbox.supervisor import Supervisor
from watchdog.sandbox.tables import Rows, TableStore

GATEWAY = "api-gateway-internal"
ENRICHMENT = "metadata-enrichment"
DATABASE = "postgres"


class FaultError(Exception):
    """A fault request was refused; status and detail become the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class ActiveFault:
    """A fault as listed by GET /faults, with a predicate telling whether it still holds."""

    kind: str
    details: dict[str, Any]
    since: str
    holds: Callable[[], bool]

    def describe(self) -> dict[str, Any]:
        """The entry of GET /faults."""
        return {"kind": self.kind, "since": self.since, **self.details}


def corrupt_rows(rows: Rows) -> list[dict[str, Any]]:
    """Damage the table in place the way a bad migration would; returns the changes.

    Three rows lose priority_1_provider while later providers remain (so the loaded
    waterfall shrinks and shifts), one row names the same provider twice, and one
    confidence is set to 1.7 (outside the CHECK the real column has).
    """
    changes: list[dict[str, Any]] = []

    def change(row: dict[str, Any], column: str, value: Any) -> None:
        changes.append({"metadata_field": row["metadata_field"], "column": column,
                        "before": row.get(column), "after": value})
        row[column] = value
        row["last_updated"] = runtime.utc_now_iso()
        row["updated_by"] = "sandbox_fault_corrupt_config"

    with_backup = [r for r in rows if r.get("priority_1_provider") and r.get("priority_2_provider")]
    nulled = with_backup[:3]
    for row in nulled:
        change(row, "priority_1_provider", None)
    rest = [r for r in rows if r.get("priority_1_provider") and r not in nulled]
    if rest:
        row = rest[0]
        if not row.get("priority_2_provider"):
            change(row, "priority_2_confidence", row.get("priority_1_confidence"))
        change(row, "priority_2_provider", row["priority_1_provider"])
    if len(rest) > 1:
        change(rest[1], "priority_1_confidence", 1.7)
    return changes


class FaultInjector:
    """Applies faults through the supervisor and the table store; remembers active ones."""

    KINDS = ("crash", "corrupt_config", "provider_outage", "provider_restore",
             "dlq_overflow", "database_down", "deploy", "system_down")

    def __init__(self, supervisor: Supervisor, store: TableStore) -> None:
        self.supervisor = supervisor
        self.store = store
        self._lock = threading.Lock()
        self._faults: list[ActiveFault] = []
        self._outages: set[str] = set()
        self._config_damaged = False
        supervisor.on_started.append(self._on_started)

    # ------------------------------------------------------------ bookkeeping

    def _record(self, kind: str, details: dict[str, Any], holds: Callable[[], bool]) -> None:
        with self._lock:
            self._faults.append(ActiveFault(kind, details, runtime.utc_now_iso(), holds))

    def active(self) -> list[dict[str, Any]]:
        """Faults still in effect (the list prunes itself)."""
        with self._lock:
            self._faults = [f for f in self._faults if f.holds()]
            return [f.describe() for f in self._faults]

    def table_replaced(self, table: str) -> None:
        """A full write of the config table ends a corrupt_config fault."""
        if table == CONFIG_TABLE:
            with self._lock:
                self._config_damaged = False

    def _on_started(self, name: str) -> None:
        """A restarted gateway has forgotten its outages: tell it again."""
        if name == GATEWAY:
            with self._lock:
                outages = sorted(self._outages)
            for provider in outages:
                self._tell_gateway(provider, down=True)

    def _tell_gateway(self, provider: str, down: bool) -> str:
        url = self.supervisor.get(GATEWAY).url
        try:
            reply = jsonhttp.request("POST", f"{url}/_sandbox/outage",
                                     {"provider": provider, "down": down}, timeout=2.0)
        except OSError as exc:
            return f"gateway unreachable ({exc}); applied when it starts"
        return "notified" if reply.ok else f"gateway answered HTTP {reply.status}"

    # ------------------------------------------------------------ faults

    def inject(self, kind: str, body: Any) -> dict[str, Any]:
        """Apply one fault; FaultError for unknown kinds or bad bodies."""
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "crash": self.crash,
            "corrupt_config": self.corrupt_config,
            "provider_outage": self.provider_outage,
            "provider_restore": self.provider_restore,
            "dlq_overflow": self.dlq_overflow,
            "database_down": self.database_down,
            "deploy": self.deploy,
            "system_down": self.system_down,
        }
        if kind not in handlers:
            raise FaultError(404, f"unknown fault '{kind}'; known: {', '.join(self.KINDS)}")
        if not isinstance(body, dict):
            raise FaultError(400, f"fault '{kind}' takes a JSON object body")
        return {"kind": kind, **handlers[kind](body)}

    def crash(self, body: dict[str, Any]) -> dict[str, Any]:
        """SIGKILL one service; it stays down."""
        name = body.get("service")
        if not isinstance(name, str):
            raise FaultError(400, 'fault \'crash\' needs {"service": "<name>"}')
        svc = self.supervisor.get(name)
        pid = self.supervisor.kill(name)
        if pid is not None:
            self._record("crash", {"service": name, "pid": pid}, lambda: not svc.running)
        return {"service": name, "killed_pid": pid, "running": svc.running,
                "note": "killed; the sandbox does not restart it" if pid else "was not running"}

    def corrupt_config(self, body: dict[str, Any]) -> dict[str, Any]:
        """Corrupt metadata_enrichment_config, then make enrichment load it."""
        changes: list[dict[str, Any]] = []
        self.store.mutate(CONFIG_TABLE, lambda rows: changes.extend(corrupt_rows(rows)))
        with self._lock:
            self._config_damaged = True
        self._record("corrupt_config", {"changes": changes}, lambda: self._config_damaged)
        url = self.supervisor.get(ENRICHMENT).url
        try:
            reply = jsonhttp.request("POST", f"{url}/admin/config/reload", {}, timeout=5.0)
            reload = "reloaded" if reply.ok else f"reload answered HTTP {reply.status}"
        except OSError as exc:
            reload = f"enrichment unreachable ({exc}); it loads the table when it starts"
        return {"table": CONFIG_TABLE, "changes": changes, "reload": reload}

    def _provider(self, body: dict[str, Any], kind: str) -> str:
        provider = body.get("provider")
        if not isinstance(provider, str) or provider not in PROVIDERS:
            raise FaultError(400, f"fault '{kind}' needs \"provider\", one of: "
                                  f"{', '.join(PROVIDERS)} (got {provider!r})")
        return provider

    def provider_outage(self, body: dict[str, Any]) -> dict[str, Any]:
        """Make the gateway fail every call to one provider (502)."""
        provider = self._provider(body, "provider_outage")
        with self._lock:
            new = provider not in self._outages
            self._outages.add(provider)
        if new:
            self._record("provider_outage", {"provider": provider},
                         lambda: provider in self._outages)
        return {"provider": provider, "gateway": self._tell_gateway(provider, down=True)}

    def provider_restore(self, body: dict[str, Any]) -> dict[str, Any]:
        """End a provider outage (breakers recover on their own timeout or by reset)."""
        provider = self._provider(body, "provider_restore")
        with self._lock:
            was_down = provider in self._outages
            self._outages.discard(provider)
        return {"provider": provider, "was_down": was_down,
                "gateway": self._tell_gateway(provider, down=False)}

    def dlq_overflow(self, body: dict[str, Any]) -> dict[str, Any]:
        """Break every running enrichment-worker replica (SIGUSR1): each dead-letters
        1000 messages/s. The backlog worker is not a replica and is left alone."""
        broken: dict[str, int] = {}
        for name, svc in self.supervisor.services.items():
            if svc.role == "worker":
                pid = self.supervisor.send_signal(name, signal.SIGUSR1)
                if pid is not None:
                    broken[name] = pid
        services = self.supervisor.services
        if broken:
            self._record("dlq_overflow", {"workers": broken},
                         lambda: any(services[n].pid == p for n, p in broken.items()))
        return {"signalled": sorted(broken), "note": "restart the workers to stop the flood"}

    def database_down(self, body: dict[str, Any]) -> dict[str, Any]:
        """Stop postgres (it stays down until started through the control API)."""
        svc = self.supervisor.get(DATABASE)
        was_running = svc.running
        self.supervisor.stop(DATABASE)
        if was_running:
            self._record("database_down", {"service": DATABASE}, lambda: not svc.running)
        return {"service": DATABASE, "was_running": was_running, "running": svc.running}

    def deploy(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deploy a new version of one service that fails right away (runbook scenario 1):
        its process exits at start-up, and every restart of it does too, until a good
        version is deployed again (`POST /services/<name>/deploy`)."""
        name, version = body.get("service"), body.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not version:
            raise FaultError(400, 'fault \'deploy\' needs {"service": "<name>", '
                                  '"version": "<new version>"}')
        svc = self.supervisor.get(name)
        before = svc.version
        done = self.supervisor.deploy(name, version, fails=True)
        self._record("deploy", {"service": name, "version": version, "previous": before},
                     lambda: svc.version == version and svc.fails)
        return {"service": name, "version": version, "previous": before,
                "created": done["created"],
                "note": "the new version exits at start-up; a redeploy of a good one ends it"}

    def system_down(self, body: dict[str, Any]) -> dict[str, Any]:
        """SIGKILL every application service at once (the ones that answer GET /health);
        none restarts. The data stores and the workers stay up: this is the runbook's
        scenario 5 as the daemon meets it (everything the users reach is gone at once),
        and what its quarterly Q4 test rehearses without the `down -v` that would take
        the data with it."""
        services = self.supervisor.services
        killed: dict[str, int] = {}
        for name, svc in services.items():
            if svc.role in HTTP_HEALTH_ROLES:
                pid = self.supervisor.kill(name)
                if pid is not None:
                    killed[name] = pid
        if killed:
            self._record("system_down", {"services": killed},
                         lambda: any(not services[n].running for n in killed))
        return {"killed": killed, "left_running": sorted(
            n for n, s in services.items() if s.role not in HTTP_HEALTH_ROLES and s.running),
            "note": "killed; the sandbox restarts none of them"}
