"""One HTTP request to a target, with every transport failure turned into words.

Both HTTP probes (JSON and Prometheus text) share this edge so that a refused
connection, a hang and a broken reply read the same in every Observation. httpx
exceptions are translated here, once, into a `Failure`: what went wrong and
what was expected, with the library's own message kept as evidence. The whole
request, body included, runs under one deadline (`asyncio.timeout`), because
httpx's timeouts apply per phase and a server that dribbles bytes could
otherwise hold a probe far past its `timeout`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from watchdog.policy.schema import TargetSpec


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that got no usable HTTP answer."""

    error: str
    detail: str


class Endpoint:
    """Where one probe asks: `<target name> <METHOD> <path>`, with the target's basic auth."""

    def __init__(self, target_name: str, target: TargetSpec, method: str, path: str) -> None:
        base = target.url if "://" in target.url else f"http://{target.url}"
        self.url = base.rstrip("/") + "/" + path.lstrip("/")
        self.method = method
        self.where = f"{target_name} {method} {path}"
        self._auth = (
            httpx.BasicAuth(target.username, target.password or "")
            if target.username is not None
            else None
        )

    async def request(
        self, client: httpx.AsyncClient, timeout: float, *, accept: str = "application/json"
    ) -> httpx.Response | Failure:
        """The response, whatever its status, or the reason there is none."""
        try:
            async with asyncio.timeout(timeout):
                return await client.request(
                    self.method,
                    self.url,
                    auth=self._auth,
                    timeout=timeout,
                    headers={"Accept": accept},
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            return self.failure(
                f"no answer within {timeout:g} s (expected a reply)", type(exc).__name__
            )
        except httpx.ConnectError as exc:
            return self.failure(
                "cannot connect (expected the service to listen)", f"{self.url}: {exc}"
            )
        except httpx.HTTPError as exc:
            return self.failure(
                f"request failed: {type(exc).__name__} (expected an HTTP reply)", str(exc)
            )
        except httpx.InvalidURL as exc:
            return self.failure(
                f"invalid URL {self.url!r} (expected a URL such as http://127.0.0.1:8022)", str(exc)
            )

    def failure(self, what: str, detail: str = "") -> Failure:
        return Failure(f"{self.where}: {what}", detail)

    def unexpected_status(self, response: httpx.Response, expected: list[int]) -> Failure:
        wanted = ", ".join(str(code) for code in expected)
        return self.failure(
            f"HTTP {response.status_code} (expected {wanted})", _body_snippet(response)
        )


def _body_snippet(response: httpx.Response) -> str:
    try:
        return response.text[:300]
    except (UnicodeDecodeError, LookupError):
        return f"{len(response.content)} bytes, not text"
