"""Assembling a daemon from settings and a policy, and running it until SIGTERM.

`watchdog run` and `watchdog demo` both come through here, so the demo runs the
very wiring production runs: the same journal, backends, API and signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
import uvicorn

from watchdog.actions.backup_confirm import BackupConfirm
from watchdog.actions.base import ConfigStore, Handler, Orchestrator, Reverter
from watchdog.actions.config import ConfigActions
from watchdog.actions.docker import DockerOrchestrator
from watchdog.actions.docker_evidence import DockerEvidence
from watchdog.actions.http import HttpActions
from watchdog.actions.registry import build_handlers, build_preflights, build_previews
from watchdog.actions.sandbox import SandboxConfigStore, SandboxOrchestrator
from watchdog.actions.sandbox_versions import SandboxSchemaGuard
from watchdog.actions.schemaguard import SchemaGuard
from watchdog.api.app import create_app
from watchdog.commands.daemonkeys import register_daemon_secrets
from watchdog.commands.journalfile import journal_path, journal_place, state_folder
from watchdog.commands.listener import listening_socket
from watchdog.commands.systemactions import system_actions
from watchdog.engine.daemon import Daemon
from watchdog.engine.executor import Preflight
from watchdog.heap import settle_heap
from watchdog.metrics import Metrics
from watchdog.notify.channels import build_channels
from watchdog.notify.outbox import Outbox
from watchdog.notify.retry import RetryPolicy
from watchdog.people import People
from watchdog.policy.quorums import unmeetable_quorums
from watchdog.policy.schema import Policy, TableSignal
from watchdog.probes.base import Probe, build_probes
from watchdog.probes.sandbox import sandbox_docker_probes
from watchdog.reporting import flush_sentry, init_sentry
from watchdog.scrub import scrub_text
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal
from watchdog.store.pg_base import PgDaemonLock, is_pg_url
from watchdog.store.sqlite_base import DaemonLock

log = structlog.get_logger("watchdog.runner")

SANDBOX_SCHEME = "sandbox+"
DOCKER = "docker"
DOCKER_SCHEME = "docker+"


@dataclass(frozen=True, slots=True)
class Backends:
    """What acts on the stack, as the settings name it; None where nothing is set."""

    orchestrator: Orchestrator | None = None
    reverter: Reverter | None = None
    store: ConfigStore | None = None
    docker: Callable[[], Any] | None = None
    database_url: str | None = None


def backends(
    settings: Settings,
    client: httpx.AsyncClient,
    policy: Policy | None = None,
    journal: Journal | None = None,
) -> Backends:
    """The orchestrator (sandbox or Docker) and config store named by the settings."""
    store, database_url = config_store(settings, client)
    value = settings.orchestrator or ""
    if value == DOCKER or value.startswith(DOCKER_SCHEME):
        url = value[len(DOCKER_SCHEME) :] if value != DOCKER else docker_host()
        factory = docker_factory(url)
        if policy is None or journal is None:
            return Backends(store=store, docker=factory, database_url=database_url)
        docker_orchestrator = DockerOrchestrator(
            factory,
            policy.stack.compose_project or policy.stack.name,
            snapshots=journal,
            protected=policy.stack.protected_services,
        )
        return Backends(docker_orchestrator, docker_orchestrator, store, factory, database_url)
    if value:
        url = _sandbox_url("WATCHDOG_ORCHESTRATOR", value)
        sandbox = SandboxOrchestrator(url, client, snapshots=journal)
        return Backends(sandbox, sandbox if journal else None, store, database_url=database_url)
    return Backends(store=store, database_url=database_url)


def probes_for(
    policy: Policy, client: httpx.AsyncClient, chosen: Backends, names: set[str] | None = None
) -> list[Probe]:
    """The probes of the policy's signals (or of `names`), reading through the chosen backends.
    The sandbox plays Docker too: the policy's Docker signals read its control API as is."""
    others, sandboxed, sandbox = names, list[Probe](), chosen.orchestrator
    if isinstance(sandbox, SandboxOrchestrator):
        others, found = sandbox_docker_probes(policy.probed_signals(), names, client, sandbox)
        sandboxed += found
    return [
        *build_probes(
            policy,
            client,
            names=others,
            read_rows=chosen.store.read_rows if chosen.store is not None else None,
            docker_client_factory=chosen.docker,
            database_url=chosen.database_url,
        ),
        *sandboxed,
    ]


POSTGRES = "postgres"


def config_store(
    settings: Settings, client: httpx.AsyncClient
) -> tuple[ConfigStore | None, str | None]:
    """The configuration store, and the database URL the PostgreSQL parts use."""
    database_url = settings.database_url
    value = settings.config_store or ""
    if not value:
        return None, database_url
    if is_pg_url(value):
        return _postgres_store(value), database_url or value
    if value == POSTGRES:
        if not database_url:
            raise ValueError(
                "WATCHDOG_CONFIG_STORE=postgres needs WATCHDOG_DATABASE_URL "
                "(postgresql://user@host:port/db)"
            )
        return _postgres_store(database_url), database_url
    url = _sandbox_url("WATCHDOG_CONFIG_STORE", value)
    return SandboxConfigStore(url, client), database_url


def _postgres_store(url: str) -> ConfigStore:
    # Imported here: psycopg costs 9 MB that a daemon without PostgreSQL never needs.
    from watchdog.actions.pgstore import PostgresConfigStore

    return PostgresConfigStore(url)


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def docker_factory(url: str) -> Callable[[], Any]:
    """A fresh client per use, so the daemon survives the engine restarting."""

    def connect() -> Any:
        import docker  # loaded when first used: 6 MB a daemon without Docker never needs

        return docker.DockerClient(base_url=url, timeout=10)

    return connect


def _sandbox_url(variable: str, value: str) -> str:
    if not value.startswith(SANDBOX_SCHEME):
        other = (
            ", docker or docker+unix:///PATH"
            if variable.endswith("ORCHESTRATOR")
            else ", postgres (with WATCHDOG_DATABASE_URL) or postgresql://user@host:port/db"
        )
        raise ValueError(f"{variable}={value!r}: expected sandbox+http://127.0.0.1:PORT{other}")
    return value[len(SANDBOX_SCHEME) :]


@dataclass(frozen=True, slots=True)
class ActionTable:
    """What the executor runs steps with: handlers, dry-run previews, pre-approval checks."""

    handlers: dict[str, Handler]
    previews: dict[str, Handler]
    preflights: dict[str, Preflight]


def action_table(
    policy: Policy,
    settings: Settings,
    journal: Journal,
    client: httpx.AsyncClient,
    chosen: Backends,
) -> ActionTable:
    """Every action this deployment can carry out, from the backends the settings chose."""
    store = chosen.store
    http = HttpActions(policy, client)
    validated = {s.table for s in policy.probed_signals() if isinstance(s, TableSignal)}
    config = (
        ConfigActions(store, journal, http, settings.backup_dir, validated=validated)
        if store is not None
        else None
    )
    database = None
    if chosen.database_url:  # psycopg (9 MB) is loaded only by a daemon that uses PostgreSQL
        from watchdog.actions.database import DatabaseActions

        database = DatabaseActions(
            chosen.database_url, migrations_dir=policy.stack.migrations_dir
        )
    coupled = set(policy.stack.schema_coupled_services)
    sandbox = chosen.orchestrator if isinstance(chosen.orchestrator, SandboxOrchestrator) else None
    guarding = SandboxSchemaGuard if sandbox and not chosen.database_url else SchemaGuard
    guard = guarding(chosen.database_url, journal, coupled)
    backups = BackupConfirm(coupled)
    project = policy.stack.compose_project or policy.stack.name
    evidence = (
        DockerEvidence(chosen.docker, project).capture
        if chosen.docker is not None
        else sandbox.evidence if sandbox else None
    )
    system, system_checks = system_actions(
        policy, state_folder(settings), journal,
        probes=lambda names: probes_for(policy, client, chosen, names),
        docker=chosen.docker, reverter=chosen.reverter,
    )
    handlers = build_handlers(
        http=http,
        orchestrator=chosen.orchestrator,
        reverter=chosen.reverter,
        config=config,
        protected=policy.stack.protected_services,
        schema_guard=guard if coupled else None,
        database=database,
        evidence=evidence,
        backups=backups,
        system=system,
    )
    preflights: dict[str, Preflight] = build_preflights(
        orchestrator=chosen.orchestrator, config=config, database=database, backups=backups,
        system=system_checks,
    )
    return ActionTable(handlers, build_previews(chosen.orchestrator), preflights)


def build_daemon(
    policy: Policy,
    settings: Settings,
    journal: Journal,
    client: httpx.AsyncClient,
    *,
    dry_run: bool,
) -> Daemon:
    chosen = backends(settings, client, policy, journal)
    table = action_table(policy, settings, journal, client, chosen)
    metrics = Metrics.for_policy(policy)
    sandboxed = isinstance(chosen.orchestrator, SandboxOrchestrator)  # its own Docker probes
    return Daemon(
        policy,
        journal,
        table.handlers,
        client=client,
        config_store=chosen.store,
        reverter=chosen.reverter,
        docker_factory=chosen.docker,
        database_url=chosen.database_url,
        previews=table.previews,
        preflights=table.preflights,
        dry_run=dry_run,
        metrics=metrics,
        heartbeat_seconds=settings.status_heartbeat,
        probes=probes_for(policy, client, chosen) if sandboxed else None,
        outbox=build_outbox(policy, settings, journal, client, metrics, dry_run=dry_run),
    )


def build_outbox(
    policy: Policy,
    settings: Settings,
    journal: Journal,
    client: httpx.AsyncClient,
    metrics: Metrics,
    *,
    dry_run: bool = False,
) -> Outbox:
    """The pager: the policy's routing, the channels whose credentials are set.

    In dry-run, pages are journaled as 'dry_run' ("would page ...") and none is sent.
    """
    return Outbox(
        spec=policy.notify,
        stack=policy.stack.name,
        journal=journal,
        channels=build_channels(settings, policy.notify),
        metrics=metrics,
        client=client,
        clock=time.time,
        public_url=settings.public_url,
        retry=RetryPolicy(
            base_seconds=settings.notify_backoff,
            cap_seconds=settings.notify_backoff_max,
            timeout_seconds=settings.notify_timeout,
            max_attempts=settings.notify_max_attempts,
            retry_after_max_seconds=settings.notify_retry_after_max,
        ),
        dry_run=dry_run,
        approval_expires=policy.guards.approval_expires,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(policy: Policy, settings: Settings, *, dry_run: bool = False) -> int:
    """Run the daemon and its API until SIGTERM or SIGINT; 0 on a clean stop.

    First, before anything is logged: the journal's lock (a second daemon on the same
    journal is refused, naming the first one's pid) and the API's port (a busy one is
    refused); both end `watchdog run` in one line with exit 2. On PostgreSQL the lock is
    a session advisory lock per schema and stack (not leadership: see the README).
    """
    lock = (
        PgDaemonLock(settings.state, policy.stack.name)
        if is_pg_url(settings.state)
        else DaemonLock(journal_path(settings.state).absolute())
    )
    with lock, listening_socket(settings) as listener:
        return await _serve(
            policy, settings, listener, journal_place(settings.state), dry_run=dry_run
        )


async def _serve(
    policy: Policy,
    settings: Settings,
    listener: socket.socket,
    journal_at: str,
    *,
    dry_run: bool,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    register_daemon_secrets(settings, policy)
    if settings.sentry_dsn is not None:
        init_sentry(settings.sentry_dsn.get_secret_value())
    people = People(settings.people, policy.roles) if settings.people else None
    if people is not None and (hint := people.hint()) is not None:
        log.warning("no_approvers", hint=hint)
    elif people is not None:
        for warning in unmeetable_quorums(policy.authority, people.holders()):
            log.warning("quorum_unmeetable", problem=warning)
    journal = open_journal(settings.state)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient())
        daemon = build_daemon(policy, settings, journal, client, dry_run=dry_run)
        daemon.facts.holders = people.holders if people is not None else None
        daemon.beat.located(scrub_text(journal_at), settings.listen)
        app = create_app(
            journal, daemon.metrics, daemon.health, time.time, alerts=daemon.alerts,
            people=people, close_roles=policy.close_roles, followup_items=policy.followups,
            approval_expires=policy.guards.approval_expires,
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
            )
        )
        settle_heap()  # everything long-lived exists now
        api = asyncio.create_task(server.serve(sockets=[listener]), name="api")
        log.info("listening", url=f"http://{settings.listen}", journal=scrub_text(journal_at))
        try:
            await daemon.run(stop)
        finally:
            server.should_exit = True
            await asyncio.wait_for(api, timeout=5)
            journal.close()
            flush_sentry()
    return 0
