"""Putting a disabled provider back once it is healthy again, as an incident of its own.

The pure core (`watchdog.policy.reenable`) says when; this keeps the list of
resolved incidents whose provider disable still stands, rebuilt from the
journal at start (so a restart forgets nothing), and opens the follow-up
incident through the same lifecycle as any other: guards, the executor's
write-ahead steps, the checklist. The original incident is marked in the
journal only after the follow-up exists, so a crash between the two costs at
most a second, idempotent undo that finds every row already back.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from watchdog.actions.config import UNDOABLE
from watchdog.engine.incidents import Incidents
from watchdog.engine.opening import apply_triage
from watchdog.policy.reenable import Disabled, watch_reenables
from watchdog.policy.schema import Policy
from watchdog.policy.windows import Windows
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.reenable")

#: How many recent incidents a refresh looks through for changes still standing.
LOOKBACK = 500


def reenabled_flag(incident: int) -> str:
    """The journal flag naming the follow-up incident that undid `incident`'s change."""
    return f"reenabled:{incident}"


class Reenabler:
    def __init__(
        self,
        policy: Policy,
        journal: Journal,
        incidents: Incidents,
        windows: Windows,
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.journal = journal
        self.incidents = incidents
        self.windows = windows
        self.clock = clock
        self.scenarios = {n for n, s in policy.scenarios.items() if s.reenable is not None}
        self.pending: dict[int, Disabled] = {}
        self.healthy_since: dict[int, float] = {}
        self._examined: set[int] = set()

    def refresh(self) -> None:
        """Pick up resolved incidents whose provider disable still stands."""
        if not self.scenarios:
            return
        for record in self.journal.list_incidents(limit=LOOKBACK):
            if (
                record.id in self._examined
                or record.closed_at is None
                or record.state != "resolved"
                or record.scenario not in self.scenarios
            ):
                continue
            self._examined.add(record.id)
            if self.journal.get_flag(reenabled_flag(record.id)) is not None:
                continue
            changed = self.still_stands(record.id)
            findings = self.journal.findings(record.id)
            if changed and findings:
                self.pending[record.id] = Disabled(
                    record.id,
                    record.severity,
                    record.scenario,
                    record.subject,
                    record.closed_at,
                    findings[0],
                )
                log.info("reenable_watching", incident=record.id, subject=record.subject)

    def still_stands(self, incident: int) -> bool:
        """Whether `incident` may have a provider disable standing, from its undo records.

        An 'intended' record counts: the crash that left it may have come after
        the database committed, and only the live rows can tell. The follow-up's
        `provider.enable` reads them, settles the record, and puts back what did
        land; forgetting it instead would leave the provider out for good.
        Journals written before undo records existed keep their images in the
        step's evidence.
        """
        records = self.journal.undo_records(incident)
        if records:
            return any(r.status in ("intended", "applied") for r in records)
        return any(
            e.kind == "step_evidence" and e.data.get("action") == UNDOABLE
            for e in self.journal.timeline(incident)
        )

    def tick(self) -> None:
        if not self.pending:
            return
        now = self.clock()
        watch = watch_reenables(
            self.policy,
            list(self.pending.values()),
            self.windows,
            self.healthy_since,
            now,
            self.incidents.max_evidence_age,
        )
        self.healthy_since = watch.healthy_since
        for decision in watch.due:
            if decision.key in self.incidents.views:
                continue  # one follow-up per subject at a time
            original = int(decision.findings[0].param_map()["undoes"])
            self.journal.add_event(original, at=now, kind="reenable", summary=decision.reason)
            apply_triage(self.incidents, [decision])
            follow_up = self.incidents.views.get(decision.key)
            self.journal.set_flag(
                reenabled_flag(original),
                str(follow_up.id) if follow_up is not None else "opened",
                at=now,
            )
            self.pending.pop(original, None)
            self.healthy_since.pop(original, None)
            log.info("reenable_started", incident=original, reason=decision.reason)
