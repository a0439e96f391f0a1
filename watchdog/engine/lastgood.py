"""Last known good configuration: each table snapshotted while it is itself good.

The runbook restores "defaults" whose INSERT does not even match the real
table; we restore what the table was the last time it was good. Whether it is
good now is the pure core's verdict (`watchdog.policy.lastgood.assess_snapshot`):
its rows validate, the rules that guard it are clear and no incident of their
groups is open, whatever else is breaching. A candidate is read while that
holds, and kept (in the journal, only if it changed) only if it still holds
`settle` seconds after the read: a corruption that lands just before a read is
caught by the table's rules within `settle` and the candidate is thrown away.
A candidate kept while the watchdog has a provider disabled in that table
carries a caveat that a restore repeats.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import structlog

from watchdog.actions.base import ActionFailed, ConfigStore
from watchdog.actions.config import UNDOABLE
from watchdog.model import Finding
from watchdog.policy.configrows import invalid_rows
from watchdog.policy.lastgood import (
    OpenIncident,
    SnapshotFacts,
    StandingDisable,
    TableGuard,
    assess_service_image,
    assess_snapshot,
    breaching_rules,
    reenable_scenarios,
    table_guards,
)
from watchdog.policy.reenable import Disabled
from watchdog.policy.rules import RuleStates
from watchdog.policy.schema import LastGoodSpec, Policy
from watchdog.policy.triage import rule_key
from watchdog.policy.windows import Windows
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.lastgood")


class IncidentView(Protocol):
    """What snapshots read of an open incident (the engine's `View` has it all)."""

    @property
    def id(self) -> int: ...

    @property
    def key(self) -> str: ...

    @property
    def scenario(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def finding_ids(self) -> frozenset[str]: ...


def open_incidents(views: Iterable[IncidentView]) -> list[OpenIncident]:
    """The core's view of open incidents: group (the key's first part), rules, subject."""
    return [
        OpenIncident(
            v.id,
            v.key.partition("/")[0],
            frozenset(rule_key(f)[0] for f in v.finding_ids),
            v.subject,
        )
        for v in views
    ]


@dataclass(slots=True)
class _Candidate:
    at: float
    rows: list[dict[str, Any]]


class LastGood:
    def __init__(
        self,
        policy: Policy,
        store: ConfigStore | None,
        journal: Journal,
        clock: Callable[[], float],
        windows: Windows,
    ) -> None:
        self._spec: LastGoodSpec = policy.last_good
        self._store = store
        self._journal = journal
        self._clock = clock
        self._windows = windows
        self.guards: dict[str, TableGuard] = table_guards(policy)
        self._watched = frozenset(s for g in self.guards.values() for s in g.signals)
        self._reenables = reenable_scenarios(policy)
        self._candidates: dict[str, _Candidate] = {}
        self._last_read: dict[str, float] = {}
        #: Tables held back now, and why (for the log, and for whoever asks).
        self._held: dict[str, str] = {}

    async def tick(
        self,
        active: Sequence[Finding],
        states: RuleStates,
        incidents: Iterable[IncidentView],
        disabled: Iterable[Disabled] = (),
    ) -> None:
        """One look per table: drop, keep or read its candidate, as its own verdict says.

        `disabled`: resolved incidents whose provider disable still stands (the
        Reenabler's list); open incidents that disabled one are found here.
        """
        if self._store is None or not self.guards:
            return
        now = self._clock()
        views = list(incidents)
        facts = SnapshotFacts(
            breaching=breaching_rules(active, states),
            open_incidents=open_incidents(views),
            unseen=frozenset(n for n in self._watched if not self._windows.series(n)),
        )
        for table, guard in self.guards.items():
            verdict = assess_snapshot(guard, facts)
            if not verdict.take:
                if self._candidates.pop(table, None) is not None:
                    log.info("last_good_discarded", table=table, reason=verdict.reason)
                if table not in self._held:  # once per spell, not every tick
                    log.info("last_good_held", table=table, reason=verdict.reason)
                self._held[table] = verdict.reason
                continue
            if self._held.pop(table, None) is not None:
                log.info("last_good_clear", table=table, reason=verdict.reason)
            candidate = self._candidates.get(table)
            if candidate is not None:
                if now - candidate.at >= self._spec.settle:
                    del self._candidates[table]
                    disables = self._standing_disables(views, disabled)
                    self._keep(guard, candidate, replace(facts, disables=disables))
                continue
            if now - self._last_read.get(table, float("-inf")) >= self._spec.every:
                self._last_read[table] = now
                try:
                    rows = await self._store.read_rows(table)
                except ActionFailed as error:
                    log.warning("last_good_read_failed", table=table, error=str(error))
                    continue
                self._candidates[table] = _Candidate(now, rows)

    def _keep(self, guard: TableGuard, candidate: _Candidate, facts: SnapshotFacts) -> None:
        """Store the candidate, unless its own rows fail the policy's validation.

        Settling alone is not enough: a probe that reads a large table may take
        longer than `settle` to see a corruption that landed just before the read,
        so the candidate's rows are validated themselves before they can ever be
        restored as "good".
        """
        problems = invalid_rows(candidate.rows) if guard.validated else []
        verdict = assess_snapshot(guard, replace(facts, problems=problems))
        if not verdict.take:
            log.warning("last_good_refused", table=guard.table, reason=verdict.reason)
            return
        saved = self._journal.save_snapshot(
            guard.table,
            candidate.rows,
            at=candidate.at,
            keep=self._spec.keep,
            caveat=verdict.caveat,
        )
        if saved is not None:
            log.info(
                "last_good_saved",
                table=guard.table,
                rows=saved.row_count,
                checksum=saved.checksum[:12],
                reason=verdict.reason,
                caveat=saved.caveat,
            )

    def _standing_disables(
        self, views: Sequence[IncidentView], disabled: Iterable[Disabled]
    ) -> list[StandingDisable]:
        """Provider disables the watchdog has not put back: resolved ones the Reenabler
        watches, open incidents whose disable step already changed rows, and the
        originals of re-enables still running. Read only when a candidate is kept."""
        found = {d.incident: StandingDisable(d.incident, d.subject, d.scenario) for d in disabled}
        disabling = {s for g in self.guards.values() for s in g.disabled_by}
        for view in views:
            if view.scenario in disabling and view.id not in found:
                if any(
                    e.kind == "step_evidence" and e.data.get("action") == UNDOABLE
                    for e in self._journal.timeline(view.id)
                ):
                    found[view.id] = StandingDisable(
                        view.id, view.subject, view.scenario, "still open"
                    )
            elif view.scenario in self._reenables:
                findings = self._journal.findings(view.id)
                original = findings[0].param_map().get("incident", "") if findings else ""
                if original.isdigit() and int(original) not in found:
                    found[int(original)] = StandingDisable(
                        int(original),
                        view.subject,
                        self._reenables[view.scenario],
                        f"being put back by incident {view.id}",
                    )
        return list(found.values())


class ServiceLastGood:
    """Last known good container configurations, recorded per service while it is healthy.

    A service that has been healthy for `settle` seconds, and that no open
    incident is about (`assess_service_image`: incidents about anything else do
    not count), has its image and container configuration recorded (at most
    every `every` seconds; the journal keeps a version only when it changed).
    That record is what `service.revert` recreates it from.
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

    async def tick(self, healthy: Mapping[str, bool], incidents: Iterable[IncidentView]) -> None:
        if self._recorder is None:
            return
        now = self._clock()
        opened = open_incidents(incidents)
        for service, ok in sorted(healthy.items()):
            if not assess_service_image(service, ok, opened).take:
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


def healthy_services(policy: Policy, windows: Windows, now: float) -> dict[str, bool]:
    """Each Compose service's latest Docker health, if fresh: what a service's last known
    good record is taken on."""
    healthy: dict[str, bool] = {}
    for name in policy.docker_health_signals():
        limit = policy.signal(name).staleness_limit()
        for series, sample in windows.latest_all(name):
            if series and now - sample.at <= limit:
                healthy[series] = healthy.get(series, True) and sample.value == 1
    return healthy
