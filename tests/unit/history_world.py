"""The fake edges of a random history: the stack's truth, the action handlers, the clock.

The daemon under test is real (journal, core, incidents, executor, outbox); what
it watches and what it acts on are this module's. `World` holds the faults in
force and turns them into the readings the probes would have made; its handlers
carry out the catalogue's actions on that model (a service stopped, a provider
disabled, a fault healed) and log every call with the facts of its instant
(paused? which plan, shown to whom? how old the evidence?), read from the
journal when the call is made, so the invariants judge what the daemon did
against what it knew. A handler can be told to fail, or to hang until released
(a step that never answers: its timeout runs on the fake clock).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.unit.helpers import HEALTH_SIGNALS, HEALTHY
from watchdog.actions.base import ActionFailed, ActionOutcome, Handler
from watchdog.model import AuthMode, Observation, Step
from watchdog.policy.catalogue import ACTIONS
from watchdog.policy.moves import MANUAL_KEY_PREFIX
from watchdog.store.codec import plan_digest
from watchdog.store.journal import Journal
from watchdog.store.records import PAUSED_FLAG, ApprovalRecord

Readings = dict[str, float | dict[str, float]]

#: The people who vote, with the roles they really hold (sam holds none the policy uses).
ROSTER: dict[str, tuple[str, ...]] = {
    "olga": ("oncall",),
    "lee": ("lead",),
    "tara": ("team",),
    "tom": ("team",),
    "lena": ("lead", "team"),
    "sam": ("viewer",),
}

SERVICE_ACTIONS = frozenset(
    {"service.restart", "service.stop", "service.start", "service.restart_dependents",
     "service.revert"}
)
PUTS_BACK = SERVICE_ACTIONS - {"service.stop"}
#: The actions that need the Docker engine, and those that need the database.
DOCKER_ACTIONS = SERVICE_ACTIONS
DATABASE_ACTIONS = frozenset(
    a for a in ACTIONS if a.split(".")[0] in ("database", "config", "provider", "migrations")
) - {"config.reload", "config.verify"}


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault of the stack: what the probes read while it lasts, and what ends it."""

    readings: Readings
    #: (action, name) pairs whose success ends the fault when it is transient.
    heals: frozenset[tuple[str, str]] = frozenset()
    #: The edge it takes down while it lasts: "docker" or "database" actions fail.
    edge: str = ""


def _puts_back(*services: str) -> frozenset[tuple[str, str]]:
    return frozenset((a, s) for a in PUTS_BACK for s in services)


FAULTS: dict[str, Fault] = {
    "rest-api down": Fault({"rest_api_health": 0.0}, _puts_back("rest-api")),
    "enrichment down": Fault({"enrichment_health": 0.0}, _puts_back("metadata-enrichment")),
    "config corrupt": Fault(
        {"config_invalid_rows": 3.0, "config_invalid_rows_sql": 3.0},
        frozenset({("config.restore", "metadata_enrichment_config")}),
    ),
    "spotify breaker open": Fault(
        {"breaker_state": {"spotify": 2.0}},
        frozenset({("provider.disable", "spotify"), ("breaker.reset", "spotify")}),
    ),
    "dlq overflow": Fault({"dlq_depth": 6000.0}, _puts_back("enrichment-worker")),
    "database down": Fault(
        {"database_accepts_queries": 0.0}, _puts_back("postgres"), edge="database"
    ),
    "redis down": Fault({"redis_reachable": 0.0}, _puts_back("redis")),
    "orphaned rows": Fault(
        {"orphaned_enrichment_status": 4.0}, frozenset({("database.restore", "database")})
    ),
    "docker engine down": Fault({"docker_engine_up": 0.0}, edge="docker"),
    "complete outage": Fault(
        dict.fromkeys(HEALTH_SIGNALS, 0.0), _puts_back("metadata-enrichment", "rest-api")
    ),
    "disk filling": Fault({"disk_used": 0.95}),
    # A protected service's container unhealthy: the restart rung must refuse it.
    "postgres container unhealthy": Fault(
        {"container_healthy": {"postgres": 0.0}}, _puts_back("postgres")
    ),
}

#: Series the probes read besides helpers.HEALTHY's: every series a fault names is read
#: healthy when the fault is gone, as a real probe goes on reading it.
BASELINE: Readings = {
    "container_healthy": {"dlq-manager": 1.0, "rest-api": 1.0, "postgres": 1.0},
    "container_crash_loop": {"dlq-manager": 0.0, "rest-api": 0.0, "postgres": 0.0},
}

#: Actions a history may make fail or hang (those songnodes' plans name).
FLAKY_ACTIONS = (
    "service.restart", "service.stop", "service.start", "service.revert", "config.backup",
    "config.restore", "config.reload", "provider.disable", "breaker.reset", "smoke_test",
    "database.dump", "database.restore", "migrations.down", "database.integrity",
)


@dataclass(frozen=True, slots=True)
class Call:
    """One action carried out on the world, with what the journal said when it was made."""

    at: float
    generation: int
    dry_run: bool
    incident: int
    rung: int
    index: int
    action: str
    params: Mapping[str, Any]
    auto: bool
    paused: bool
    plan_digest: str
    role: str | None
    quorum: int
    approvals: tuple[ApprovalRecord, ...]
    #: When the incident last started waiting for approval (votes count from there).
    awaiting_since: float | None
    evidence_age: float

    @property
    def run(self) -> tuple[int, int]:
        return (self.incident, self.rung)

    def names(self) -> set[str]:
        """The services, provider, table or database the call acts on."""
        params = self.params
        named = params.get("services", params.get("service", []))
        found = {named} if isinstance(named, str) else {str(s) for s in named}
        found |= {str(params[k]) for k in ("provider", "table") if k in params}
        if self.action.startswith(("database.", "migrations.")):
            found.add("database")
        return found


@dataclass
class World:
    """The guarded stack as the fakes see it, and every call made on it."""

    clock: Callable[[], float]
    faults: dict[str, bool] = field(default_factory=dict)  # name -> transient
    failing: set[str] = field(default_factory=set)
    hanging: set[str] = field(default_factory=set)
    blind: bool = False
    last_fed: float = 0.0
    #: What is taken down: a service or provider -> (incident, since).
    down: dict[str, tuple[int, float]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    hung: int = 0
    release: asyncio.Event | None = None

    def readings(self) -> Readings:
        merged: Readings = {**HEALTHY, **BASELINE}
        for name in self.faults:
            for signal, value in FAULTS[name].readings.items():
                if isinstance(value, dict):
                    base = merged.get(signal, {})
                    merged[signal] = {**(base if isinstance(base, dict) else {}), **value}
                else:
                    merged[signal] = value
        return merged

    def observations(self, at: float) -> list[Observation]:
        if self.blind:
            return []
        self.last_fed = at
        found: list[Observation] = []
        for signal, value in self.readings().items():
            if isinstance(value, dict):
                found += [Observation(signal, at, v, series=s) for s, v in value.items()]
            else:
                found.append(Observation(signal, at, value))
        return found

    def answer_hung(self) -> None:
        """Every action hanging now answers; later ones hang anew."""
        hung, self.release = self.release, asyncio.Event()
        if hung is not None:
            hung.set()

    def edge_down(self, action: str) -> str | None:
        for name in self.faults:
            edge = FAULTS[name].edge
            if edge == "docker" and action in DOCKER_ACTIONS:
                return "the Docker engine does not answer"
            if edge == "database" and action in DATABASE_ACTIONS:
                return "the database does not answer"
        return None

    def handlers(self, journal: Journal, generation: int, *, dry_run: bool) -> dict[str, Handler]:
        """One fake handler per action of the catalogue, for one daemon's life."""
        self.release = asyncio.Event()

        async def handle(step: Step) -> ActionOutcome:
            call = self._record(journal, generation, step, dry_run=dry_run)
            if step.action in self.hanging and self.release is not None:
                self.hung += 1
                try:
                    await self.release.wait()
                finally:
                    self.hung -= 1
            if step.action in self.failing:
                raise ActionFailed(f"{step.action} failed (told to fail)")
            down = self.edge_down(step.action)
            if down is not None:
                raise ActionFailed(f"{step.action}: {down}")
            self._apply(call)
            return ActionOutcome(True, f"{step.action} done")

        return dict.fromkeys(ACTIONS, handle)

    def _record(self, journal: Journal, generation: int, step: Step, *, dry_run: bool) -> Call:
        params = step.param_map()
        wanted = _canonical(params)
        row = max(
            (
                s
                for s in journal.unfinished_steps()
                if s.action == step.action and _canonical(s.params) == wanted
            ),
            key=lambda s: s.id,
        )
        incident = journal.incident(row.incident_id)
        plan = journal.plan(row.incident_id)
        auth = plan.authorization if plan is not None else None
        awaiting = [
            e.at
            for e in journal.timeline(row.incident_id)
            if e.kind == "state" and e.data.get("to") == "awaiting_approval"
        ]
        now = self.clock()
        call = Call(
            at=now,
            generation=generation,
            dry_run=dry_run,
            incident=row.incident_id,
            rung=incident.rung,
            index=row.index,
            action=step.action,
            params=params,
            auto=auth is not None
            and auth.mode is AuthMode.AUTO
            and not incident.key.startswith(MANUAL_KEY_PREFIX),
            paused=journal.get_flag(PAUSED_FLAG) == "1",
            plan_digest=plan_digest(plan) if plan is not None else "",
            role=auth.role if auth is not None else None,
            quorum=max(1, auth.quorum) if auth is not None else 1,
            approvals=tuple(journal.approvals(row.incident_id)),
            awaiting_since=max(awaiting) if awaiting else None,
            evidence_age=now - self.last_fed,
        )
        self.calls.append(call)
        return call

    def _apply(self, call: Call) -> None:
        names = call.names()
        if call.action == "service.stop":
            for service in names:
                self.down.setdefault(service, (call.incident, call.at))
        elif call.action in PUTS_BACK:
            for service in names:
                self.down.pop(service, None)
        elif call.action == "provider.disable":
            self.down.setdefault(f"provider {call.params['provider']}", (call.incident, call.at))
        elif call.action == "provider.enable":
            undone = str(call.params.get("incident"))
            for name, (incident, _) in list(self.down.items()):
                if name.startswith("provider ") and str(incident) == undone:
                    del self.down[name]
        for fault, transient in list(self.faults.items()):
            if transient and any((call.action, n) in FAULTS[fault].heals for n in names):
                del self.faults[fault]


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
