"""A configuration table's validity, read through whatever store the daemon was given.

The stack's own /admin/config loads a corrupted row without complaint (a NULL
first provider, a provider twice, a confidence of 1.7), so the table itself is
the truth. The rows come from the daemon's configuration store (the sandbox's
table, PostgreSQL), passed in as a function so that probes import no action
backend; the check is the pure `invalid_rows`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from watchdog.model import Observation
from watchdog.policy.configrows import invalid_rows
from watchdog.policy.schema import TableSignal
from watchdog.probes.stamp import Stopwatch

RowReader = Callable[[str], Awaitable[list[dict[str, Any]]]]


class TableProbe:
    def __init__(self, signal: TableSignal, read_rows: RowReader | None) -> None:
        self.signal = signal
        self._read_rows = read_rows

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        if self._read_rows is None:
            return [watch.stop().failure(
                f"no configuration store to read {self.signal.table} from "
                "(set WATCHDOG_CONFIG_STORE)"
            )]
        try:
            rows = await self._read_rows(self.signal.table)
        except Exception as error:  # any store's failure is an observation, never a crash
            return [watch.stop().failure(f"reading {self.signal.table}: {error}")]
        problems = invalid_rows(rows)
        detail = "; ".join(problems) if problems else f"{len(rows)} rows, all valid"
        return [watch.stop().reading(float(len(problems)), detail=detail)]
