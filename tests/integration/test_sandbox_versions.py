"""Scenario 1's facts on the sandbox: a deploy that fails, its last good version, the revert,
the dependents, the evidence, and the Docker signals' readings, on one real sandbox."""

from __future__ import annotations

import asyncio

import httpx

from watchdog.actions.sandbox import SandboxOrchestrator
from watchdog.model import Risk, Step
from watchdog.policy.schema import DockerSignal
from watchdog.probes.sandbox import SandboxDockerProbe, SandboxServices
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import Journal

DLQ = "dlq-manager"


def _signal(metric: str) -> DockerSignal:
    return DockerSignal(name=f"container_{metric}", kind="docker", project="songnodes",
                        metric=metric)


def test_deploy_fails_then_revert_redeploys_the_last_good_version(
    sandbox_stack: SandboxStack, journal: Journal
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            sandbox = SandboxOrchestrator(sandbox_stack.control_url, client, snapshots=journal)
            services = SandboxServices(sandbox_stack.control_url, client)
            healthy = SandboxDockerProbe(_signal("healthy"), services, sandbox.last_good)
            changed = SandboxDockerProbe(_signal("changed"), services, sandbox.last_good)

            assert await sandbox.record_last_good(DLQ) is True
            assert await sandbox.record_last_good(DLQ) is False  # unchanged: nothing new
            assert sandbox.last_good(DLQ) == [{"name": DLQ, "version": "1.4.0"}]
            before = {o.series: o for o in await changed.observe()}
            assert before[DLQ].value is None and "last known good" in before[DLQ].detail

            done = sandbox_stack.inject("deploy", service=DLQ, version="1.5.0")
            assert done["previous"] == "1.4.0" and done["version"] == "1.5.0"
            entry = sandbox_stack.service(DLQ)
            assert entry["version"] == "1.5.0" and entry["created"] >= done["created"] - 1
            assert entry["ready"] is False  # a failing release never answers
            # Never recorded as good, and the readings say what the Docker ones would.
            assert await sandbox.record_last_good(DLQ) is False
            services._answer = None
            readings = {o.series: o for o in await healthy.observe()}
            assert readings[DLQ].value == 0.0 and readings["enrichment-worker"].value == 1.0
            services._answer = None
            after = {o.series: o for o in await changed.observe()}
            value = after[DLQ].value
            assert value is not None and value >= 0
            assert after[DLQ].detail == "version changed: 1.5.0, last good 1.4.0"

            for _ in range(100):  # the failing release exits about 0.3 s after it starts
                if not sandbox_stack.service(DLQ)["running"]:
                    break
                await asyncio.sleep(0.05)
            step = Step(name="evidence", action="service.evidence", risk=Risk.SAFE,
                        params=(("services", [DLQ]), ("lines", 100)))
            evidence = await sandbox.evidence(step)
            kept = evidence.data["logs"][DLQ]
            assert any("settings validation failed" in line for line in kept), kept
            assert "no service depends on it" in evidence.output

            reverted = await sandbox.revert(DLQ)
            assert "dlq-manager 1.5.0 → 1.4.0" in reverted
            entry = sandbox_stack.service(DLQ)
            assert entry["running"] and entry["ready"] and entry["version"] == "1.4.0"
            assert "left alone" in await sandbox.revert(DLQ)  # a second revert is a no-op

            # The stack's graph: the scrapers (and enrichment) depend on the gateway.
            found = await sandbox.dependents_of("api-gateway-internal")
            assert {"metadata-enrichment", "scraper-mixesdb", "scraper-1001tracklists",
                    "enrichment-worker"} <= set(found)
            assert found.index("scraper-mixesdb") < found.index("metadata-enrichment")
            assert await sandbox.dependents_of(DLQ) == []

    asyncio.run(scenario())
