"""Gathering the facts a plan's impact assessment and pre-rollback checklist rest on.

The core (`watchdog.policy.impact`, `watchdog.policy.prechecks`) only words and
judges; the reading happens here, at the edge: the Compose dependency graph
from the orchestrator (refreshed in the background, since a plan is made
synchronously and the engine may be slow to answer), the newest backup in the
folder the plan restores from, the journal's past runs of the scenario and its
last-known-good records, the people file's holders per role and the signal
windows. What cannot be read becomes `Unknown(why)`, so the page says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import structlog

from watchdog.actions.database_dumps import DEFAULT_PATTERN
from watchdog.actions.database_words import taken_at_from_name
from watchdog.model import Finding, Plan, Severity
from watchdog.policy.contacts import paged_contacts
from watchdog.policy.impact import ImpactFacts, Unknown, affected_services
from watchdog.policy.planner import with_assessment
from watchdog.policy.prechecks import PrecheckFacts, summary
from watchdog.policy.schema import Policy
from watchdog.policy.windows import Windows
from watchdog.store.journal import Journal
from watchdog.store.records import EventRow

log = structlog.get_logger("watchdog.impact")

#: Reads service → its dependents from the orchestrator (`DockerOrchestrator.dependency_map`).
GraphReader = Callable[[], Awaitable[Mapping[str, Sequence[str]]]]
#: How often the dependency graph is read again.
GRAPH_EVERY = 30.0
#: How many past incidents are searched for runs of the same scenario.
PAST_RUNS_SEARCHED = 500
LAST_GOOD_SERVICE = "docker:last_good:{service}"


class FactSource:
    """The facts of this instant for one plan; the graph is cached between refreshes."""

    def __init__(
        self,
        policy: Policy,
        journal: Journal,
        windows: Windows,
        clock: Callable[[], float],
        graph_reader: GraphReader | None = None,
    ) -> None:
        self.policy = policy
        self.journal = journal
        self.windows = windows
        self.clock = clock
        self.graph_reader = graph_reader
        #: role → names; set by whoever loads the people file (`watchdog run`).
        self.holders: Callable[[], Mapping[str, Sequence[str]]] | None = None
        self._graph: Mapping[str, Sequence[str]] | Unknown = Unknown(
            "the orchestrator reads no Compose graph (not Docker)"
            if graph_reader is None
            else "the Compose graph has not been read yet"
        )
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None

    def refresh_due(self) -> None:
        """Start reading the graph again in the background when the last read is old."""
        if self.graph_reader is None or self._reading is not None:
            return
        if self.clock() - self._read_at < GRAPH_EVERY:
            return
        self._reading = asyncio.create_task(self.refresh(), name="impact-graph")

    async def refresh(self) -> None:
        if self.graph_reader is None:
            return
        try:
            self._graph = dict(await self.graph_reader())
        except Exception as error:  # the engine down is a fact to show, not a crash
            self._graph = Unknown(f"the Compose graph could not be read: {error}")
            log.warning("impact_graph_unreadable", error=str(error))
        finally:
            self._read_at = self.clock()
            self._reading = None

    def for_plan(self, plan: Plan, severity: Severity, finding: Finding | None) -> PrecheckFacts:
        now = self.clock()
        impact = ImpactFacts(
            dependents=self._graph,
            backup_age=self._backup_age(plan, now),
            past_durations=self._past_runs(plan.scenario),
            last_change=self._last_change(plan),
            holders=self._holders(),
            contacts=tuple(
                c
                for c in paged_contacts(self.policy.notify, severity, plan.scenario)
                if not self.policy.notify.contacts[c].notice
            ),
        )
        spec = self.policy.scenarios.get(plan.scenario)
        named = {p.signal for p in (spec.prechecks if spec is not None else []) if p.signal}
        readings: dict[str, tuple[float | None, float]] = {}
        for signal in named:
            latest = self.windows.latest_reading(signal, "")
            if latest is None:
                latest = next((sample for _, sample in self.windows.latest_all(signal)), None)
            if latest is not None:
                readings[signal] = (latest.value, max(0.0, now - latest.at))
        paged = bool(self.policy.notify.routes.get(severity))
        since = finding.since if finding is not None else now
        return PrecheckFacts(impact, breach_since=since, readings=readings, paged=paged)

    def _backup_age(self, plan: Plan, now: float) -> float | Unknown:
        """The newest backup in the folder the plan restores from, or the table's snapshot."""
        for step in plan.steps:
            params = step.param_map()
            if step.action == "database.restore" and params.get("backup_dir"):
                pattern = str(params.get("pattern") or DEFAULT_PATTERN)
                return newest_backup_age(Path(str(params["backup_dir"])), pattern, now)
            if step.action == "config.restore" and params.get("table"):
                latest = self.journal.latest_snapshot(str(params["table"]))
                if latest is None:
                    return Unknown(f"no last known good snapshot of {params['table']}")
                return now - latest.at
        return Unknown("the plan names no backup folder to restore from")

    def _past_runs(self, scenario: str) -> tuple[float, ...] | Unknown:
        try:
            records = self.journal.list_incidents(limit=PAST_RUNS_SEARCHED)
        except Exception as error:
            return Unknown(f"the journal could not be read: {error}")
        return tuple(
            r.closed_at - r.opened_at
            for r in records
            if r.scenario == scenario and r.state == "resolved" and r.closed_at is not None
        )

    def _last_change(self, plan: Plan) -> tuple[float, str] | Unknown:
        tables = [LAST_GOOD_SERVICE.format(service=s) for s in affected_services(plan)]
        tables += [str(p["table"]) for s in plan.steps if "table" in (p := s.param_map())]
        seen = [(r.at, t) for t in dict.fromkeys(tables) if (r := self.journal.latest_snapshot(t))]
        if not seen:
            return Unknown("no version of what the plan touches in the last-known-good registry")
        at, table = max(seen)
        what = table.removeprefix("docker:last_good:")
        return at, f"newest recorded version of {what}"

    def _holders(self) -> Mapping[str, Sequence[str]] | Unknown:
        if self.holders is None:
            return Unknown("no people file (WATCHDOG_PEOPLE)")
        try:
            return self.holders()
        except Exception as error:
            return Unknown(f"the people file could not be read: {error}")


def newest_backup_age(folder: Path, pattern: str, now: float) -> float | Unknown:
    """Age of the newest backup, dated as `database.restore` dates it (name, else mtime)."""
    try:
        found = [
            taken_at_from_name(path.name) or path.stat().st_mtime
            for path in folder.glob(pattern)
            if path.is_file()
        ]
    except OSError as error:
        return Unknown(f"backup folder {folder} cannot be read: {error.strerror}")
    if not found:
        return Unknown(f"no backup matching {pattern} in {folder}")
    return now - max(found)


def assess(
    source: FactSource | None, plan: Plan, severity: Severity, finding: Finding | None
) -> tuple[Plan, str | None, tuple[EventRow, ...]]:
    """The plan with its impact and pre-rollback verdicts, why it must not act (or None),
    and the timeline event of the verdicts (journaled with the move that starts it)."""
    if source is None:
        return plan, None, ()
    assessed, blocked = with_assessment(
        source.policy, plan, source.for_plan(plan, severity, finding), source.clock()
    )
    if not assessed.prechecks:
        return assessed, blocked, ()
    event = EventRow(
        "prechecklist",
        blocked or summary(assessed.prechecks),
        {"items": [dataclasses.asdict(item) for item in assessed.prechecks]},
    )
    return assessed, blocked, (event,)
