"""Several `watchdog run` sidecars on one PostgreSQL journal, one sandbox, real receivers.

The failover tests (test_ha_failover.py) and bench/failover.py need the real
thing: separate daemon processes that only share the journal, a PostgreSQL the
test can restart, a link to it the test can cut, and pages counted where they
land (the fake PagerDuty and Slack), not only in the outbox. So:

- one PostgreSQL of the stage's own (tests/pgserver.py), not the worker's shared
  one: a test stops and starts it under the daemons;
- one sandbox (the stack guarded), one set of fake vendors;
- N daemons, each with its own folder (log, backups), API port, `WATCHDOG_INSTANCE`
  and its own tests/tcpproxy.py in front of the one database, so any of them can be
  cut from the journal alone; the journal URL names one schema, and the lease is
  `LEASE_SECONDS` to keep the tests short.

The policy is songnodes.yaml with P2 paged on open to PagerDuty and Slack (the
quickest fault, dlq-manager killed, is a P2), a `wait` step before the restart
(`slow_seconds`), so a test can stop the leader while a step is in flight, and a
cooldown short enough for the same service to crash in test after test.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tests.integration.daemon_stage import songnodes_variant
from tests.integration.notify_stage import Vendors, vendors
from tests.pgserver import PgServer, postgres_server
from tests.tcpproxy import TcpProxy
from watchdog.demo import DaemonProcess, read_incidents, wait_for
from watchdog.sandbox.stack import SandboxStack

LEASE_SECONDS = 2.0
STACK = "songnodes"
SCENARIO = "service_failure"


def ha_policy(folder: Path, slow_seconds: float) -> Path:
    """songnodes.yaml, P2 paged on open to PagerDuty and Slack, a wait before the restart."""

    def change(data: dict[str, Any]) -> None:
        data["notify"]["on_open"] = ["P0", "P1", "P2"]
        data["notify"]["routes"]["P2"] = ["pagerduty", "slack"]
        steps = data["scenarios"][SCENARIO]["steps"]
        wait = {"name": "let connections drain", "action": "wait",
                "params": {"seconds": slow_seconds}}
        steps.insert(0, wait)
        # The tests crash one service again every few seconds: the guards' cooldown
        # (restart loops) would rightly escalate instead; they are not what is tested here.
        data["guards"]["cooldown"] = "1s"
        data["guards"]["actions_per_hour"] = 1000
        data["guards"]["backoff_factor"] = 1.0  # nor its doubling (bench/failover.py: 10 runs)

    return songnodes_variant(folder, change)


@dataclass
class Member:
    """One sidecar: its process, its proxy to the journal, and what the test did to it."""

    instance: str
    folder: Path
    daemon: DaemonProcess
    proxy: TcpProxy
    alive: bool = True
    paused: bool = False

    @property
    def url(self) -> str:
        return self.daemon.url

    @property
    def pid(self) -> int:
        process = self.daemon._process  # DaemonProcess keeps its Popen to itself
        if process is None:
            raise AssertionError(f"{self.instance} is not running")
        return process.pid

    def health(self) -> dict[str, Any] | None:
        """GET /healthz (any status: a follower or a leader without its journal may 503),
        or None when the process does not answer (dead, paused)."""
        if not self.alive or self.paused:
            return None
        with suppress(httpx.HTTPError, ValueError):
            body: dict[str, Any] = httpx.get(self.url + "/healthz", timeout=1).json()
            return body
        return None

    def role(self) -> str | None:
        health = self.health()
        return None if health is None else str(health.get("role"))


@dataclass
class HaStage:
    folder: Path
    server: PgServer
    stack: SandboxStack
    fakes: Vendors
    schema: str
    members: list[Member] = field(default_factory=list)

    # ------------------------------------------------------------ processes

    def live(self) -> list[Member]:
        """Members running and not paused (those that can answer and act)."""
        return [m for m in self.members if m.alive and not m.paused]

    def member(self, instance: str) -> Member:
        return next(m for m in self.members if m.instance == instance)

    def kill(self, member: Member) -> None:
        """kill -9: no release, no goodbye."""
        member.daemon.stop(signal.SIGKILL)
        member.alive = False

    def pause(self, member: Member) -> None:
        os.kill(member.pid, signal.SIGSTOP)
        member.paused = True

    def resume(self, member: Member) -> None:
        os.kill(member.pid, signal.SIGCONT)
        member.paused = False

    def restart(self, member: Member) -> None:
        """Start a killed member again, on its port and folder."""
        member.daemon.start()
        member.alive, member.paused = True, False

    # ------------------------------------------------------------ leadership

    def roles(self) -> dict[str, str | None]:
        return {m.instance: m.role() for m in self.live()}

    def leader(self) -> Member | None:
        """The one live member whose /healthz says leader, if exactly one does."""
        leading = [m for m in self.live() if m.role() == "leader"]
        return leading[0] if len(leading) == 1 else None

    def wait_for_leader(
        self, seconds: float = 15, *, other_than: Member | None = None
    ) -> Member:
        """Exactly one live member leads, the others say follower, the lease row agrees."""
        found: list[Member] = []

        def settled() -> bool:
            roles = self.roles()
            leading = [name for name, role in roles.items() if role == "leader"]
            if len(leading) != 1 or any(r != "follower" for n, r in roles.items()
                                        if n != leading[0]):
                return False
            if other_than is not None and leading[0] == other_than.instance:
                return False
            row = self.lease()
            if row is None or row["instance"] != leading[0]:
                return False
            found[:] = [self.member(leading[0])]
            return True

        try:
            wait_for(settled, seconds, "exactly one leader")
        except TimeoutError as error:
            raise TimeoutError(f"{error}: {self.diagnosis()}") from None
        return found[0]

    def diagnosis(self) -> str:
        """Roles, the lease row and every session of the database with what it waits on,
        for a failure message: who holds what when no one can lead."""
        sessions = self.rows(
            "SELECT pid, application_name, client_port, state, wait_event_type, wait_event,"
            " backend_xid IS NOT NULL AS writing, pg_blocking_pids(pid) AS blocked_by,"
            " round(extract(epoch FROM now() - xact_start)::numeric, 1) AS xact_seconds,"
            " left(query, 120) AS query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return (f"roles {self.roles()}; lease {self.lease()}; sessions: "
                + "; ".join(str(row) for row in sessions))

    # ------------------------------------------------------------ the journal's tables

    def rows(self, query: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a query in the journal's schema, straight to the server (no proxy)."""
        with psycopg.connect(self.server.dsn, row_factory=dict_row, autocommit=True,
                             connect_timeout=5) as db:
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            cursor = db.execute(query.encode(), params or None)
            return list(cursor.fetchall()) if cursor.description else []

    def lease(self) -> dict[str, Any] | None:
        """The `leadership` row of the stack (None before anyone took it)."""
        found = self.rows("SELECT * FROM leadership WHERE stack = %s", STACK)
        return found[0] if found else None

    def terms(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM leadership_log WHERE stack = %s ORDER BY id", STACK)

    def steps(self, incident: int) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM steps WHERE incident_id = %s ORDER BY idx, attempt",
                         incident)

    def step_in_flight(self, known: set[int], action: str = "wait") -> dict[str, Any]:
        """The step row of `action` started, not finished, in an incident newer than `known`."""
        found: list[dict[str, Any]] = []

        def started() -> bool:
            found[:] = self.rows(
                "SELECT s.* FROM steps s JOIN incidents i ON i.id = s.incident_id "
                "WHERE i.scenario = %s AND s.action = %s AND s.status = 'started' "
                "AND i.id > %s", SCENARIO, action, max(known, default=0))
            return bool(found)

        wait_for(started, 30, f"a {action} step in flight")
        return found[0]

    def wait_for_pages(self, incident: int, event: str = "trigger") -> None:
        """Until the outbox rows of `event` for the incident are journaled as delivered."""

        def delivered() -> bool:
            found = self.rows("SELECT status FROM outbox WHERE incident_id = %s AND event = %s",
                              incident, event)
            return bool(found) and all(r["status"] != "pending" for r in found)

        wait_for(delivered, 20, f"the {event} pages of incident {incident} journaled as sent")

    def tokened(self, below: int) -> set[tuple[str, str, int]]:
        """Every row stamped with a fencing token older than `below`: (table, ctid, token).

        A later snapshot must be a subset of an earlier one: the new leader may overwrite
        an old term's row (it leaves the set) but nobody may write one with an old token
        (a new ctid would join it)."""
        tables = [r["table_name"] for r in self.rows(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = %s "
            "AND column_name = 'fence_token' ORDER BY table_name", self.schema)]
        return {
            (table, r["ctid"], r["fence_token"])
            for table in tables
            for r in self.rows(f'SELECT ctid::text AS ctid, fence_token FROM "{table}" '
                               "WHERE fence_token < %s", below)
        }

    def db_now(self) -> float:
        """The database's clock (epoch seconds): the clock leases are written on."""
        return float(self.rows("SELECT extract(epoch FROM clock_timestamp()) AS now")[0]["now"])

    # ------------------------------------------------------------ the database itself

    def stop_database(self) -> None:
        self.server.stop()

    def start_database(self) -> None:
        self.server.start_again()

    # ------------------------------------------------------------ incidents and pages

    def incidents(self, **params: Any) -> list[dict[str, Any]]:
        """GET /incidents from a live member that reaches the journal (followers serve the
        read API too). A member whose journal connection is being made again answers 503
        (Retry-After) for about a second after the database comes back: the next is asked."""
        deadline = time.monotonic() + 10
        while True:
            for member in [m for m in self.live() if not m.proxy.is_cut]:
                try:
                    return read_incidents(member.url, member.daemon.read_token, **params)
                except httpx.HTTPStatusError as error:
                    if error.response.status_code != 503 or time.monotonic() > deadline:
                        raise
            time.sleep(0.2)

    def inject(self, kind: str, scenario: str = SCENARIO, **body: Any) -> set[int]:
        """Inject a fault once no incident of `scenario` is open; the ids known before."""

        def quiet() -> bool:
            return not any(i["scenario"] == scenario for i in self.incidents(open_only=True))

        wait_for(quiet, 30, f"no open {scenario} incident")
        known = {i["id"] for i in self.incidents()}
        self.stack.inject(kind, **body)
        return known

    def follow(self, known: set[int], states: tuple[str, ...], seconds: float = 30,
               scenario: str = SCENARIO, when: Callable[[dict[str, Any]], bool] | None = None,
               ) -> dict[str, Any]:
        """The first `scenario` incident not in `known`, once in `states` (and `when` holds)."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            new = [i for i in self.incidents() if i["id"] not in known
                   and i["scenario"] == scenario]
            if not new:
                return False
            found.clear()
            found.update(min(new, key=lambda i: i["id"]))
            return found["state"] in states and (when is None or when(found))

        wait_for(reached, seconds, f"a {scenario} incident in {states} (last seen: "
                                   f"{found.get('state')})")
        return found

    def pagerduty(self, incident: int, action: str | None = None) -> list[dict[str, Any]]:
        """PagerDuty events received for one incident (its dedup key), of `action` if named."""
        key = f"{STACK}/{incident}"
        return [e for e in self.fakes.pagerduty.events(action) if e["dedup_key"] == key]

    def slack_for(self, incident: int) -> list[dict[str, Any]]:
        """Slack messages received that link to one incident."""
        link = re.compile(rf"/ui/incidents/{incident}(?!\d)")
        return [m for m in self.fakes.slack.messages() if link.search(str(m))]


def _member(
    index: int, folder: Path, stack: SandboxStack, server: PgServer, schema: str,
    policy: Path, environment: dict[str, str],
) -> Member:
    instance = f"wd{index}"
    home = folder / instance
    home.mkdir()
    proxy = TcpProxy(server.port)
    dsn = server.dsn.replace(f":{server.port}/", f":{proxy.port}/")
    daemon = DaemonProcess(stack, home, policy=policy, environment={
        **environment,
        "WATCHDOG_INSTANCE": instance,
        "WATCHDOG_STATE": f"{dsn}?schema={schema}",
    })
    return Member(instance, home, daemon, proxy)


@contextmanager
def ha_stage(
    folder: Path, count: int = 3, *, lease_seconds: float = LEASE_SECONDS,
    slow_seconds: float = 3, environment: dict[str, str] | None = None,
) -> Iterator[HaStage]:
    """`count` daemons on one journal (started together), one leading; all stopped on exit."""
    with ExitStack() as cleanup:
        server = cleanup.enter_context(postgres_server())
        stack = cleanup.enter_context(SandboxStack(folder / "sandbox"))
        fakes = cleanup.enter_context(vendors())
        schema = f"ha_{uuid.uuid4().hex[:12]}"
        # Made here, not by the first daemon: sidecars started together on a missing schema
        # race in CREATE SCHEMA IF NOT EXISTS (not atomic in PostgreSQL: the loser dies
        # with UniqueViolation on pg_namespace), a start-up defect reported apart; these
        # tests are about failover.
        with psycopg.connect(server.dsn, autocommit=True) as db:
            db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        stage = HaStage(folder, server, stack, fakes, schema)
        settings = {
            **fakes.environment(),
            "WATCHDOG_NOTIFY_BACKOFF": "1",
            "WATCHDOG_PUBLIC_URL": "http://127.0.0.1:9095",
            "WATCHDOG_LEASE_SECONDS": f"{lease_seconds:g}",
            **(environment or {}),
        }
        policy = ha_policy(folder, slow_seconds)
        for index in range(count):
            member = _member(index, folder, stack, server, schema, policy, settings)
            stage.members.append(member)
            cleanup.callback(member.proxy.close)
        cleanup.callback(_stop_all, stage)
        with ThreadPoolExecutor(count) as pool:  # ~2 s of imports each: in parallel
            list(pool.map(lambda m: m.daemon.start(), stage.members))
        stage.wait_for_leader(30)
        yield stage


def _stop_all(stage: HaStage) -> None:
    """SIGCONT whoever is paused (a stopped process ignores SIGTERM), then stop all."""
    for member in stage.members:
        if member.paused:
            with suppress(ProcessLookupError, AssertionError):
                stage.resume(member)
    if not stage.server.running:
        with suppress(RuntimeError):
            stage.start_database()  # a clean stop releases the lease in the journal
    with ThreadPoolExecutor(max(1, len(stage.members))) as pool:
        list(pool.map(lambda m: m.daemon.stop(timeout=15), stage.members))


def wait_until(predicate: Callable[[], bool], seconds: float, what: str) -> float:
    """wait_for, returning the seconds it took (for the benchmark)."""
    began = time.monotonic()
    wait_for(predicate, seconds, what)
    return time.monotonic() - began
