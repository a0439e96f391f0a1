"""The journal's contract, and the one place that picks a backend for a URL.

Everything the daemon decides and does is written here before it acts, each
write committed before the method returns, so a crash loses nothing and a
restart rebuilds every open incident from what is stored. Times are passed in
by the caller: the journal never reads the clock.

Backends: SQLite (`SqliteJournal`, the embedded default) and PostgreSQL
(`watchdog.store.pg.PgJournal`, imported only when a `postgresql://` URL is opened,
so a daemon on SQLite never loads psycopg), behind this same Protocol; the contract
tests in `tests/integration/test_journal.py` run over both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from watchdog.model import Alert, Finding, Observation, Plan, Severity, Step
from watchdog.policy.followups import FollowupDue
from watchdog.policy.statusview import DaemonRow, StatusFacts
from watchdog.store.alerts import AlertDelivery, AlertReceipt, FiringStarts
from watchdog.store.followups import FollowupRecord
from watchdog.store.outbox_contract import OutboxJournal
from watchdog.store.pg_base import is_pg_url, masked
from watchdog.store.records import (
    ApprovalRecord,
    EventRecord,
    IncidentRecord,
    MoveRecord,
    SnapshotRecord,
    StepRecord,
)
from watchdog.store.shadow import ShadowDecision
from watchdog.store.sqlite import SqliteJournal
from watchdog.store.undo import UndoRecord

SQLITE_SCHEME = "sqlite:///"
ACCEPTED_FORMS = (
    "a file path, or sqlite:///relative/path.db, or sqlite:////absolute/path.db, "
    "or postgresql://user:password@host:port/dbname[?schema=watchdog]"
)


class Journal(OutboxJournal, Protocol):
    """The write-ahead journal of incidents, steps, approvals, actions and snapshots.

    Its outbox (pages journaled before they are sent, claimed by the one outbox that
    sends each) is `watchdog.store.outbox_contract.OutboxJournal`.

    Unknown incident or row ids raise `KeyError` naming the id; a value outside
    its allowed set (a step status, an approval decision) raises `ValueError`.
    """

    # Incidents -------------------------------------------------------------

    def open_incident(
        self,
        *,
        key: str,
        severity: Severity,
        scenario: str,
        subject: str,
        state: str,
        reason: str,
        at: float,
        findings: Sequence[Finding],
    ) -> int:
        """Insert an incident with its findings and an "opened" event.

        Raises `ValueError` if an open incident already has this key.
        """
        ...

    def find_open(self, key: str) -> IncidentRecord | None: ...

    def open_incidents(self) -> list[IncidentRecord]:
        """Every incident not yet closed, oldest first."""
        ...

    def incident(self, incident_id: int) -> IncidentRecord: ...

    def list_incidents(
        self, *, limit: int = 50, include_closed: bool = True
    ) -> list[IncidentRecord]:
        """Newest first."""
        ...

    def set_state(
        self, incident_id: int, *, state: str, at: float, reason: str, closed: bool = False
    ) -> None:
        """Move to `state` and journal "from → to: reason"; `closed` sets closed_at."""
        ...

    def commit_move(self, incident_id: int, move: MoveRecord) -> None:
        """Write one lifecycle decision in one transaction: its state changes, plan,
        rung, budget and cooldown charges, interrupted steps, events and pages."""
        ...

    def close_by_human(
        self,
        incident_id: int,
        *,
        person: str,
        role: str,
        comment: str,
        at: float,
        followups: Sequence[FollowupDue] = (),
    ) -> IncidentRecord:
        """A person ends the incident: state 'closed', closed_at set and a 'closed_by_human'
        event naming who, in which role, and why, with the `followups` it owes, in one
        transaction; returns the closed row.

        Raises `KeyError` for an unknown id and `ValueError` (changing nothing) if the
        incident is already closed or in any other final state. The daemon reads the
        close from here on its next tick (see `watchdog.engine.closing`).
        """
        ...

    def set_severity(
        self, incident_id: int, *, severity: Severity, scenario: str, at: float, reason: str
    ) -> None: ...

    # Findings and timeline -------------------------------------------------

    def add_finding(self, incident_id: int, finding: Finding, at: float) -> None: ...

    def findings(self, incident_id: int) -> list[Finding]: ...

    def add_event(
        self,
        incident_id: int,
        *,
        at: float,
        kind: str,
        summary: str,
        data: dict[str, Any] | None = None,
    ) -> int: ...

    def timeline(self, incident_id: int) -> list[EventRecord]:
        """Every event of the incident, in the order it was journaled."""
        ...

    # Plans and steps -------------------------------------------------------

    def save_plan(self, incident_id: int, plan: Plan, *, at: float) -> None:
        """Store the incident's current plan, replacing any earlier one."""
        ...

    def plan(self, incident_id: int) -> Plan | None: ...

    def step_started(
        self, incident_id: int, *, index: int, step: Step, at: float, rung: int = 0
    ) -> int:
        """Write ahead: record that a step is about to run; returns the step row id.

        `rung` is the ladder rung whose plan the step belongs to (0: the first
        plan), so a resume after a crash between rungs continues the right one.
        Attempts are counted per (incident, index) across rungs, so an attempt
        number never repeats. Raises `ValueError` while an earlier attempt at
        the same step is still 'started': the caller must first decide what
        became of it.
        """
        ...

    def step_finished(self, step_id: int, *, status: str, at: float, output: str) -> None:
        """Record how a started step ended: succeeded, failed, unknown or skipped."""
        ...

    def steps(self, incident_id: int) -> list[StepRecord]: ...

    def unfinished_steps(self) -> list[StepRecord]:
        """Steps of any incident still 'started': what a crash left behind."""
        ...

    # Approvals and notifications -------------------------------------------

    def record_approval(
        self,
        incident_id: int,
        *,
        at: float,
        person: str,
        role: str,
        decision: str,
        comment: str = "",
        plan_digest: str | None = None,
    ) -> int:
        """Journal a vote for the plan as shown (`plan_digest`; None: the plan stored now)."""
        ...

    def approvals(self, incident_id: int) -> list[ApprovalRecord]: ...

    # Guards: action budget, cooldown, flags --------------------------------

    def record_action(self, *, target: str, at: float) -> None: ...

    def actions_since(self, at: float, *, target: str | None = None) -> int:
        """How many actions (on `target`, if given) were recorded at or after `at`."""
        ...

    def last_action_at(self, target: str) -> float | None: ...

    def set_flag(self, name: str, value: str, *, at: float) -> None: ...

    def get_flag(self, name: str) -> str | None: ...

    # Snapshots -------------------------------------------------------------

    def save_snapshot(
        self,
        table: str,
        rows: list[dict[str, Any]],
        *,
        at: float,
        keep: int = 10,
        caveat: str = "",
    ) -> SnapshotRecord | None:
        """Store the rows if they differ from the newest version; keep `keep` versions.

        `caveat`: why this version is less than clean (e.g. taken while the watchdog
        had a provider disabled); a restore from it says so. The same rows as the
        newest version are stored again only to drop that version's caveat.
        """
        ...

    def latest_snapshot(self, table: str) -> SnapshotRecord | None: ...

    def snapshots(self, table: str) -> list[SnapshotRecord]:
        """Every kept version of the table, newest first."""
        ...

    def snapshot(self, snapshot_id: int) -> SnapshotRecord: ...

    # Undo records: written ahead of the change they undo -------------------

    def intend_undo(
        self,
        incident_id: int,
        *,
        step: str,
        action: str,
        table: str,
        before: Sequence[Mapping[str, Any]],
        after: Sequence[Mapping[str, Any]],
        at: float,
    ) -> int:
        """Write ahead, before the change is committed: the rows as they are (`before`) and
        as the change will leave them (`after`), status 'intended'; returns the record's id.

        One transaction with an "undo" event on the incident's timeline. Raises
        `KeyError` for an unknown incident.
        """
        ...

    def settle_undo(self, undo_id: int, *, status: str, at: float, reason: str) -> None:
        """Mark an 'intended' record 'applied' or 'not_applied', with why, and journal it.

        Settling again with the same status does nothing (a retry is harmless); a
        record already settled the other way raises `ValueError`, an unknown id
        `KeyError`, a status outside those two `ValueError`.
        """
        ...

    def undo_records(self, incident_id: int) -> list[UndoRecord]:
        """Every undo record of the incident, oldest first, whatever its status."""
        ...

    # Alertmanager's alerts -------------------------------------------------

    def record_alerts(
        self, deliveries: Sequence[AlertDelivery], *, at: float, firing: FiringStarts
    ) -> list[AlertReceipt]:
        """Store webhooks' alerts, deduplicated on (fingerprint, startsAt), in one commit.

        Several deliveries share one transaction (and one fsync) when they arrive
        together; each gets its own receipt, in order. `firing` holds, by
        fingerprint, the startsAt of the firings the caller holds as still firing
        (a newer firing ends them); it is updated in place as deliveries apply.
        """
        ...

    def firing_alerts(self) -> list[Alert]:
        """Alerts still firing that no resolved incident has settled, oldest first."""
        ...

    def settle_alerts(self, keys: Sequence[tuple[str, float]], *, at: float, by: str) -> None:
        """Mark firings (fingerprint, startsAt) as handled by `by` (an incident)."""
        ...

    # Follow-ups: owed after an incident that acted ----------------------------

    def followups(
        self, *, include_done: bool = False, incident_id: int | None = None
    ) -> list[FollowupRecord]:
        """Open follow-ups (and done ones with `include_done`), overdue first, then by due
        time; done ones last. Written by `commit_move` and `close_by_human`."""
        ...

    def overdue_followups(self, now: float) -> int:
        """How many open follow-ups were due before `now`."""
        ...

    def followup_done(self, followup_id: int, *, person: str, at: float) -> FollowupRecord:
        """Close a follow-up as `person`, with a timeline event, in one transaction.

        Raises `KeyError` for an unknown id and `ValueError` (naming who closed it and
        when) for one already done.
        """
        ...

    # The daemon's status (watchdog.store.daemonstatus) --------------------------

    def write_status(self, row: DaemonRow) -> None:
        """Insert or replace the stack's status row (start, heartbeat, clean stop)."""
        ...

    def set_paused(self, paused: bool, *, by: str, at: float) -> None: ...

    def status_facts(self) -> StatusFacts:
        """What the status strip is judged from: row, pause and who, last deliveries."""
        ...

    # Observations kept for replay (watchdog.store.observations) ----------------

    def record_observations(self, observations: Sequence[Observation]) -> None:
        """Append a tick's kept samples in one transaction."""
        ...

    def observations(
        self, *, since: float | None = None, until: float | None = None
    ) -> list[Observation]:
        """The kept samples in [since, until], oldest first."""
        ...

    def observation_span(self) -> tuple[int, float | None, float | None]:
        """How many samples are kept, and the first and last time among them."""
        ...

    def prune_observations(self, before: float) -> int:
        """Forget samples older than `before`; return how many went."""
        ...

    # A shadow policy's decisions (watchdog.store.shadow) --------------------------

    def record_shadow_decisions(self, decisions: Sequence[ShadowDecision]) -> None:
        """Append a tick's shadow decisions in one transaction."""
        ...

    def shadow_decisions(self, *, limit: int = 50) -> list[ShadowDecision]:
        """The latest `limit` shadow decisions, newest first."""
        ...

    def close(self) -> None: ...


def open_journal(url_or_path: str, *, fence: tuple[str, int] | None = None) -> Journal:
    """Open (creating if needed) the journal named by a path or a `sqlite:///` URL.

    As in SQLAlchemy, `sqlite:///state/journal.db` is relative to the working
    directory and `sqlite:////var/lib/watchdog/journal.db` is absolute. A
    `postgresql://` URL opens the journal in that database, in the schema its
    `?schema=` names (default `watchdog`); errors name it with its password as `***`.
    `fence` (stack, token): a leader's handle on a shared PostgreSQL journal, whose every
    write the database refuses once that term is over (`watchdog.store.pg_fence`).
    """
    if is_pg_url(url_or_path):
        from watchdog.store.pg import PgJournal  # lazy: psycopg only for PostgreSQL

        return PgJournal(url_or_path, fence=fence)
    if fence is not None:
        raise ValueError("only a PostgreSQL journal is shared by leaders and followers")
    if url_or_path.startswith(SQLITE_SCHEME):
        path = url_or_path[len(SQLITE_SCHEME) :]
        if path:
            return SqliteJournal(path)
    elif url_or_path and "://" not in url_or_path and not url_or_path.startswith("sqlite:"):
        return SqliteJournal(url_or_path)
    raise ValueError(f"cannot open a journal at {masked(url_or_path)!r}: expected {ACCEPTED_FORMS}")
