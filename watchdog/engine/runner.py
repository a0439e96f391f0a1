"""Assembling a daemon from settings and a policy, and running it until SIGTERM.

`watchdog run` and `watchdog demo` both come through here, so the demo runs the
very wiring production runs: the same journal, backends, API and signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack

import httpx
import structlog
import uvicorn

from watchdog.actions.base import ConfigStore, Orchestrator
from watchdog.actions.config import ConfigActions
from watchdog.actions.http import HttpActions
from watchdog.actions.registry import build_handlers
from watchdog.actions.sandbox import SandboxConfigStore, SandboxOrchestrator
from watchdog.api.app import create_app
from watchdog.engine.daemon import Daemon
from watchdog.policy.schema import Policy
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal

log = structlog.get_logger("watchdog.runner")

SANDBOX_SCHEME = "sandbox+"


def backends(
    settings: Settings, client: httpx.AsyncClient
) -> tuple[Orchestrator | None, ConfigStore | None]:
    """The orchestrator and config store named by the settings (None when not set)."""
    orchestrator: Orchestrator | None = None
    store: ConfigStore | None = None
    if settings.orchestrator:
        url = _sandbox_url("WATCHDOG_ORCHESTRATOR", settings.orchestrator, "Docker")
        orchestrator = SandboxOrchestrator(url, client)
    if settings.config_store:
        url = _sandbox_url("WATCHDOG_CONFIG_STORE", settings.config_store, "PostgreSQL")
        store = SandboxConfigStore(url, client)
    return orchestrator, store


def _sandbox_url(variable: str, value: str, later: str) -> str:
    if not value.startswith(SANDBOX_SCHEME):
        raise ValueError(
            f"{variable}={value!r}: expected sandbox+http://127.0.0.1:PORT "
            f"({later} arrives with its own backend)"
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
    orchestrator, store = backends(settings, client)
    http = HttpActions(policy, client)
    config = ConfigActions(store, journal, http, settings.backup_dir) if store is not None else None
    handlers = build_handlers(
        http=http,
        orchestrator=orchestrator,
        config=config,
        protected=policy.stack.protected_services,
    )
    return Daemon(policy, journal, handlers, client=client, config_store=store, dry_run=dry_run)


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
