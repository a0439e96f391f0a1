"""The crash matrix: a real daemon SIGKILLed at one journal write, restarted, then judged.

One *kill point* is (scenario, N, before|after). A run starts a fresh sandbox, the
fake Slack and webhook receivers (so pages have somewhere to go) and `watchdog run`
with `WATCHDOG_CRASH_AT=N` (watchdog/store/crashpoints.py): the store kills its own
process at its N-th write, before or after the COMMIT. The run injects the
scenario's faults one after the other; whenever the daemon is found dead it is
restarted WITHOUT the crash setting (so it dies once), and each fault is followed
until every incident is final or a bound passes. Then the daemon is stopped and
the invariants below read the journal file and the sandbox.

A clean run (no kill point) gives the ordered write sites of a scenario, from
`WATCHDOG_COMMIT_LOG`; the kill points are chosen from it. The site actually
killed is read back from the crash run's own log (the kill adds
"<site>\\tkilled <when>"), since threads can reorder writes between runs.

Each invariant is a function returning violations in words, never raising, so a
report can list every kill point with what it broke.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.vendors import FakeSlack, FakeWebhook
from tests.integration.crash_actions import (
    ALERT_FIRED_AND_RESOLVED,
    ALERTMANAGER_TOKEN,
    APPROVAL,
    HUMAN_CLOSE,
    Action,
    Context,
    write_people,
)
from watchdog.demo import FAULTS, POLICY, TIME_SCALE, Fault, daemon_environment, free_port
from watchdog.sandbox.stack import SandboxStack, SandboxStartError

WEBHOOK_TOKEN = "crash-matrix-webhook-token"
CONFIG_TABLE = "metadata_enrichment_config"
#: How long one fault may take to end in final incidents, after the daemon is back: the
#: DLQ scenario re-detected after a restart takes 40 s on a busy 2-core machine.
FAULT_BOUND = 90.0
#: How long delivered pages may take once every incident is final.
OUTBOX_BOUND = 15.0

FINAL_CLOSED = ("resolved", "closed")
_STARTING = threading.Lock()
#: States no restart picks up today: an incident left in one is wedged.
WEDGE_STATES = ("detected", "triaged", "failed", "rejected", "expired", "approved", "executing")
NON_FINAL_STEP = ("started", "succeeded", "failed")

_BY_KIND = {fault.kind: fault for fault in FAULTS}


#: The sandbox demo's scenarios, each the faults (or harness actions) run in order.
SCENARIOS: dict[str, tuple[Fault | Action, ...]] = {
    "service_crash": (_BY_KIND["crash"],),
    "config_corruption": (_BY_KIND["corrupt_config"],),
    "provider_disable_enable": (_BY_KIND["provider_outage"], _BY_KIND["provider_restore"]),
    "dlq_overflow": (_BY_KIND["dlq_overflow"],),
    # The DLQ's P1 pages, with the webhook failing once (a retry) and Slack refusing
    # once (a rejected page): the outbox's own write sites.
    "dlq_overflow_pager_trouble": (_BY_KIND["dlq_overflow"],),
    # Alertmanager's webhook, then approvals through the API (tests/integration/crash_actions.py).
    "alert_fired_and_resolved": ALERT_FIRED_AND_RESOLVED,
    "approval": APPROVAL,
    "human_close": HUMAN_CLOSE,
}
PAGER_TROUBLE = {"dlq_overflow_pager_trouble"}
#: Scenarios on real engines rather than the sandbox (tests/integration/crash_engines.py):
#: run by bench/crash_matrix.py when named, not part of SCENARIOS (the suite's matrix).
ENGINE_SCENARIOS = ("docker_ladder", "docker_ladder_climb", "pg_config_restore")
#: Of those, the ones on a real PostgreSQL (tests/integration/crash_postgres.py).
POSTGRES_SCENARIOS = ("pg_config_restore",)
NEEDS_PEOPLE = {"approval", "human_close"}


@dataclass(frozen=True, slots=True)
class KillPoint:
    scenario: str
    at: int
    when: str  # "before" | "after"
    planned_site: str = ""
    #: Which write of `planned_site` it is (1 the first): the kill counts that site's
    #: writes only (WATCHDOG_CRASH_SITE), so threads writing in another order between
    #: runs cannot move it to another site. 0: the `at`-th write of any site.
    occurrence: int = 0

    def __str__(self) -> str:
        return f"{self.scenario} #{self.at} {self.when} {self.planned_site}".rstrip()

    def environment(self) -> dict[str, str]:
        """The settings that make the daemon's store kill it here."""
        if self.occurrence:
            return {
                "WATCHDOG_CRASH_AT": str(self.occurrence),
                "WATCHDOG_CRASH_SITE": self.planned_site,
                "WATCHDOG_CRASH_WHEN": self.when,
            }
        return {"WATCHDOG_CRASH_AT": str(self.at), "WATCHDOG_CRASH_WHEN": self.when}


def kill_point(scenario: str, sites: list[str], number: int, when: str) -> KillPoint:
    """The `number`-th write of a clean run (1-based), as the n-th write of its own site."""
    site = sites[number - 1]
    return KillPoint(scenario, number, when, site, sites[:number].count(site))


@dataclass(slots=True)
class Run:
    scenario: str
    kill: KillPoint | None
    sites: list[str] = field(default_factory=list)
    killed_site: str | None = None
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Why the harness itself could not run it (a sandbox that would not boot): no verdict.
    error: str = ""
    #: Set when the run made fewer writes than its kill point (threads reorder writes).
    unreached: str = ""
    #: The journal's events in order, one line each: the path the run took, for reports.
    story: list[str] = field(default_factory=list)


# The daemon ----------------------------------------------------------------------------


class Daemon:
    """`watchdog run` on the sandbox; `start` returns once it answers or has died."""

    #: The policy it runs (a subclass guarding another world sets its own).
    policy: Path = POLICY

    def __init__(self, stack: SandboxStack, folder: Path, env: dict[str, str]) -> None:
        self.prepare(
            folder, lambda listen: daemon_environment(stack, folder, listen, TIME_SCALE), env
        )

    def prepare(
        self, folder: Path, settings: Callable[[str], dict[str, str]], env: dict[str, str]
    ) -> None:
        """A free port, the folder its log goes to, and its environment: `settings` for
        the listen address (the world it guards), then `env` over them."""
        self.listen = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.listen}"
        self.folder = folder
        self.env = {**settings(self.listen), **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, extra: dict[str, str]) -> None:
        command = [sys.executable, "-m", "watchdog.cli", "run", "--policy", str(self.policy)]
        with (self.folder / "daemon.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, env={**self.env, **extra}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log,
            )
        self.starts += 1
        _until(lambda: self.dead() or _answers(self.url + "/healthz"), 20, "the daemon up")

    def dead(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def revive(self) -> None:
        """Restart without the crash setting if it died (at its kill point)."""
        if self.dead():
            self.start({})

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def _until(predicate: Callable[[], bool], seconds: float, what: str) -> bool:
    """Poll `predicate`; False (not an error) when `seconds` pass: the checks judge."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# Reading the journal file -----------------------------------------------------------------


@contextlib.contextmanager
def reading(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def _rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    with reading(db) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []


def _paged(conn: sqlite3.Connection, incident: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE incident_id = ? AND event = 'trigger' LIMIT 1", (incident,)
    ).fetchone()
    return row is not None


def all_final(db: Path) -> bool:
    """Every incident closed, or escalated with a trigger page queued."""
    with reading(db) as conn:
        for row in conn.execute("SELECT id, state, closed_at FROM incidents"):
            closed = row["closed_at"] is not None and row["state"] in FINAL_CLOSED
            if not closed and not (row["state"] == "escalated" and _paged(conn, row["id"])):
                return False
    return True


# The invariants -------------------------------------------------------------------------------


def non_idempotent_twice(db: Path) -> list[str]:
    """A non-idempotent step never has two rows that ran (or may have) at one position."""
    rows = _rows(
        db,
        "SELECT incident_id, idx, rung, MIN(name) AS name, COUNT(*) AS n FROM steps"
        " WHERE idempotent = 0 AND status IN (?, ?, ?) GROUP BY incident_id, idx, rung"
        " HAVING COUNT(*) > 1",
        NON_FINAL_STEP,
    )
    return [
        f"incident {r['incident_id']}: non-idempotent step {r['idx']} ({r['name']}, rung "
        f"{r['rung']}) has {r['n']} rows started/succeeded/failed: it may have run twice"
        for r in rows
    ]


def incidents_final(db: Path) -> list[str]:
    """Every incident resolved/closed, or escalated with a page row in the outbox."""
    out = []
    with reading(db) as conn:
        for r in conn.execute("SELECT id, key, state, closed_at FROM incidents ORDER BY id"):
            if r["closed_at"] is not None and r["state"] in FINAL_CLOSED:
                continue
            if r["state"] == "escalated":
                if not _paged(conn, r["id"]):
                    out.append(f"incident {r['id']} ({r['key']}) escalated but no page queued")
                continue
            if r["state"] not in WEDGE_STATES:  # wedged ones are said by incidents_wedged
                out.append(f"incident {r['id']} ({r['key']}) not final: still {r['state']}")
    return out


def followups_owed(db: Path) -> list[str]:
    """An ended incident that ran a step has its follow-ups: they commit with the move (or
    the human close) that ends it, so no kill point can leave one ended without them."""
    rows = _rows(
        db,
        "SELECT id, key, state FROM incidents i WHERE closed_at IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM steps s WHERE s.incident_id = i.id AND s.status != 'skipped')"
        " AND NOT EXISTS (SELECT 1 FROM followups f WHERE f.incident_id = i.id) ORDER BY id",
    )
    return [f"incident {r['id']} ({r['key']}) {r['state']} with no follow-ups" for r in rows]


def incidents_wedged(db: Path) -> list[str]:
    """No incident left in a state no restart picks up."""
    rows = _rows(
        db,
        f"SELECT id, key, state FROM incidents WHERE closed_at IS NULL AND state IN"
        f" ({','.join('?' * len(WEDGE_STATES))}) ORDER BY id",
        WEDGE_STATES,
    )
    return [f"incident {r['id']} ({r['key']}) wedged in {r['state']}" for r in rows]


def pages_queued(db: Path) -> list[str]:
    """Every state change that calls for a page (songnodes.yaml `notify`) has an outbox row:
    P0/P1 opened (detected → triaged), awaiting_approval and escalated: a trigger; a close
    of an incident that paged, by the daemon or by a human: a resolve."""
    out = []
    with reading(db) as conn:
        incidents = {r["id"]: r for r in conn.execute("SELECT * FROM incidents")}
        for e in conn.execute("SELECT incident_id, data FROM events"
                              " WHERE kind IN ('state', 'closed_by_human')"):
            data = _json(e["data"])
            incident = incidents[e["incident_id"]]
            source, target = data.get("from"), data.get("to")
            opened_loud = source == "detected" and target == "triaged" and incident[
                "severity"
            ] in ("P0", "P1")
            wants = None
            if target in ("escalated", "awaiting_approval") or opened_loud:
                wants = "trigger"
            elif target in FINAL_CLOSED and _paged(conn, incident["id"]):
                wants = "resolve"
            if wants is None:
                continue
            found = conn.execute(
                "SELECT 1 FROM outbox WHERE incident_id = ? AND event = ?",
                (incident["id"], wants),
            ).fetchone()
            if found is None:
                out.append(
                    f"incident {incident['id']} ({incident['key']}) moved {source} → {target}"
                    f" but no {wants} page is in the outbox"
                )
        for r in conn.execute("SELECT id, incident_id, channel, event FROM outbox"
                              " WHERE status = 'pending'"):
            out.append(f"page {r['id']} ({r['event']} to {r['channel']}, incident "
                       f"{r['incident_id']}) still pending: never delivered")
    return out


def steps_finished(db: Path) -> list[str]:
    """Step rows never stay 'started'."""
    rows = _rows(db, "SELECT id, incident_id, idx, name FROM steps WHERE status = 'started'")
    return [
        f"incident {r['incident_id']}: step {r['idx']} ({r['name']}, row {r['id']}) left started"
        for r in rows
    ]


def escalation_pages(db: Path) -> str:
    """The trigger pages of every open escalated incident, as one text: what a human was
    told is theirs (a world check excuses what they name)."""
    with reading(db) as conn:
        return " ".join(
            r["body"]
            for r in conn.execute(
                "SELECT o.body FROM outbox o JOIN incidents i ON i.id = o.incident_id"
                " WHERE i.state = 'escalated' AND i.closed_at IS NULL AND o.event = 'trigger'"
            )
        )


def world_agrees(db: Path, stack: SandboxStack, baseline: list[dict[str, Any]]) -> list[str]:
    """The sandbox as the journal says: every service running and the configuration table
    as it was before the faults, unless an escalated incident's page names the service
    (or the table)."""
    out = []
    named = escalation_pages(db)
    for name, service in stack.control.services().items():
        if not service["running"] and name not in named:
            out.append(f"service {name} is stopped and no escalated incident's page names it")
    for fault in stack.control.faults():
        if not named:
            what = {k: v for k, v in fault.items() if k != "since"}
            out.append(f"fault {what} still in effect and no escalated incident paged a human")
    if stack.control.table(CONFIG_TABLE) != baseline and CONFIG_TABLE not in named:
        out.append(f"{CONFIG_TABLE} differs from its rows before the faults and no escalated"
                   " incident's page names it")
    return out


def judged(db: Path, world: str, agrees: Callable[[], list[str]]) -> list[str]:
    """Every invariant's violations, each prefixed with the invariant's name: the six on
    the journal, then the world's own check (`world`, named so in the report)."""
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        ("non_idempotent_twice", lambda: non_idempotent_twice(db)),
        ("incidents_final", lambda: incidents_final(db)),
        ("incidents_wedged", lambda: incidents_wedged(db)),
        ("pages_queued", lambda: pages_queued(db)),
        ("steps_finished", lambda: steps_finished(db)),
        ("followups_owed", lambda: followups_owed(db)),
        (world, agrees),
    ]
    return [f"{name}: {v}" for name, check in checks for v in check()]


def judge(db: Path, stack: SandboxStack, baseline: list[dict[str, Any]]) -> list[str]:
    """The journal's invariants and the sandbox as the journal says."""
    return judged(db, "world_agrees", lambda: world_agrees(db, stack, baseline))


def _json(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    return value if isinstance(value, dict) else {}


# One run -----------------------------------------------------------------------------------


def run_scenario(scenario: str, kill: KillPoint | None = None) -> Run:
    """A fresh sandbox and daemon through `scenario`, killed at `kill` (None: a clean run)."""
    if scenario in POSTGRES_SCENARIOS:
        from tests.integration.crash_postgres import run_pg_scenario

        return run_pg_scenario(scenario, kill)
    if scenario in ENGINE_SCENARIOS:
        from tests.integration.crash_engines import run_engine_scenario

        return run_engine_scenario(scenario, kill)
    began = time.monotonic()
    run = Run(scenario, kill)
    with tempfile.TemporaryDirectory(prefix="crash-matrix-") as tmp, contextlib.ExitStack() as es:
        folder = Path(tmp)
        log = folder / "commits.log"
        slack, hook, paging = pagers(es, log)
        if scenario in PAGER_TROUBLE:
            hook.fail_next(1, status=503)
            slack.reject_next(1)
        stack = es.enter_context(_sandbox(folder / "sandbox"))
        baseline = stack.control.table(CONFIG_TABLE)
        people: dict[str, str] = {}
        tokens: dict[str, str] = {}
        if scenario in NEEDS_PEOPLE:
            path, tokens = write_people(folder)
            people = {"WATCHDOG_PEOPLE": str(path)}
        daemon = Daemon(stack, folder, {
            **paging, "WATCHDOG_ALERTMANAGER_TOKEN": ALERTMANAGER_TOKEN, **people,
        })
        es.callback(daemon.stop)
        crash = {} if kill is None else kill.environment()
        db = folder / "journal.db"
        daemon.start(crash)
        _until(lambda: revived(daemon) and _has_snapshot(db), 30, "a baseline")
        ctx = Context(daemon.url, stack, db, tokens)
        for step in SCENARIOS[scenario]:
            known = {r["id"] for r in _rows(db, "SELECT id FROM incidents")}
            if isinstance(step, Fault):
                stack.inject(step.kind, **step.body)
                _until(
                    lambda known=known: revived(daemon) and _fault_done(db, known),  # type: ignore[misc]
                    FAULT_BOUND,
                    "final",
                )
            else:
                _until(
                    lambda step=step, known=known: _action_done(daemon, ctx, step, known),  # type: ignore[misc]
                    FAULT_BOUND,
                    "final",
                )
        _until(lambda: revived(daemon) and not _rows(
            db, "SELECT 1 FROM outbox WHERE status = 'pending'"), OUTBOX_BOUND, "pages sent")
        daemon.stop()
        read_commit_log(run, log, db)
        run.violations += judge(db, stack, baseline)
    run.seconds = time.monotonic() - began
    return run


def pagers(es: contextlib.ExitStack, log: Path) -> tuple[FakeSlack, FakeWebhook, dict[str, str]]:
    """The fake Slack and webhook every run pages, and the daemon settings that point at
    them and at the run's commit log."""
    slack = es.enter_context(FakeSlack())
    hook = es.enter_context(FakeWebhook(WEBHOOK_TOKEN))
    return slack, hook, {
        "WATCHDOG_SLACK_WEBHOOK_URL": slack.webhook_url,
        "WATCHDOG_WEBHOOK_URL": hook.hook_url,
        "WATCHDOG_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "WATCHDOG_COMMIT_LOG": str(log),
    }


def read_commit_log(run: Run, log: Path, db: Path) -> None:
    """The run's writes in order and the site its kill hit, from WATCHDOG_COMMIT_LOG, and
    the path it took, from the journal's events."""
    run.story = [
        f"#{r['incident_id']} {r['kind']}: {r['summary']}"
        for r in _rows(db, "SELECT incident_id, kind, summary FROM events ORDER BY id")
    ] if db.exists() else []
    lines = log.read_text().splitlines() if log.exists() else []
    run.sites = [line for line in lines if "\t" not in line]
    killed = [line.split("\t")[0] for line in lines if "\t" in line]
    run.killed_site = killed[0] if killed else None
    if run.kill is not None and run.killed_site is None:
        run.unreached = f"kill point not reached: the run made {len(run.sites)} writes"


@contextlib.contextmanager
def _sandbox(folder: Path) -> Iterator[SandboxStack]:
    """A started sandbox; one boots at a time (a dozen processes each), tried twice, since
    a busy machine can miss its start-up deadline."""
    with _STARTING:
        try:
            stack = SandboxStack(folder).start()
        except SandboxStartError:
            stack = SandboxStack(folder.with_name("sandbox-again")).start()
    try:
        yield stack
    finally:
        stack.stop()


def revived(daemon: Daemon) -> bool:
    daemon.revive()
    return True


def _has_snapshot(db: Path) -> bool:
    return bool(_rows(db, "SELECT 1 FROM snapshots WHERE table_name = ?", (CONFIG_TABLE,)))


def _action_done(daemon: Daemon, ctx: Context, action: Action, known: set[int]) -> bool:
    """Revive the daemon, poll the action; over once it took effect and all is final."""
    daemon.revive()
    if not action.poll(ctx) or (action.until is not None and not action.until(ctx)):
        return False
    if action.opens:
        return _fault_done(ctx.db, known)
    return all_final(ctx.db)


def _fault_done(db: Path, known: set[int]) -> bool:
    """A new incident exists and every incident is final."""
    ids = {r["id"] for r in _rows(db, "SELECT id FROM incidents")}
    return bool(ids - known) and all_final(db)


# Choosing kill points ----------------------------------------------------------------------------


def first_of_each_site(scenario: str, sites: list[str]) -> list[KillPoint]:
    """The first write of every distinct site, before and after: the cheap cover."""
    firsts: dict[str, int] = {}
    for number, site in enumerate(sites, start=1):
        firsts.setdefault(site, number)
    return [
        kill_point(scenario, sites, number, when)
        for number in firsts.values()
        for when in ("before", "after")
    ]


def following(scenario: str, sites: list[str], cause: str, then: str) -> list[KillPoint]:
    """For every write of site `cause`, the next write of site `then`, before and after."""
    points = []
    for number, site in enumerate(sites, start=1):
        if site != cause:
            continue
        later = [n for n, s in enumerate(sites[number:], start=number + 1) if s == then]
        if later:
            points += [kill_point(scenario, sites, later[0], when) for when in ("before", "after")]
    return points


#: Kill points a scenario needs besides the first of each new site: the daemon's own move
#: after each approval it received (its API runs in the daemon process), i.e. the
#: approve → executing commit the approvals caused, and the resolve page after a close,
#: before and after.
ALSO: dict[str, tuple[tuple[str, str], ...]] = {
    "approval": (("record_approval", "commit_move"),),
    # The resolve page the daemon queues after a person's close (its own transaction).
    "human_close": (("close_by_human", "enqueue_page"),),
}


def each_site_once(
    skip: frozenset[str] = frozenset(),
) -> Callable[[str, list[str]], list[KillPoint]]:
    """A chooser over scenarios in order: the first write of every site (but `skip`'s),
    before and after, that no earlier scenario killed yet, plus the scenario's ALSO points.
    Every write site the scenarios reach is covered once each way, in the cheapest scenario
    that reaches it (order them cheap first)."""
    covered: set[tuple[str, str]] = set()

    def choose(scenario: str, sites: list[str]) -> list[KillPoint]:
        points = []
        for kill in first_of_each_site(scenario, sites):
            if kill.planned_site in skip:
                continue
            if (kill.planned_site, kill.when) not in covered:
                covered.add((kill.planned_site, kill.when))
                points.append(kill)
        for cause, then in ALSO.get(scenario, ()):
            for kill in following(scenario, sites, cause, then):
                if kill not in points:  # `following` can name one write twice
                    points.append(kill)
        return points

    return choose


def every_write(scenario: str, sites: list[str]) -> list[KillPoint]:
    """Every write of the clean run, before and after: the full matrix."""
    return [
        kill_point(scenario, sites, number, when)
        for number in range(1, len(sites) + 1)
        for when in ("before", "after")
    ]


# The matrix --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ScenarioResult:
    scenario: str
    clean: Run
    runs: list[Run]

    @property
    def killed_sites(self) -> set[str]:
        return {r.killed_site for r in self.runs if r.killed_site is not None}

    @property
    def uncovered(self) -> set[str]:
        """Sites of the clean run that no kill point actually hit."""
        return set(self.clean.sites) - self.killed_sites


def _attempt(scenario: str, kill: KillPoint | None = None) -> Run:
    """`run_scenario`, tried twice if the harness (not the daemon) fails, or if the run took
    another path than the clean one and never reached its kill point (a real engine's timing
    can, say, have a fault's incident escalate without a step): its verdict stands, but the
    kill point it was for is tried once more."""
    error = ""
    run = None
    for _ in range(2):
        try:
            run = run_scenario(scenario, kill)
        except (SandboxStartError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        if not run.unreached or run.violations:
            return run
    return run if run is not None else Run(scenario, kill, error=error)


def _clean(scenario: str, shaped: Callable[[Run], bool]) -> Run:
    """A clean run of `scenario`, tried up to three times until `shaped` holds: a real
    engine's timing can take a run down another path than the one whose writes the kill
    points are chosen from (once in CI, the ladder's second fault escalated without its
    revert step); the last run is returned either way, its story telling which path."""
    run = _attempt(scenario)
    for _ in range(2):
        if shaped(run):
            break
        run = _attempt(scenario)
    return run


def run_matrix(
    scenarios: list[str],
    choose: Callable[[str, list[str]], list[KillPoint]],
    *,
    workers: int,
    out: Callable[[str], None] = print,
    shaped: Callable[[Run], bool] = lambda run: True,
) -> list[ScenarioResult]:
    """For each scenario a clean run (one that is `shaped` as the kill points need), then
    `choose`'s kill points, `workers` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        cleans = dict(zip(scenarios, pool.map(lambda s: _clean(s, shaped), scenarios),
                          strict=True))
        for scenario, clean in cleans.items():
            if not shaped(clean):
                raise AssertionError(
                    f"{scenario}: three clean runs took another path than the one the kill"
                    f" points need; the last one's writes: {clean.sites}; its journal:\n"
                    + "\n".join(clean.story))
        points = [k for s in scenarios for k in choose(s, cleans[s].sites)]

        def one(kill: KillPoint) -> Run:
            run = _attempt(kill.scenario, kill)
            out(f"  ran {kill}: killed at {run.killed_site}, {len(run.violations)} violations,"
                f" {run.seconds:.0f} s {run.error or run.unreached}".rstrip())
            return run

        runs = list(pool.map(one, points))
    results = []
    for scenario in scenarios:
        mine = [r for r in runs if r.scenario == scenario]
        result = ScenarioResult(scenario, cleans[scenario], mine)
        results.append(result)
        out(
            f"{scenario}: {len(mine)} kill points over {len(cleans[scenario].sites)} writes, "
            f"{len(result.killed_sites)} sites killed, "
            f"{sum(1 for r in mine if r.violations)} with violations"
        )
        for run in mine:
            if run.error or run.unreached:
                out(f"  {run.kill}: NOT RUN: {run.error or run.unreached}")
            for violation in run.violations:
                out(f"  {run.kill} (killed at {run.killed_site}): {violation}")
    return results
