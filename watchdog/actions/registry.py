"""The action name → handler table the executor runs plans through.

Names are the catalogue's (`watchdog.policy.catalogue`); which backend serves
each is decided here, once, from the daemon's settings. An action with no
backend in this deployment is absent from the table, and the executor fails that
step with a message naming it instead of pretending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from watchdog.actions.backup_confirm import BackupConfirm
from watchdog.actions.base import (
    ActionFailed,
    ActionOutcome,
    Handler,
    Orchestrator,
    Reverter,
    services_param,
)
from watchdog.actions.config import ConfigActions
from watchdog.actions.http import HttpActions
from watchdog.actions.schemaguard import SchemaGuard
from watchdog.model import Risk, Step

if TYPE_CHECKING:  # psycopg (9 MB) is loaded only when a database is configured
    from watchdog.actions.database import DatabaseActions


def build_handlers(
    *,
    http: HttpActions,
    orchestrator: Orchestrator | None,
    config: ConfigActions | None,
    protected: Sequence[str],
    reverter: Reverter | None = None,
    schema_guard: SchemaGuard | None = None,
    database: DatabaseActions | None = None,
    evidence: Handler | None = None,
    backups: BackupConfirm | None = None,
    system: Mapping[str, Handler] | None = None,
) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {
        "config.reload": http.reload_config,
        "breaker.reset": http.reset_breaker,
        "smoke_test": http.smoke_test,
        "http.call": http.generic,
        "wait": _wait,
    }
    if orchestrator is not None:
        handlers.update(_service_handlers(orchestrator, set(protected)))
    if reverter is not None:
        handlers["service.revert"] = _revert_handler(reverter, set(protected), schema_guard)
    if evidence is not None:  # scenario 1's checklist: logs and dependents, read only
        handlers["service.evidence"] = evidence
    if backups is not None:
        handlers["backup.confirm"] = backups.confirm
    if system is not None:  # scenario 5: snapshot, emergency stop, resources, rebuild
        handlers.update(system)
    if database is not None:
        handlers.update(
            {
                "database.dump": database.dump,
                "database.backup": database.backup,
                "database.integrity": database.integrity,
                "database.restore": database.restore,
                "migrations.down": database.migrations_down,
            }
        )
    if config is not None:
        handlers.update(
            {
                "config.backup": config.backup,
                "config.restore": config.restore,
                "config.verify": config.verify,
                "provider.disable": config.disable,
                "provider.enable": config.enable,
            }
        )
    return handlers


def _service_handlers(orchestrator: Orchestrator, protected: set[str]) -> dict[str, Handler]:
    def guarded(run: Callable[[Step, list[str]], Awaitable[str]]) -> Handler:
        async def handler(step: Step) -> ActionOutcome:
            # No services named (a policy whose services are discovered, not listed):
            # the failing ones the rule's evidence names (`failing`, for service.recover).
            services = services_param(step) or failing_param(step.param_map().get("failing"))
            touched = sorted(set(services) & protected)
            if touched and step.risk is Risk.SAFE:
                raise ActionFailed(
                    f"refusing to touch protected service(s) {touched} automatically: "
                    "they are stateful; a human must approve a risky step"
                )
            text = await run(step, services)
            # The runbook's "backup current configuration": inspect data from before.
            inspected = dict(getattr(orchestrator, "inspected", None) or {})
            return ActionOutcome(True, text, {"inspect": inspected} if inspected else {})

        return handler

    async def restart(step: Step, services: list[str]) -> str:
        timeout = float(step.param_map().get("stop_timeout", 10))
        return await orchestrator.restart(services, stop_timeout=timeout)

    async def stop(step: Step, services: list[str]) -> str:
        timeout = float(step.param_map().get("stop_timeout", 10))
        return await orchestrator.stop(services, stop_timeout=timeout)

    async def start(step: Step, services: list[str]) -> str:
        return await orchestrator.start(services)

    async def recover(step: Step, services: list[str]) -> str:
        """The share rules' remedy: each service as its own state calls for (see docker_recover)."""
        recoverer = getattr(orchestrator, "recover", None)
        if recoverer is None:
            raise ActionFailed("this orchestrator cannot tell a failing service from a healthy one")
        params = step.param_map()
        timeout = float(params.get("stop_timeout", 10))
        failing = [s for s in failing_param(params.get("failing")) if s in services]
        return str(await recoverer(services, failing=failing, stop_timeout=timeout))

    async def restart_dependents(step: Step) -> ActionOutcome:
        failed = services_param(step)
        finder = getattr(orchestrator, "dependents_of", None)
        if finder is None:
            raise ActionFailed("this orchestrator cannot tell which services depend on another")
        found: list[str] = []
        for service in failed:
            found += [str(s) for s in await finder(service)]
        dependents = [s for s in dict.fromkeys(found) if s not in failed]
        if not dependents:
            return ActionOutcome(True, f"no service depends on {failed}: nothing to restart")
        touched = sorted(set(dependents) & protected)
        if touched and step.risk is Risk.SAFE:
            raise ActionFailed(
                f"refusing to restart protected dependent(s) {touched} automatically"
            )
        timeout = float(step.param_map().get("stop_timeout", 10))
        return ActionOutcome(True, await orchestrator.restart(dependents, stop_timeout=timeout))

    return {
        "service.restart": guarded(restart),
        "service.stop": guarded(stop),
        "service.start": guarded(start),
        "service.recover": guarded(recover),
        "service.restart_dependents": restart_dependents,
    }


def failing_param(value: object) -> list[str]:
    """`failing` as the planner fills it in: "web,api" (from the rule's evidence) or a list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip() and "{" not in part]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return []


def _revert_handler(
    reverter: Reverter, protected: set[str], guard: SchemaGuard | None
) -> Handler:
    async def revert(step: Step) -> ActionOutcome:
        service = str(step.param_map()["service"])
        if service in protected:
            raise ActionFailed(
                f"refusing to recreate protected service {service!r}: it is stateful"
            )
        cleared = await guard.check(service) if guard is not None else ""
        done = await reverter.revert(service)
        return ActionOutcome(True, f"{done} ({cleared})" if cleared else done)

    return revert


async def _wait(step: Step) -> ActionOutcome:
    seconds = float(step.param_map()["seconds"])
    await asyncio.sleep(seconds)
    return ActionOutcome(True, f"waited {seconds:g} s")


def build_previews(orchestrator: object) -> dict[str, Handler]:
    """For --dry-run: the exact calls a service action would make, where the backend can say."""
    preview = getattr(orchestrator, "preview", None)
    if preview is None:
        return {}

    def describe(verb: str) -> Handler:
        async def handler(step: Step) -> ActionOutcome:
            params = step.param_map()
            services = services_param(step) or [str(params.get("service", ""))]
            timeout = float(params.get("stop_timeout", 10))
            calls = await preview(verb, services, stop_timeout=timeout)
            return ActionOutcome(True, f"dry run: would call {calls}")

        return handler

    return {
        "service.restart": describe("restart"),
        "service.stop": describe("stop"),
        "service.start": describe("start"),
        "service.recover": describe("recover"),
        "service.revert": describe("revert"),
    }


Preflight = Callable[[Step], Awaitable[list[str]]]

#: Service actions whose services must exist before their plan acts at all.
SERVICE_ACTIONS = (
    "service.restart",
    "service.stop",
    "service.start",
    "service.recover",
    "service.restart_dependents",
)


def build_preflights(
    *,
    orchestrator: object | None,
    config: ConfigActions | None,
    database: DatabaseActions | None = None,
    backups: BackupConfirm | None = None,
    system: Mapping[str, Preflight] | None = None,
) -> dict[str, Preflight]:
    """The read-only checks run before a plan's first step acts, by action.

    Everything a later step needs that can be known in advance: the services'
    containers, a snapshot or defaults file to restore, the tables, the backup.
    Each raises `ActionFailed` with the reason; a refusal acts on nothing.
    """
    preflights: dict[str, Preflight] = {}
    check_exist = getattr(orchestrator, "check_exist", None)
    if check_exist is not None:

        async def services_exist(step: Step) -> list[str]:
            await check_exist(services_param(step))
            return []

        preflights.update(dict.fromkeys(SERVICE_ACTIONS, services_exist))
        preflights["service.revert"] = _revert_preflight(check_exist)
    if config is not None:
        preflights["config.restore"] = config.preflight_restore
        preflights["provider.disable"] = config.preflight_table
        preflights["config.backup"] = config.preflight_table
    if database is not None:
        preflights["database.restore"] = database.preflight
    if backups is not None:
        preflights["backup.confirm"] = backups.preflight
    preflights.update(system or {})
    return preflights


def _revert_preflight(check_exist: Callable[[list[str]], Awaitable[None]]) -> Preflight:
    async def service_exists(step: Step) -> list[str]:
        await check_exist([str(step.param_map()["service"])])
        return []

    return service_exists
