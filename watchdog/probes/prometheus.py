"""Metrics read straight from a service's /metrics page, without a Prometheus server.

The watchdog must not depend on the stack's own Prometheus and alerts (some of
their metrics are never exported), so it scrapes the text exposition itself and
parses it with `prometheus_client`'s own parser. That parser strips `_total`
from counter family names, so samples are matched by sample name, with or
without the suffix. Rates and ratios need history: the probe keeps the scrapes
of the last `window` and does counter arithmetic per label set with
`watchdog.policy.windows` (which survives counter resets, as PromQL's rate()
does), then sums per `by` label value.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from watchdog.model import Observation
from watchdog.policy.schema import PrometheusSignal, TargetSpec
from watchdog.policy.windows import counter_increase, counter_rate
from watchdog.probes.endpoint import Endpoint, Failure
from watchdog.probes.stamp import Stamp, Stopwatch

ACCEPT = "text/plain; version=0.0.4"
WARMING_UP = "warming up: one scrape so far"

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]  # sample name, sorted labels


@dataclass(frozen=True, slots=True)
class Scrape:
    """The matched samples of one scrape, by sample name and labels."""

    at: float
    samples: dict[SeriesKey, float]


class PrometheusProbe:
    """Reads one `PrometheusSignal`; `clock` (monotonic seconds) times the rate window."""

    def __init__(
        self,
        signal: PrometheusSignal,
        target_name: str,
        target: TargetSpec,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.signal = signal
        self._client = client
        self._clock = clock
        self._endpoint = Endpoint(target_name, target, "GET", signal.path)
        base = signal.metric.removesuffix("_total")
        self._names = {signal.metric, base, f"{base}_total"}
        self._scrapes: deque[Scrape] = deque()

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        response = await self._endpoint.request(self._client, self.signal.timeout, accept=ACCEPT)
        stamp = watch.stop()
        if isinstance(response, Failure):
            return [stamp.failure(response.error, detail=response.detail)]
        if not response.is_success:
            failure = self._endpoint.unexpected_status(response, [200])
            return [stamp.failure(failure.error, detail=failure.detail)]
        scrape = self._parse(response.text)
        if isinstance(scrape, Failure):
            return [stamp.failure(scrape.error, detail=scrape.detail)]
        if self.signal.mode == "gauge":
            return self._gauge(stamp, scrape)
        return self._over_window(stamp, scrape)

    def _parse(self, text: str) -> Scrape | Failure:
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            return self._endpoint.failure(
                "malformed metrics page (expected the Prometheus text format)", str(exc)
            )
        found = [s for family in families for s in family.samples if s.name in self._names]
        if not found and not any(family.name in self._names for family in families):
            return self._endpoint.failure(
                f"metric `{self.signal.metric}` not on the page (expected it to be exported)"
            )
        wanted = self.signal.match.items()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for s in found
            if all(s.labels.get(name) == value for name, value in wanted)
        }
        return Scrape(self._clock(), samples)

    def _group(self, labels: Labels) -> str | None:
        """The series a label set counts towards: "" without `by`, None if it lacks the label."""
        if self.signal.by is None:
            return ""
        return dict(labels).get(self.signal.by)

    def _grouped(self, keys: Iterable[SeriesKey]) -> dict[str, list[SeriesKey]]:
        groups: dict[str, list[SeriesKey]] = {}
        for key in keys:
            group = self._group(key[1])
            if group is not None:
                groups.setdefault(group, []).append(key)
        return groups

    def _nothing_matched(self, stamp: Stamp) -> list[Observation]:
        by = f" with label `{self.signal.by}`" if self.signal.by else ""
        return [
            stamp.failure(
                f"{self._endpoint.where}: no `{self.signal.metric}` sample matching "
                f"{self.signal.match or '{}'}{by} (expected at least one)"
            )
        ]

    def _gauge(self, stamp: Stamp, scrape: Scrape) -> list[Observation]:
        groups = self._grouped(scrape.samples)
        if not groups:
            return self._nothing_matched(stamp)
        return [
            stamp.reading(
                sum(scrape.samples[key] for key in keys),
                series=group,
                detail=f"{len(keys)} series summed",
            )
            for group, keys in sorted(groups.items())
        ]

    def _over_window(self, stamp: Stamp, scrape: Scrape) -> list[Observation]:
        self._scrapes.append(scrape)
        while self._scrapes and self._scrapes[0].at < scrape.at - self.signal.window:
            self._scrapes.popleft()
        if len(self._scrapes) < 2:
            return [
                stamp.failure(
                    WARMING_UP,
                    detail=f"{self._endpoint.where}: a {self.signal.mode} needs two scrapes "
                    f"within {self.signal.window:g} s",
                )
            ]
        groups = self._grouped(dict.fromkeys(key for s in self._scrapes for key in s.samples))
        if not groups and self.signal.by is not None:
            return self._nothing_matched(stamp)
        span = self._scrapes[-1].at - self._scrapes[0].at
        measure = self._rate if self.signal.mode == "rate" else self._ratio
        members = sorted(groups.items()) or [("", [])]
        return [measure(stamp, group, keys, span) for group, keys in members]

    def _points(self, key: SeriesKey) -> list[tuple[float, float]]:
        return [(s.at, s.samples[key]) for s in self._scrapes if key in s.samples]

    def _rate(self, stamp: Stamp, group: str, keys: list[SeriesKey], span: float) -> Observation:
        rate = sum(counter_rate(self._points(key)) or 0.0 for key in keys)
        increase = sum(counter_increase([v for _, v in self._points(key)]) for key in keys)
        return stamp.reading(
            rate, series=group, detail=f"+{increase:g} over {span:.1f} s in {len(keys)} series"
        )

    def _ratio(self, stamp: Stamp, group: str, keys: list[SeriesKey], span: float) -> Observation:
        wanted = self.signal.numerator.items()
        numerator = denominator = 0.0
        for key in keys:
            increase = counter_increase([v for _, v in self._points(key)])
            denominator += increase
            labels = dict(key[1])
            if all(labels.get(k) == v for k, v in wanted):
                numerator += increase
        if denominator <= 0:
            return stamp.reading(0.0, series=group, detail="no calls in window")
        return stamp.reading(
            numerator / denominator,
            series=group,
            detail=f"{numerator:g} of {denominator:g} over {span:.1f} s",
        )
