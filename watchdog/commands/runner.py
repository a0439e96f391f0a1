"""Assembling a daemon from settings and a policy: backends, actions, pager, engine.

`watchdog run` (watchdog.commands.serving) and the commands that act by hand
(`check`, `rollback`, `config`) build their parts here, so each acts through the
very backends the daemon uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from watchdog.actions.backup_confirm import BackupConfirm
from watchdog.actions.base import ConfigStore, Handler, Orchestrator, Reverter
from watchdog.actions.config import ConfigActions
from watchdog.actions.docker import DockerOrchestrator
from watchdog.actions.docker_evidence import DockerEvidence
from watchdog.actions.docker_labels import LabelledOrchestrator
from watchdog.actions.http import HttpActions
from watchdog.actions.registry import build_handlers, build_preflights, build_previews
from watchdog.actions.sandbox import SandboxConfigStore, SandboxOrchestrator
from watchdog.actions.sandbox_versions import SandboxSchemaGuard
from watchdog.actions.schemaguard import SchemaGuard
from watchdog.commands.journalfile import state_folder
from watchdog.commands.systemactions import system_actions
from watchdog.engine.alerts import AlertIntake
from watchdog.engine.daemon import Daemon
from watchdog.engine.executor import Preflight
from watchdog.engine.health import Carried, Health
from watchdog.metrics import Metrics
from watchdog.notify.channels import build_channels
from watchdog.notify.outbox import Outbox
from watchdog.notify.retry import RetryPolicy
from watchdog.policy.schema import Policy, TableSignal
from watchdog.probes.base import Probe, build_probes
from watchdog.probes.sandbox import sandbox_docker_probes
from watchdog.settings import Settings
from watchdog.store.journal import Journal
from watchdog.store.pg_base import is_pg_url

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
        project = policy.stack.compose_project or policy.stack.name
        docker_orchestrator = (
            DockerOrchestrator(
                factory, project, snapshots=journal, protected=policy.stack.protected_services
            )
            if policy.discovery is None  # else labels and images protect services too
            else LabelledOrchestrator(
                factory, project, snapshots=journal, spec=policy.discovery,
                protected=policy.stack.protected_services,
            )
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
    metrics: Metrics | None = None,
    shared: Shared | None = None,
) -> Daemon:
    """One engine: the only one of a single sidecar, or one term's on a shared journal."""
    chosen = backends(settings, client, policy, journal)
    table = action_table(policy, settings, journal, client, chosen)
    metrics = metrics or Metrics.for_policy(policy)
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
        observations_retention=settings.observations_retention,
        time_scale=settings.time_scale,
        probes=probes_for(policy, client, chosen) if sandboxed else None,
        outbox=build_outbox(policy, settings, journal, client, metrics, dry_run=dry_run)
        if shared is None or shared.acting else None,
        acting=shared is None or shared.acting,
        health=shared.health if shared else None,
        alerts=shared.alerts if shared else None,
        carried=shared.carried if shared else None,
        shared_journal=shared.journal_shared if shared else False,
    )


@dataclass(frozen=True, slots=True)
class Shared:
    """What every engine of a sidecar on a shared journal holds in common (the API serves
    the same health and alert intake through every term), and whether this one acts."""

    health: Health
    alerts: AlertIntake
    acting: bool = False
    carried: Carried | None = None
    journal_shared: bool = True  # by several sidecars (PostgreSQL), not one's own file


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
        # Sidecars on one host network share a host name, and each may be pid 1.
        holder=f"{settings.instance}#{os.getpid()}" if settings.instance else None,
    )
