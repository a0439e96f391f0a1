"""The Docker orchestrator of a policy with `discovery:`: labels and images guard services too.

The base orchestrator refuses the services the policy names protected. A stack
guarded by labels alone names none: here a service is also protected when its
containers say so (`watchdog.protected=true`) or run a well-known stateful image
(postgres, redis, kafka, ...), and a service opted out (`watchdog.enable=false`) is
never acted on at all. The containers are read just before each action, so a service
added at run time is judged by its own labels. The decision core already pages
instead of acting on a protected service it knows of; this is the second lock, and
the one that holds for the share rules' `service.recover` (which leaves such a service
alone, saying so, while it restarts the others).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from watchdog.actions.base import ActionFailed
from watchdog.actions.docker import DockerOrchestrator, SnapshotStore
from watchdog.policy.discovery import DiscoverySpec, ServiceFacts, container_facts

if TYPE_CHECKING:
    import docker


class LabelledOrchestrator(DockerOrchestrator):
    """A DockerOrchestrator that also reads protection and opt-outs from the containers."""

    def __init__(
        self,
        client_factory: Callable[[], docker.DockerClient],
        project: str,
        *,
        snapshots: SnapshotStore,
        spec: DiscoverySpec,
        protected: Sequence[str] = (),
        health_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            client_factory, project, snapshots=snapshots, protected=protected,
            health_timeout=health_timeout,
        )
        self.spec = spec

    async def facts(self) -> dict[str, ServiceFacts]:
        """What each service's labels and image say, now."""
        async with self._engine() as engine:
            project = await engine.project_containers()
        return container_facts([dict(c.attrs) for c in project], self.spec)

    async def _refuse(self, verb: str, services: Sequence[str]) -> None:
        facts = await self.facts()
        said = [f"{f.service} ({_why(f)})" for s in services if (f := facts.get(s)) and _kept(f)]
        if said:
            raise ActionFailed(
                f"refusing to {verb} {', '.join(said)} of project {self.project!r} "
                "automatically: a person decides"
            )

    async def restart(self, services: Sequence[str], *, stop_timeout: float) -> str:
        await self._refuse("restart", services)
        return await super().restart(services, stop_timeout=stop_timeout)

    async def stop(self, services: Sequence[str], *, stop_timeout: float) -> str:
        await self._refuse("stop", services)
        return await super().stop(services, stop_timeout=stop_timeout)

    async def revert(self, service: str) -> str:
        await self._refuse("recreate (revert)", [service])
        return await super().revert(service)

    async def recover(
        self, services: Sequence[str], *, failing: Sequence[str], stop_timeout: float
    ) -> str:
        """The others recovered; a protected or opted-out service left alone, and said."""
        facts = await self.facts()
        held = [s for s in dict.fromkeys(services) if (f := facts.get(s)) and _kept(f)]
        rest = [s for s in services if s not in held]
        words = [f"{s}: {_why(facts[s])}, left alone" for s in held]
        if rest:
            words.insert(0, await super().recover(
                rest, failing=[s for s in failing if s in rest], stop_timeout=stop_timeout
            ))
        return "; ".join(words)

    async def dependents_of(self, service: str) -> list[str]:
        """The base's dependents, without the services opted out."""
        found = await super().dependents_of(service)
        facts = await self.facts()
        return [s for s in found if s not in facts or facts[s].enabled]


def _kept(facts: ServiceFacts) -> bool:
    """Whether no automatic action may touch the service."""
    return facts.protected or not facts.enabled


def _why(facts: ServiceFacts) -> str:
    if not facts.enabled:
        return "opted out (label)"
    return f"protected, stateful: {facts.why_protected}"
