"""The sandbox's orchestrator and configuration table, reached through its control API.

The sandbox (`watchdog.sandbox`) plays the guarded stack for the demo and the
tests: its supervisor starts and stops processes the way Docker starts and stops
containers, and keeps the configuration table the way PostgreSQL does. These
backends speak to it over HTTP, so the daemon runs against the sandbox exactly
as it will against the real stack, behind the same two Protocols. Scenario 1's
parts (versions, last good records, dependents, logs) are `SandboxControl`'s, in
`sandbox_versions`: the orchestrator is also the sandbox's `Reverter`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from watchdog.actions.base import ActionFailed
from watchdog.actions.sandbox_versions import SandboxControl


class SandboxOrchestrator(SandboxControl):
    async def expand(self, services: Sequence[str]) -> list[str]:
        """Compose service names to sandbox processes: `enrichment-worker` is every replica."""
        known = await self._services()
        names: list[str] = []
        for service in services:
            replicas = sorted(n for n in known if re.fullmatch(re.escape(service) + r"-\d+", n))
            if service in known:
                names.append(service)
            elif replicas:
                names.extend(replicas)
            else:
                raise ActionFailed(f"no service {service!r} in the sandbox; known: {sorted(known)}")
        return names

    async def check_exist(self, services: Sequence[str]) -> None:
        """Preflight: every named service is a sandbox process (or a set of replicas)."""
        await self.expand(services)

    async def _each(self, verb: str, services: Sequence[str]) -> str:
        done = []
        for name in await self.expand(services):
            body = await self._request("POST", f"/services/{name}/{verb}")
            pid = body.get("pid") if isinstance(body, dict) else None
            done.append(f"{name} (pid {pid})" if pid else name)
        return f"{verb}: " + ", ".join(done)

    async def restart(self, services: Sequence[str], *, stop_timeout: float) -> str:
        return await self._each("restart", services)

    async def stop(self, services: Sequence[str], *, stop_timeout: float) -> str:
        return await self._each("stop", services)

    async def start(self, services: Sequence[str]) -> str:
        return await self._each("start", services)

    async def recover(
        self, services: Sequence[str], *, failing: Sequence[str], stop_timeout: float
    ) -> str:
        """Start the stopped processes, restart the failing ones, leave the rest alone.

        The sandbox knows whether a process runs, not whether it is healthy: a
        running one is restarted only when the core named its service as failing.
        """
        known = await self._services()
        lines = []
        for service in services:
            for name in await self.expand([service]):
                running = bool((known.get(name) or {}).get("running"))
                if not running:
                    await self._request("POST", f"/services/{name}/start")
                    lines.append(f"{name}: stopped → started")
                elif service in failing or name in failing:
                    await self._request("POST", f"/services/{name}/restart")
                    lines.append(
                        f"{name}: running, unhealthy → restarted (its health signal is down)"
                    )
                else:
                    lines.append(f"{name}: running, left alone")
        return "; ".join(lines)


class SandboxConfigStore:
    def __init__(self, control_url: str, client: httpx.AsyncClient) -> None:
        self._url = control_url.rstrip("/")
        self._client = client

    async def read_rows(self, table: str) -> list[dict[str, Any]]:
        return (await self._read(table))[0]

    async def _read(self, table: str) -> tuple[list[dict[str, Any]], str]:
        try:
            response = await self._client.get(f"{self._url}/db/tables/{table}", timeout=10.0)
        except httpx.HTTPError as error:
            raise ActionFailed(f"reading table {table}: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise ActionFailed(
                f"reading table {table}: {response.status_code} {response.text[:200]}"
            )
        body = response.json()
        rows = body.get("rows")
        if not isinstance(rows, list):
            raise ActionFailed(f"reading table {table}: the answer has no 'rows' list")
        return [dict(row) for row in rows], str(body.get("key") or "")

    async def primary_key(self, table: str) -> tuple[str, ...]:
        key = (await self._read(table))[1]
        return (key,) if key else ()

    async def update_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> str:
        """Read, change the given rows by key, write back (the sandbox has one writer: us)."""
        live, key = await self._read(table)
        if not key:
            raise ActionFailed(f"the sandbox does not say which column keys {table}")
        given = {row[key]: dict(row) for row in rows}
        merged = [given.pop(row[key], row) for row in live]
        await self.replace_rows(table, merged + list(given.values()))
        return f"{len(rows)} row(s) of {table} written"

    async def replace_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> str:
        try:
            response = await self._client.put(
                f"{self._url}/db/tables/{table}",
                json={"rows": [dict(r) for r in rows]},
                timeout=10.0,
            )
        except httpx.HTTPError as error:
            raise ActionFailed(f"writing table {table}: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise ActionFailed(
                f"writing table {table}: {response.status_code} {response.text[:200]}"
            )
        return f"{len(rows)} row(s) of {table} written"
