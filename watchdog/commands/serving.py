"""`watchdog run`: the daemon and its API in one process, until SIGTERM.

`watchdog run` and `watchdog demo` both come through here, so the demo runs the
very wiring production runs. One sidecar on a SQLite file runs one engine for its
life; sidecars sharing a PostgreSQL journal each run the engine of their current
term (`watchdog.engine.leadership`), while one API serves the same health, metrics
and alert intake through every term.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack

import httpx
import structlog
import uvicorn

from watchdog.api.app import create_app
from watchdog.commands.daemonkeys import register_daemon_secrets
from watchdog.commands.journalfile import journal_path, journal_place
from watchdog.commands.listener import KEEP_ALIVE_SECONDS, listening_socket
from watchdog.commands.runner import Shared, build_daemon
from watchdog.drill.scheduled import start_drills
from watchdog.engine.alerts import AlertIntake
from watchdog.engine.daemon import Daemon
from watchdog.engine.health import Carried, Health
from watchdog.engine.leadership import Terms, page_unclean_takeover
from watchdog.engine.shadow import Shadow, announce
from watchdog.heap import settle_heap
from watchdog.metrics import Metrics
from watchdog.people import People
from watchdog.policy.explainvalues import PolicyPlaces
from watchdog.policy.quorums import unmeetable_quorums
from watchdog.policy.schema import Policy
from watchdog.reporting import flush_sentry, init_sentry
from watchdog.scrub import scrub_text
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal
from watchdog.store.pg_base import is_pg_url
from watchdog.store.pg_lease import Lease, Term, default_instance
from watchdog.store.sqlite_base import DaemonLock

log = structlog.get_logger("watchdog.serve")

#: `--shadow-policy`: the file as given (named in the journal and logs) and its policy.
ShadowPolicy = tuple[str, Policy]


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    policy: Policy,
    settings: Settings,
    *,
    dry_run: bool = False,
    places: PolicyPlaces | None = None,
    shadow: ShadowPolicy | None = None,
) -> int:
    """Run the daemon and its API until SIGTERM or SIGINT; 0 on a clean stop.

    First, before anything is logged: on SQLite the journal's lock (a second daemon on
    the same file is refused, naming the first one's pid) and the API's port (a busy one
    is refused); both end `watchdog run` in one line with exit 2. On PostgreSQL several
    sidecars share the journal and one leads (`watchdog.engine.leadership`).
    `places` (the policy file's lines, `watchdog.policymarks`) are cited by the web page's why.
    `shadow` (its file, its policy): `--shadow-policy`, beside the engine that acts.
    """
    shared = is_pg_url(settings.state)
    lock = (
        contextlib.nullcontext() if shared
        else DaemonLock(journal_path(settings.state).absolute())
    )
    with lock, listening_socket(settings) as listener:
        return await _serve(
            policy, settings, listener, journal_place(settings.state), dry_run=dry_run,
            places=places, shadow=shadow,
        )


async def _serve(
    policy: Policy,
    settings: Settings,
    listener: socket.socket,
    journal_at: str,
    *,
    dry_run: bool,
    places: PolicyPlaces | None = None,
    shadow: ShadowPolicy | None = None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    register_daemon_secrets(settings, policy)
    if shadow is not None:
        announce(policy, shadow[1], shadow[0])
    if settings.sentry_dsn is not None:
        init_sentry(settings.sentry_dsn.get_secret_value())
    people = People(settings.people, policy.roles) if settings.people else None
    if people is not None and (hint := people.hint()) is not None:
        log.warning("no_approvers", hint=hint)
    elif people is not None:
        for warning in unmeetable_quorums(policy.authority, people.holders()):
            log.warning("quorum_unmeetable", problem=warning)
    journal = open_journal(settings.state)  # the API's, the intake's: never fenced
    instance = settings.instance or default_instance()
    metrics = Metrics.for_policy(policy)
    health = Health(started_at=time.time(), pid=os.getpid(), stack=policy.stack.name,
                    instance=instance)
    alerts = AlertIntake(policy, journal, time.time)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient())

        def engine(handle: Journal, shared: Shared) -> Daemon:
            daemon = build_daemon(
                policy, settings, handle, client, dry_run=dry_run, metrics=metrics, shared=shared
            )
            daemon.facts.holders = people.holders if people is not None else None
            daemon.beat.located(scrub_text(journal_at), settings.listen)
            if shadow is not None and daemon.acting:  # the shadow runs where the engine acts
                daemon.shadow = Shadow(policy, shadow[1], shadow[0], handle, metrics)
            return daemon

        if is_pg_url(settings.state):
            run = _terms(policy, settings, journal, instance, engine, health, alerts, metrics)
        else:
            run = _single(
                engine(journal, Shared(health, alerts, acting=True, journal_shared=False)), metrics
            )
        app = create_app(
            journal, metrics, health, time.time, alerts=alerts,
            people=people, close_roles=policy.close_roles, followup_items=policy.followups,
            approval_expires=policy.guards.approval_expires, policy=policy, places=places,
            read_token=settings.read_token.get_secret_value() if settings.read_token else None,
        )
        server = _QuietServer(
            uvicorn.Config(
                app,
                host=settings.listen_host,
                port=settings.listen_port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
        )
        drills = start_drills(policy, settings, journal, client, metrics, journal_at,
                              leading=lambda: health.role == "leader")
        settle_heap()  # everything long-lived exists now
        api = asyncio.create_task(server.serve(sockets=[listener]), name="api")
        log.info("listening", url=f"http://{settings.listen}", journal=scrub_text(journal_at),
                 instance=instance)
        try:
            await run(stop)
        finally:
            server.should_exit = True
            if drills is not None:
                drills.shutdown(wait=False)
            await asyncio.wait_for(api, timeout=5)
            journal.close()
            flush_sentry()
    return 0


Runs = Callable[[asyncio.Event], Awaitable[None]]


def _single(daemon: Daemon, metrics: Metrics) -> Runs:
    """One sidecar on its own journal file: it always leads."""
    daemon.health.leader = daemon.health.instance
    daemon.health.since = daemon.health.started_at
    metrics.leader.set(1)
    return daemon.run


def _terms(
    policy: Policy,
    settings: Settings,
    journal: Journal,
    instance: str,
    engine: Callable[[Journal, Shared], Daemon],
    health: Health,
    alerts: AlertIntake,
    metrics: Metrics,
) -> Runs:
    """Sidecars sharing a PostgreSQL journal: lead or follow, term by term."""
    stack = policy.stack.name
    # Token 0 is never issued (terms start at 1): a follower's engine can write nothing.
    watching = open_journal(settings.state, fence=(stack, 0))
    lease = Lease(settings.state, stack, instance, seconds=settings.lease_seconds)
    try:
        lease.refuse_other_stacks()
    except BaseException:
        lease.close()
        watching.close()
        raise

    def make(token: int | None, carried: Carried | None) -> Daemon:
        if token is None:
            return engine(watching, Shared(health, alerts, carried=carried))
        handle = open_journal(settings.state, fence=(stack, token))
        daemon = engine(handle, Shared(health, alerts, acting=True, carried=carried))
        daemon.beat.leads(instance, token, settings.lease_seconds)
        return daemon

    async def page(term: Term) -> None:
        await page_unclean_takeover(alerts, stack, instance, term)

    terms = Terms(lease, make, health, metrics, on_unclean=page)

    async def run(stop: asyncio.Event) -> None:
        try:
            await terms.run(stop)
        finally:
            watching.close()

    return run
