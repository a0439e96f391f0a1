"""Last known good configuration: snapshots taken only while the stack is healthy.

The runbook restores "defaults" whose INSERT does not even match the real
table; we restore what the table was the last time everything worked. A
candidate is read while nothing breaches and no incident is open, and it is kept
(in the journal, only if it changed) only if that stays true for `settle`
seconds after the read: a corruption that lands just before a read is caught by
the rules within `settle` and the candidate is thrown away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from watchdog.actions.base import ActionFailed, ConfigStore
from watchdog.policy.configrows import invalid_rows
from watchdog.policy.schema import LastGoodSpec
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.lastgood")


@dataclass(slots=True)
class _Candidate:
    at: float
    tables: dict[str, list[dict[str, Any]]]


class LastGood:
    def __init__(
        self,
        spec: LastGoodSpec,
        store: ConfigStore | None,
        journal: Journal,
        clock: Callable[[], float],
        validated: Collection[str] = (),
    ) -> None:
        """`validated`: the tables the policy checks with its own validation (a `table`
        signal); a candidate of one of them that fails it is never kept."""
        self._spec = spec
        self._store = store
        self._journal = journal
        self._clock = clock
        self._validated = set(validated)
        self._candidate: _Candidate | None = None
        self._last_read = float("-inf")

    async def tick(self, *, healthy: bool) -> None:
        if self._store is None or not self._spec.tables:
            return
        now = self._clock()
        if not healthy:
            if self._candidate is not None:
                log.info(
                    "last_good_discarded", reason="a rule breached before the candidate settled"
                )
            self._candidate = None
            return
        if self._candidate is not None:
            if now - self._candidate.at >= self._spec.settle:
                self._keep(self._candidate)
                self._candidate = None
            return
        if now - self._last_read >= self._spec.every:
            self._last_read = now
            try:
                tables = {t: await self._store.read_rows(t) for t in self._spec.tables}
            except ActionFailed as error:
                log.warning("last_good_read_failed", error=str(error))
                return
            self._candidate = _Candidate(now, tables)

    def _keep(self, candidate: _Candidate) -> None:
        """Store the candidate, unless the policy's own validation rejects one of its tables.

        Settling alone is not enough: a probe that reads a large table may take
        longer than `settle` to see a corruption that landed just before the read,
        so the candidate's rows are validated themselves before they can ever be
        restored as "good".
        """
        for table, rows in candidate.tables.items():
            problems = invalid_rows(rows) if table in self._validated else []
            if problems:
                log.warning(
                    "last_good_refused",
                    table=table,
                    reason="the candidate fails the policy's validation",
                    problems=problems[:5],
                )
                return
        for table, rows in candidate.tables.items():
            saved = self._journal.save_snapshot(table, rows, at=candidate.at, keep=self._spec.keep)
            if saved is not None:
                log.info(
                    "last_good_saved",
                    table=table,
                    rows=saved.row_count,
                    checksum=saved.checksum[:12],
                )


class ServiceLastGood:
    """Last known good container configurations, recorded per service while it is healthy.

    A service that has been healthy for `settle` seconds, and that no open
    incident concerns, has its image and container configuration recorded (at
    most every `every` seconds; the journal keeps a version only when it
    changed). That record is what `service.revert` recreates it from.
    """

    def __init__(
        self,
        spec: LastGoodSpec,
        recorder: Callable[[str], Awaitable[bool]] | None,
        clock: Callable[[], float],
    ) -> None:
        self._spec = spec
        self._recorder = recorder
        self._clock = clock
        self._healthy_since: dict[str, float] = {}
        self._recorded_at: dict[str, float] = {}

    async def tick(self, healthy: Mapping[str, bool], busy: set[str]) -> None:
        if self._recorder is None:
            return
        now = self._clock()
        for service, ok in sorted(healthy.items()):
            if not ok or service in busy:
                self._healthy_since.pop(service, None)
                continue
            since = self._healthy_since.setdefault(service, now)
            recorded = self._recorded_at.get(service, float("-inf"))
            if now - since < self._spec.settle or now - recorded < self._spec.every:
                continue
            self._recorded_at[service] = now
            try:
                stored = await self._recorder(service)
            except ActionFailed as error:
                log.warning("last_good_service_failed", service=service, error=str(error))
                continue
            if stored:
                log.info("last_good_service_saved", service=service)
