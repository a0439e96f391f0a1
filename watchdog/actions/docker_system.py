"""Scenario 5's two stack-wide actions: the emergency stop in tiers and the rebuild.

`system.emergency_stop` is the runbook's `./scripts/emergency_stop.sh`: the
project's services stopped tier by tier in the order the policy gives (`tiers`,
lists of service names or glob patterns: the scrapers that feed the pipeline
first, the front end last), each tier's containers all stopped before the next
tier begins. A service no tier names is stopped after the listed tiers. The
stateful (protected) services are left running unless `force` is true, and then
stopped last, after everything that writes to them.

`system.rebuild` is the runbook's "rebuild entire system" without its `down -v`:
every application service recreated from its last known good record, by the
very recreate `service.revert` runs (`Reverter.revert`: park, create from the
good image with the same mounts, wait healthy, put the old one back if not):
the stateful services started first, then its own `tiers` in their order, which
the policies write as the way back up (backends first, the front end last; the
services no tier names before the tiers). It is not simply the stop order
reversed: the stop order ends with the front end, which must come back last too.
No volume is removed, nothing is pruned: the stateful services
are only started, never recreated, and a recreate keeps every mount. Before
acting it checks that every service it would recreate has a last known good
record; one missing refuses the whole step, so it never stops half way for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from functools import partial
from typing import Any, Protocol

from watchdog.actions.base import ActionFailed, ActionOutcome, Reverter
from watchdog.actions.docker import LAST_GOOD_TABLE
from watchdog.actions.docker_engine import Engine, connect
from watchdog.actions.docker_spec import is_replica, name, number, service_of
from watchdog.model import Step
from watchdog.policy.discovery import DiscoverySpec, container_facts

STOP_TIMEOUT = 10


class LastGoodRecords(Protocol):
    def latest_snapshot(self, table: str) -> object | None: ...


def tiers_param(step: Step) -> list[list[str]]:
    """`tiers` as the policy writes it: a list of lists (a bare string is one pattern)."""
    tiers = step.param_map().get("tiers") or []
    if not isinstance(tiers, list | tuple):
        raise ActionFailed(f"tiers must be a list of lists of services, not {tiers!r}")
    return [[str(p) for p in t] if isinstance(t, list | tuple) else [str(t)] for t in tiers]


def assign_tiers(
    services: Sequence[str],
    tiers: Sequence[Sequence[str]],
    protected: frozenset[str],
    *,
    unlisted_first: bool = False,
) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(label, services) in the tiers' order, and the protected services apart.

    Each service goes to the first tier with a pattern matching it; the services no
    tier names follow the listed tiers (precede them, `unlisted_first`: a rebuild
    keeps its last tier, the front end, last). Protected services are never in a
    tier: they come back apart, to be stopped last (with force) or left running.
    """
    left = [s for s in dict.fromkeys(services) if s not in protected]
    ordered: list[tuple[str, list[str]]] = []
    for patterns in tiers:
        matched = [s for s in left if any(fnmatchcase(s, p) for p in patterns)]
        left = [s for s in left if s not in matched]
        if matched:
            ordered.append((", ".join(patterns), matched))
    if left:
        unlisted = ("services no tier names", left)
        ordered = [unlisted, *ordered] if unlisted_first else [*ordered, unlisted]
    stateful = [s for s in dict.fromkeys(services) if s in protected]
    return ordered, stateful


class DockerSystem:
    """The whole Compose project at once: stop in tiers, rebuild from last known good."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        project: str,
        *,
        protected: Sequence[str],
        reverter: Reverter | None,
        records: LastGoodRecords,
        spec: DiscoverySpec | None = None,
    ) -> None:
        self._factory = client_factory
        self._spec = spec
        self.project = project
        self._protected = frozenset(protected)
        self._reverter = reverter
        self._records = records

    async def emergency_stop(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        force = bool(params.get("force", False))
        timeout = int(params.get("stop_timeout", STOP_TIMEOUT))
        async with connect(self._factory, self.project) as engine:
            groups = _groups(await engine.project_containers())
            stateful_now = self._stateful(groups)
            ordered, stateful = assign_tiers(list(groups), tiers_param(step), stateful_now)
            if force and stateful:
                ordered.append(("stateful (--force)", stateful))
            lines: list[str] = []
            order: list[list[str]] = []
            for index, (label, services) in enumerate(ordered, start=1):
                stopped = await _stop_tier(engine, groups, services, timeout)
                order.append(services)
                lines.append(f"tier {index} ({label}): " + ("; ".join(stopped)))
        running = [] if force else stateful
        if running:
            lines.append("left running (stateful, no --force): " + ", ".join(running))
        output = " | ".join(lines) or f"no container in Compose project {self.project!r}"
        return ActionOutcome(True, output, {"order": order, "left_running": running})

    async def rebuild(self, step: Step) -> ActionOutcome:
        if self._reverter is None:
            raise ActionFailed("this orchestrator cannot recreate a service from its last good")
        async with connect(self._factory, self.project) as engine:
            groups = _groups(await engine.project_containers())
        ordered, stateful = self.plan_rebuild(step, list(groups), self._stateful(groups))
        lines: list[str] = []
        stopped = [s for s in stateful if not all(_running(c) for c in groups[s])]
        if stopped:
            async with connect(self._factory, self.project) as engine:
                for service in stopped:
                    for container in groups[service]:
                        await engine.call(f"start {container.name} (stateful {service})",
                                          container.start)
            lines.append("started the stateful services first: " + ", ".join(stopped))
        for label, services in ordered:
            done = [await self._reverter.revert(service) for service in services]
            lines.append(f"tier ({label}): " + "; ".join(done))
        kept = "no volume removed, nothing pruned"
        return ActionOutcome(
            True,
            " | ".join([*lines, kept]),
            {"recreated": [s for _, group in ordered for s in group]},
        )

    def _stateful(self, groups: dict[str, list[Any]]) -> frozenset[str]:
        """The policy's protected services and, with `discovery:`, those whose labels or
        image say they are stateful (watchdog.policy.discovery)."""
        if self._spec is None:
            return self._protected
        found = container_facts([dict(c.attrs) for cs in groups.values() for c in cs], self._spec)
        return self._protected | {s for s, f in found.items() if f.protected}

    def plan_rebuild(
        self, step: Step, services: Sequence[str], protected: frozenset[str] | None = None
    ) -> tuple[list[tuple[str, list[str]]], list[str]]:
        """The tiers in the order to recreate them and the stateful services; refuses a
        service without a last known good record before anything is touched."""
        named = step.param_map().get("services")
        if named:
            services = [s for s in services if s in {str(n) for n in named}]
        ordered, stateful = assign_tiers(
            services, tiers_param(step), self._protected if protected is None else protected,
            unlisted_first=True,
        )
        missing = [
            s
            for _, group in ordered
            for s in group
            if self._records.latest_snapshot(LAST_GOOD_TABLE.format(service=s)) is None
        ]
        if missing:
            raise ActionFailed(
                f"no last known good record of {', '.join(missing)}: the rebuild would stop "
                "half way, so it recreates nothing (`watchdog rollback --service S` restarts one)"
            )
        return ordered, stateful

    async def preflight_rebuild(self, step: Step) -> list[str]:
        """Read-only: every service to recreate has its last known good record."""
        async with connect(self._factory, self.project) as engine:
            groups = _groups(await engine.project_containers())
        ordered, _ = self.plan_rebuild(step, list(groups), self._stateful(groups))
        count = sum(len(group) for _, group in ordered)
        return [f"rebuild: {count} service(s) recreated from their last known good records"]


def _groups(containers: Sequence[Any]) -> dict[str, list[Any]]:
    """service → its replicas, by container number (one-offs and parked ones left out)."""
    groups: dict[str, list[Any]] = {}
    for container in sorted(containers, key=lambda c: (number(c.attrs), name(c.attrs))):
        if is_replica(container.attrs) and service_of(container.attrs):
            groups.setdefault(service_of(container.attrs), []).append(container)
    return groups


def _running(container: Any) -> bool:
    state = container.attrs.get("State") or {}
    return bool(state.get("Running") or state.get("Restarting"))


async def _stop_tier(
    engine: Engine, groups: dict[str, list[Any]], services: Sequence[str], timeout: int
) -> list[str]:
    """Stop every container of the tier at once; return when all of them have stopped."""
    containers = [c for s in services for c in groups[s]]
    already = [c for c in containers if not _running(c)]
    calls = [
        engine.call(f"stop {c.name} ({service_of(c.attrs)})", partial(c.stop, timeout=timeout))
        for c in containers
        if _running(c)
    ]
    await asyncio.gather(*calls)
    for container in containers:
        await engine.call(f"inspect {container.name}", container.reload)
    still = [c.name for c in containers if _running(c)]
    if still:
        raise ActionFailed(f"still running after the stop: {', '.join(still)}")
    words = [
        f"{s} " + ("already stopped" if all(c in already for c in groups[s]) else "stopped")
        for s in services
    ]
    return words
