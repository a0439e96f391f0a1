"""Assembling a daemon from settings and a policy, and running it until SIGTERM.

`watchdog run` and `watchdog demo` both come through here, so the demo runs the
very wiring production runs: the same journal, backends, API and signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import docker
import httpx
import structlog
import uvicorn

from watchdog.actions.base import ConfigStore, Orchestrator, Reverter
from watchdog.actions.config import ConfigActions
from watchdog.actions.docker import DockerOrchestrator
from watchdog.actions.http import HttpActions
from watchdog.actions.registry import build_handlers, build_previews
from watchdog.actions.sandbox import SandboxConfigStore, SandboxOrchestrator
from watchdog.api.app import create_app
from watchdog.engine.daemon import Daemon
from watchdog.policy.schema import Policy
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal

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


def backends(
    settings: Settings,
    client: httpx.AsyncClient,
    policy: Policy | None = None,
    journal: Journal | None = None,
) -> Backends:
    """The orchestrator (sandbox or Docker) and config store named by the settings."""
    store: ConfigStore | None = None
    if settings.config_store:
        url = _sandbox_url("WATCHDOG_CONFIG_STORE", settings.config_store, "PostgreSQL")
        store = SandboxConfigStore(url, client)
    value = settings.orchestrator or ""
    if value == DOCKER or value.startswith(DOCKER_SCHEME):
        url = value[len(DOCKER_SCHEME) :] if value != DOCKER else docker_host()
        factory = docker_factory(url)
        if policy is None or journal is None:
            return Backends(store=store, docker=factory)
        docker_orchestrator = DockerOrchestrator(
            factory,
            policy.stack.compose_project or policy.stack.name,
            snapshots=journal,
            protected=policy.stack.protected_services,
        )
        return Backends(docker_orchestrator, docker_orchestrator, store, factory)
    if value:
        url = _sandbox_url("WATCHDOG_ORCHESTRATOR", value, "")
        return Backends(orchestrator=SandboxOrchestrator(url, client), store=store)
    return Backends(store=store)


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def docker_factory(url: str) -> Callable[[], Any]:
    """A fresh client per use, so the daemon survives the engine restarting."""

    def connect() -> Any:
        return docker.DockerClient(base_url=url, timeout=10)

    return connect


def _sandbox_url(variable: str, value: str, alternative: str) -> str:
    if not value.startswith(SANDBOX_SCHEME):
        docker_form = ", docker or docker+unix:///PATH" if variable.endswith("ORCHESTRATOR") else ""
        raise ValueError(
            f"{variable}={value!r}: expected sandbox+http://127.0.0.1:PORT{docker_form}"
            + (f" ({alternative} arrives with its own backend)" if alternative else "")
        )
    return value[len(SANDBOX_SCHEME) :]


def build_daemon(
    policy: Policy,
    settings: Settings,
    journal: Journal,
    client: httpx.AsyncClient,
    *,
    dry_run: bool,
) -> Daemon:
    chosen = backends(settings, client, policy, journal)
    store = chosen.store
    http = HttpActions(policy, client)
    config = ConfigActions(store, journal, http, settings.backup_dir) if store is not None else None
    handlers = build_handlers(
        http=http,
        orchestrator=chosen.orchestrator,
        reverter=chosen.reverter,
        config=config,
        protected=policy.stack.protected_services,
    )
    return Daemon(
        policy,
        journal,
        handlers,
        client=client,
        config_store=store,
        reverter=chosen.reverter,
        docker_factory=chosen.docker,
        previews=build_previews(chosen.orchestrator),
        dry_run=dry_run,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(policy: Policy, settings: Settings, *, dry_run: bool = False) -> int:
    """Run the daemon and its API until SIGTERM or SIGINT; 0 on a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    journal = open_journal(settings.state)
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient())
        daemon = build_daemon(policy, settings, journal, client, dry_run=dry_run)
        app = create_app(journal, daemon.metrics, daemon.health, time.time)
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
        api = asyncio.create_task(server.serve(), name="api")
        log.info("listening", url=f"http://{settings.listen}", journal=settings.state)
        try:
            await daemon.run(stop)
        finally:
            server.should_exit = True
            await asyncio.wait_for(api, timeout=5)
            journal.close()
    return 0
