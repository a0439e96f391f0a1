"""Recreating a service's replicas from their last known good rows: how `service.revert` acts.

Each replica goes stop → park (renamed `<name>-watchdog-prev-<time>`) → create from
the good image under its own name → start → wait until ready → remove the parked
one. The parked container is never removed before its replacement is ready, and is
put back (renamed and started again) when the replacement fails, so the service is
never silently gone.

A SIGKILL of the daemon can cut that sequence anywhere; the step is idempotent and
runs again after the restart, and reads what the cut-off attempt left rather than
stacking a second revert on it:

- a parked container and the name free: cut between park and create. It is
  unparked and reverted afresh.
- a parked container and, under the name, a replica on the good image: cut after
  the create. That attempt is finished: the replacement is started if it is not,
  waited for, then kept (the parked one removed) or removed (the parked one, which
  is what ran before the revert, put back).
- a parked container and a replica on another image: something acted since the cut.
  The replica is reverted as usual and the parked container left as is, said so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import structlog

from watchdog.actions.base import ActionFailed
from watchdog.actions.docker_engine import Engine
from watchdog.actions.docker_spec import (
    PREV_MARK,
    PREV_NAME,
    create_config,
    has_healthcheck,
    health,
    is_replica,
    number,
    service_of,
    short_id,
)

REVERT_STOP_SECONDS = 10

#: Waits until a container is ready or fails saying why: (engine, container, what) → how.
Ready = Callable[[Engine, Any, str], Awaitable[str]]

log = structlog.get_logger("watchdog.docker")


def log_orphaned_revert(task: asyncio.Task[str]) -> None:
    """The outcome of a revert whose caller stopped waiting: nobody else will report it."""
    if task.cancelled():
        log.warning("docker_revert_cancelled", task=task.get_name())
    elif task.exception() is not None:
        log.error(
            "docker_revert_failed_unawaited", task=task.get_name(), error=str(task.exception())
        )
    else:
        log.info("docker_revert_finished_unawaited", task=task.get_name(), outcome=task.result())



class Reverting:
    """One revert of one service on one engine connection."""

    def __init__(
        self, engine: Engine, service: str, *, ready: Ready, capture: Callable[[Any], str]
    ) -> None:
        self.engine = engine
        self.service = service
        self._ready = ready
        self._capture = capture

    async def run(self, rows: list[dict[str, Any]]) -> str:
        """Each row's replica reverted in turn; the first failure stops the rest."""
        project = await self.engine.project_containers()
        mine = [c for c in project if service_of(c.attrs) == self.service]
        replicas = {c.name: c for c in mine if is_replica(c.attrs)}
        results = []
        for row in rows:
            original = str(row["name"])
            current = replicas.get(original)
            parked = _parked(mine, original)
            try:
                if current is None and parked:
                    current = await self._unpark(original, parked.pop())
                    done = await self._revert_replica(row, current)
                elif current is not None and parked and current.attrs.get("Image") == row[
                    "image_id"
                ]:
                    done = await self._finish_cut_off(row, current, parked.pop())
                else:
                    done = await self._revert_replica(row, current)
                results.append(done + _left_parked(parked))
            except ActionFailed as error:
                if not results:
                    raise
                done = "; ".join(results)
                raise ActionFailed(f"{error} (reverted before it: {done})") from error
        unknown = sorted(set(replicas) - {r["name"] for r in rows})
        extra = f"; not in the last good record, left as is: {unknown}" if unknown else ""
        return f"reverted {self.service}: " + "; ".join(results) + extra

    async def _unpark(self, original: str, container: Any) -> Any:
        """A previous container a crash left parked while its name is free: bring it back."""
        await self.engine.call(
            f"rename parked {container.name} back to {original}",
            partial(container.rename, original),
        )
        await self.engine.call(f"inspect {original}", container.reload)
        return container

    async def _finish_cut_off(self, row: dict[str, Any], new: Any, previous: Any) -> str:
        """A revert cut off after it created `new` from the good image and parked `previous`."""
        original, good = str(row["name"]), short_id(str(row["image_id"]))
        try:
            state = new.attrs.get("State") or {}
            if not (state.get("Running") or state.get("Restarting")):
                await self.engine.call(f"start new {original} (service {self.service})", new.start)
            ready = await self._ready(self.engine, new, f"new {original}")
        except ActionFailed as error:
            restored = await self._put_back(original, previous, new, renamed=True, was_running=True)
            raise ActionFailed(
                f"revert of {self.service} to image {good} failed while finishing the revert a "
                f"restart cut off: {error}; {restored}"
            ) from error
        left = await self._remove_previous(previous)
        return (
            f"finished the revert a restart cut off: {previous.name} → {original} on image "
            f"{good}, {ready}{left}"
        )

    async def _revert_replica(self, row: dict[str, Any], current: Any | None) -> str:
        original = str(row["name"])
        good = short_id(str(row["image_id"]))
        before = "no container"
        was_running = False
        parked_as = ""
        if current is not None:
            if current.attrs.get("Image") == row["image_id"] and up_now(current.attrs):
                return f"{original} already runs the last known good image {good} and is up"
            before = self._capture(current)
            state = current.attrs.get("State") or {}
            was_running = bool(state.get("Running") or state.get("Restarting"))
            parked_as = f"{original}{PREV_MARK}{int(time.time())}"
        new: Any | None = None
        renamed = False
        engine, service = self.engine, self.service
        try:
            if current is not None:
                # Stopped first: the engine cannot rename a container caught
                # between two restarts of a crash loop (its sandbox is gone).
                await engine.call(
                    f"stop {original} (service {service})",
                    partial(current.stop, timeout=REVERT_STOP_SECONDS),
                )
                await engine.call(
                    f"rename {original} to {parked_as} (service {service})",
                    partial(current.rename, parked_as),
                )
                renamed = True
            mode = await self._network_mode(row)
            body, networks = create_config(
                row, network_mode=mode, current=current.attrs if current is not None else None
            )
            created = await engine.call(
                f"create {original} from image {good} (service {service})",
                partial(engine.client.api.create_container_from_config, body, original),
            )
            fresh = await engine.call(
                f"inspect new {original}", partial(engine.client.containers.get, created["Id"])
            )
            new = fresh
            for network, endpoint in networks.items():
                ipam = endpoint.get("IPAMConfig") or {}
                await engine.call(
                    f"connect {original} to network {network}",
                    partial(
                        engine.client.api.connect_container_to_network,
                        fresh.id,
                        network,
                        aliases=endpoint.get("Aliases"),
                        links=endpoint.get("Links"),
                        ipv4_address=ipam.get("IPv4Address"),
                        ipv6_address=ipam.get("IPv6Address"),
                        link_local_ips=ipam.get("LinkLocalIPs"),
                    ),
                )
            await engine.call(f"start new {original} (service {service})", fresh.start)
            ready = await self._ready(engine, fresh, f"new {original}")
        except ActionFailed as error:
            restored = await self._put_back(original, current, new, renamed, was_running)
            raise ActionFailed(
                f"revert of {service} to image {good} failed: {error}; {restored}"
            ) from error
        left = "" if current is None else await self._remove_previous(current)
        return f"{before} → {original} on image {good}, {ready}{left}"

    async def _remove_previous(self, previous: Any) -> str:
        """The parked container, once its replacement is ready; '' or why it stays."""
        parked_as = previous.name
        try:
            await self.engine.call(
                f"remove previous {parked_as}", partial(previous.remove, v=False)
            )
        except ActionFailed as error:
            return f"; the previous container stays, stopped, as {parked_as}: {error}"
        return ""

    async def _put_back(
        self,
        original: str,
        previous: Any | None,
        new: Any | None,
        renamed: bool,
        was_running: bool,
    ) -> str:
        """Undo a failed recreate: new container gone, previous one back under its name.

        Whatever else holds the name now is the failed new container, even one
        whose create answer was lost; the previous one is never removed.
        """
        engine = self.engine
        problems = []
        keep = previous.id if previous is not None else None
        holders = [new] if new is not None else []
        try:
            holders = [
                c for c in await engine.project_containers() if c.name == original and c.id != keep
            ]
        except ActionFailed as error:
            problems.append(str(error))
        for holder in holders:
            try:
                await engine.call(
                    f"remove failed new {original}", partial(holder.remove, force=True)
                )
            except ActionFailed as error:
                problems.append(str(error))
        if previous is None:
            if problems:
                return "removing the failed container failed too: " + "; ".join(problems)
            return "there was no previous container to put back"
        try:
            if renamed:
                await engine.call(
                    f"rename previous {previous.name} back to {original}",
                    partial(previous.rename, original),
                )
            if was_running:
                await engine.call(f"start previous {original}", previous.start)
        except ActionFailed as error:
            problems.append(str(error))
        if problems:
            return "AND putting the previous container back failed: " + "; ".join(problems)
        return f"the previous container was put back as {original}" + (
            " and started again" if was_running else " (it was not running)"
        )

    async def _network_mode(self, row: Mapping[str, Any]) -> str:
        """The row's network mode, pointed at the current container of a `container:` target."""
        mode = str(row.get("network_mode") or "")
        target = str(row.get("network_mode_service") or "")
        if not (mode.startswith("container:") and target):
            return mode
        candidates = sorted(
            (
                c
                for c in await self.engine.project_containers()
                if service_of(c.attrs) == target and is_replica(c.attrs)
            ),
            key=lambda c: number(c.attrs),
        )
        return f"container:{candidates[0].id}" if candidates else mode


def up_now(attrs: Mapping[str, Any]) -> bool:
    state = attrs.get("State") or {}
    if has_healthcheck(attrs):
        return health(attrs) == "healthy"
    return bool(state.get("Running")) and not state.get("Restarting")


def _parked(mine: list[Any], original: str) -> list[Any]:
    """The replica's containers parked by earlier reverts, oldest first (the name says when)."""
    return sorted(
        (c for c in mine if PREV_NAME.search(c.name) and c.name.startswith(original + PREV_MARK)),
        key=lambda c: c.name,
    )


def _left_parked(parked: list[Any]) -> str:
    if not parked:
        return ""
    names = ", ".join(c.name for c in parked)
    return f"; left as is, parked by an earlier revert: {names}"
