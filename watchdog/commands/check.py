"""`watchdog check`: every probe once, every rule's threshold applied, one table.

The runbook's health_check.sh, but reading what the policy reads (connections,
not just status codes; the true DLQ depth, not /dlq/stats) and saying, per
signal, which rule's threshold it crosses.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from watchdog.commands.runner import backends, probes_for
from watchdog.model import Observation
from watchdog.policy.rules import COMPARE, Evaluator
from watchdog.policy.schema import Policy
from watchdog.policy.windows import Windows
from watchdog.probes.scheduler import observe_all
from watchdog.settings import Settings

WARMING_UP = "warming up"


@dataclass(frozen=True, slots=True)
class CheckRow:
    signal: str
    series: str
    value: str
    status: str
    detail: str


async def run_check(policy: Policy, settings: Settings) -> list[CheckRow]:
    async with httpx.AsyncClient() as client:
        chosen = backends(settings, client)
        probes = probes_for(policy, client, chosen)
        observations = await observe_all(probes)
        if any(o.error and WARMING_UP in o.error for o in observations):
            await asyncio.sleep(1.0)  # rates and ratios need a second scrape
            observations = [o for o in observations if not (o.error and WARMING_UP in o.error)]
            observations += [o for o in await observe_all(probes) if o.signal in _rated(policy)]
    windows = Windows()
    windows.record_all(observations)
    derived = Evaluator(policy).derive(windows, time.time())
    return rows_for(policy, [*observations, *derived])


def _rated(policy: Policy) -> set[str]:
    return {s.name for s in policy.signals if getattr(s, "mode", "") in ("rate", "ratio")}


def rows_for(policy: Policy, observations: list[Observation]) -> list[CheckRow]:
    rows = []
    for observation in sorted(observations, key=lambda o: (o.signal, o.series)):
        breaches = [
            f"{rule.name} ({rule.severity}: {rule.op} {rule.threshold:g})"
            for rule in policy.rules
            if rule.signal == observation.signal
            and rule.measure == "value"
            and observation.value is not None
            and COMPARE[rule.op](observation.value, rule.threshold)
        ]
        if observation.error and observation.value is None:
            status = "n/a" if WARMING_UP in observation.error else "FAIL"
        else:
            status = "FAIL" if breaches or observation.error else "ok"
        value = "-" if observation.value is None else f"{observation.value:.4g}"
        detail = "; ".join(filter(None, [observation.error, observation.detail, *breaches]))
        rows.append(CheckRow(observation.signal, observation.series, value, status, detail))
    return rows


#: An ok reading's detail is shortened to this many characters; a failure's never is.
DETAIL_WIDTH = 110


def render_rows(rows: list[CheckRow]) -> str:
    """The readings as a table. A FAIL keeps its whole detail, however long: the cause of
    a failure (a permission error naming the socket's group, say) is often at its end."""
    header = ("SIGNAL", "SERIES", "VALUE", "STATUS", "DETAIL")
    table = [
        header,
        *((r.signal, r.series or "-", r.value, r.status, _detail(r)) for r in rows),
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
        for row in table
    ]
    failing = sum(1 for r in rows if r.status == "FAIL")
    lines.append(f"{len(rows)} readings, {failing} failing")
    return "\n".join(lines)


def _detail(row: CheckRow) -> str:
    if row.status == "FAIL" or len(row.detail) <= DETAIL_WIDTH:
        return row.detail
    return row.detail[: DETAIL_WIDTH - 1] + "…"
