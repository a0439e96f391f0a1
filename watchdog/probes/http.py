"""HTTP JSON endpoints read as health (1/0), as one number, or as named series.

On this stack the status code alone lies (TARGET-STACK.md): enrichment answers
200 "healthy" with a dead database, rest-api answers 200 "unhealthy". So health
is the expected status AND every `healthy_when` JMESPath expression truthy (in
JMESPath's sense, where 0 is true: compare numbers explicitly, as in
pool > `0`), and a failed check names the fields and what they held. Health
is down on any failure (value 0.0); numbers are unknown on any failure (value
None). An answer that is not the expected kind (status, JSON, field, type) sets
`error`; a well-formed answer that says "unhealthy" is value 0.0 with the
reason in `detail`.
With `round_trip`, the value is the seconds any HTTP answer took (a transport
failure is unknown, None: the health signals already say "down").
"""

from __future__ import annotations

from typing import Any

import httpx

from watchdog.model import Observation
from watchdog.policy.schema import HttpSignal, TargetSpec
from watchdog.probes.endpoint import Endpoint, Failure
from watchdog.probes.jsonread import (
    as_number,
    compile_expression,
    is_truthy,
    json_type,
    render,
)
from watchdog.probes.stamp import Stamp, Stopwatch

NOT_JSON = "body is not JSON (expected a JSON object)"


class HttpProbe:
    """Reads one `HttpSignal` through the shared client."""

    def __init__(
        self,
        signal: HttpSignal,
        target_name: str,
        target: TargetSpec,
        client: httpx.AsyncClient,
    ) -> None:
        self.signal = signal
        self._client = client
        self._endpoint = Endpoint(target_name, target, signal.method, signal.path)
        name = signal.name
        self._checks = [compile_expression(text, signal=name) for text in signal.healthy_when]
        self._value = compile_expression(signal.value, signal=name) if signal.value else None
        self._series = compile_expression(signal.series, signal=name) if signal.series else None
        self._health = self._value is None and self._series is None and not signal.round_trip

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        response = await self._endpoint.request(self._client, self.signal.timeout)
        stamp = watch.stop()
        down = 0.0 if self._health else None
        if isinstance(response, Failure):
            return [stamp.failure(response.error, value=down, detail=response.detail)]
        if self.signal.round_trip:  # the latency row: how long any answer took, body unread
            return [stamp.reading(stamp.duration_seconds, detail=f"HTTP {response.status_code}")]
        if response.status_code not in self.signal.expect_status:
            failure = self._endpoint.unexpected_status(response, self.signal.expect_status)
            return [stamp.failure(failure.error, value=down, detail=failure.detail)]
        if self._health and not self._checks:
            return [stamp.reading(1.0, detail=f"HTTP {response.status_code}")]
        try:
            body = response.json()
        except ValueError:
            return [stamp.failure(self._where(NOT_JSON), value=down, detail=response.text[:200])]
        if self._value is not None:
            return [self._number(stamp, body)]
        if self._series is not None:
            return self._named(stamp, body)
        return [self._healthy(stamp, body, response.status_code)]

    def _where(self, what: str) -> str:
        return f"{self._endpoint.where}: {what}"

    def _healthy(self, stamp: Stamp, body: Any, status: int) -> Observation:
        failed = []
        for check in self._checks:
            result, problem = check.search(body)
            if not is_truthy(result):
                because = f" ({problem})" if problem else ""
                failed.append(f"{check.text} failed: {check.evidence(body)}{because}")
        if failed:
            return stamp.reading(0.0, detail="; ".join(failed))
        return stamp.reading(1.0, detail=f"HTTP {status}, {len(self._checks)} checks passed")

    def _number(self, stamp: Stamp, body: Any) -> Observation:
        assert self._value is not None
        raw, problem = self._value.search(body)
        if problem:
            return stamp.failure(self._where(f"`{self._value.text}`: {problem}"))
        converted = as_number(raw, self.signal.states)
        if converted.value is None:
            return stamp.failure(self._where(f"`{self._value.text}` {converted.problem}"))
        return stamp.reading(converted.value, detail=f"{self._value.text} = {render(raw)}")

    def _named(self, stamp: Stamp, body: Any) -> list[Observation]:
        assert self._series is not None
        raw, problem = self._series.search(body)
        if problem:
            return [stamp.failure(self._where(f"`{self._series.text}`: {problem}"))]
        if not isinstance(raw, dict):
            found = "missing" if raw is None else f"{json_type(raw)}"
            return [
                stamp.failure(
                    self._where(
                        f"`{self._series.text}` is {found} (expected an object of name -> value)"
                    )
                )
            ]
        observations = []
        for name, member in raw.items():
            converted = as_number(member, self.signal.states)
            if converted.value is None:
                error = self._where(f"`{self._series.text}.{name}` {converted.problem}")
                observations.append(stamp.failure(error, series=str(name)))
            else:
                observations.append(
                    stamp.reading(converted.value, series=str(name), detail=render(member))
                )
        return observations
