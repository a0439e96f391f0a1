"""`service.recover` on the sandbox (the demo's backend): start the stopped, restart the
failing, leave the rest alone, and say which and why."""

from __future__ import annotations

import asyncio

import httpx

from watchdog.actions.sandbox import SandboxOrchestrator
from watchdog.sandbox.stack import SandboxStack

GATEWAY, REST, ENRICHMENT = "api-gateway-internal", "rest-api", "metadata-enrichment"


def test_recover_starts_the_stopped_restarts_the_failing_and_leaves_the_rest(
    sandbox_stack: SandboxStack,
) -> None:
    control = sandbox_stack.control
    control.stop(GATEWAY)
    before = {name: sandbox_stack.service(name)["pid"] for name in (REST, ENRICHMENT)}

    async def recover() -> str:
        async with httpx.AsyncClient() as client:
            orchestrator = SandboxOrchestrator(sandbox_stack.control_url, client)
            return await orchestrator.recover(
                [GATEWAY, REST, ENRICHMENT], failing=[REST], stop_timeout=5
            )

    said = asyncio.run(recover())
    assert said == (
        f"{GATEWAY}: stopped → started; "
        f"{REST}: running, unhealthy → restarted (its health signal is down); "
        f"{ENRICHMENT}: running, left alone"
    )
    assert sandbox_stack.service(GATEWAY)["running"] is True
    assert sandbox_stack.service(REST)["pid"] != before[REST]
    assert sandbox_stack.service(ENRICHMENT)["pid"] == before[ENRICHMENT]
