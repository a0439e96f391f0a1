"""Actions that are HTTP calls to the guarded services.

Reload the enrichment configuration, reset a gateway circuit breaker, send the
runbook's smoke test (Deadmau5 - Strobe) and check what the service loaded. Each
checks the answer, not only the status code, because this stack answers 200 to
things that did not work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import jmespath

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.model import Step
from watchdog.policy.configrows import providers_of
from watchdog.policy.schema import Policy


class HttpActions:
    def __init__(self, policy: Policy, client: httpx.AsyncClient) -> None:
        self._policy = policy
        self._client = client

    def url(self, target: str, path: str) -> str:
        spec = self._policy.targets.get(target)
        if spec is None:
            raise ActionFailed(f"unknown target {target!r}; known: {sorted(self._policy.targets)}")
        return spec.url.rstrip("/") + "/" + path.lstrip("/")

    async def call(
        self, method: str, target: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> httpx.Response:
        url = self.url(target, path)
        try:
            return await self._client.request(method, url, json=body, timeout=timeout)
        except httpx.HTTPError as error:
            raise ActionFailed(
                f"{method} {target} {path}: {type(error).__name__}: {error}"
            ) from error

    async def reload_config(self, step: Step) -> ActionOutcome:
        target = str(step.param_map()["target"])
        response = await self.call(
            "POST", target, "/admin/config/reload", timeout=step.timeout_seconds
        )
        body = _json(response)
        if response.status_code != 200 or body.get("status") != "reloaded":
            raise ActionFailed(
                f"POST {target} /admin/config/reload answered {response.status_code} "
                f"{_short(response.text)} (expected 200 with status 'reloaded')"
            )
        fields = jmespath.search("configuration.total_fields", body)
        return ActionOutcome(True, f"{target} reloaded its configuration: {fields} fields loaded")

    async def reset_breaker(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        target, provider = str(params["target"]), str(params["provider"])
        path = f"/admin/circuit-breakers/{provider}/reset"
        response = await self.call("POST", target, path, timeout=step.timeout_seconds)
        if not response.is_success:
            raise ActionFailed(
                f"POST {target} {path} answered {response.status_code} {_short(response.text)}"
            )
        return ActionOutcome(True, f"{provider} circuit breaker on {target} reset")

    async def smoke_test(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        target, path = str(params["target"]), str(params["path"])
        response = await self.call("POST", target, path, params.get("body"), step.timeout_seconds)
        body = _json(response)
        expect = params.get("expect")
        if not response.is_success or (expect and not jmespath.search(str(expect), body)):
            raise ActionFailed(
                f"smoke test POST {target} {path} answered {response.status_code} "
                f"{_short(response.text)} (expected 2xx{f' and {expect}' if expect else ''})"
            )
        return ActionOutcome(
            True,
            f"smoke test passed: status {body.get('status')!r}, sources {body.get('sources_used')}",
        )

    async def generic(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        method, target, path = str(params["method"]), str(params["target"]), str(params["path"])
        response = await self.call(method, target, path, params.get("body"), step.timeout_seconds)
        expected = params.get("expect_status") or [200, 201, 202, 204]
        if response.status_code not in expected:
            raise ActionFailed(
                f"{method} {target} {path} answered {response.status_code} (expected {expected})"
            )
        return ActionOutcome(True, f"{method} {target} {path}: {response.status_code}")

    async def loaded_config(self, target: str) -> dict[str, list[str]]:
        """Field → providers, as the service itself reports what it loaded."""
        response = await self.call("GET", target, "/admin/config")
        fields = jmespath.search("configuration.fields", _json(response))
        if response.status_code != 200 or not isinstance(fields, dict):
            raise ActionFailed(
                f"GET {target} /admin/config answered {response.status_code} without "
                "configuration.fields"
            )
        return {str(name): list(spec.get("providers") or []) for name, spec in fields.items()}


def config_differences(
    rows: Sequence[Mapping[str, Any]], loaded: Mapping[str, list[str]]
) -> list[str]:
    """How the loaded configuration differs from the table's enabled rows, in words."""
    differences = []
    expected = {str(r["metadata_field"]): providers_of(r) for r in rows if r.get("enabled")}
    for field, providers in sorted(expected.items()):
        if field not in loaded:
            differences.append(f"{field}: in the table but not loaded")
        elif loaded[field] != providers:
            differences.append(f"{field}: loaded {loaded[field]}, table says {providers}")
    differences += [
        f"{field}: loaded but not enabled in the table"
        for field in sorted(set(loaded) - set(expected))
    ]
    return differences


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
