"""Incidents in the SQLite journal: opening, states, severity, findings, the timeline, moves.

`commit_move` is the one transaction of a lifecycle decision: it writes through
the helpers of the other jobs (`store_plan`, `finish_step`, `insert_page_rows`)
so the decision's plan, steps and pages commit with its states, or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from watchdog.model import Finding, Severity
from watchdog.policy.followups import FollowupDue
from watchdog.policy.lifecycle import FINAL
from watchdog.store import followups as followup_rows
from watchdog.store.codec import finding_from_dict, finding_to_dict
from watchdog.store.records import CLOSED_BY_HUMAN, EventRecord, IncidentRecord, MoveRecord
from watchdog.store.sqlite_base import (
    SqliteBase,
    dumps,
    insert_event,
    lastrowid,
    require_incident,
)
from watchdog.store.sqlite_outbox import insert_page_rows
from watchdog.store.sqlite_steps import finish_step, store_plan


class SqliteIncidents(SqliteBase):
    """Incidents, their findings and timeline, and the whole-decision `commit_move`."""

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
        severity = Severity(severity)
        with self._transaction() as conn:
            existing = conn.execute(
                "SELECT id FROM incidents WHERE key = ? AND closed_at IS NULL", (key,)
            ).fetchone()
            if existing is not None:
                raise ValueError(f"incident {existing['id']} with key {key!r} is still open")
            cursor = conn.execute(
                "INSERT INTO incidents (key, severity, scenario, subject, state, reason,"
                " opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, severity.value, scenario, subject, state, reason, at, at),
            )
            incident_id = lastrowid(cursor)
            for finding in findings:
                _insert_finding(conn, incident_id, finding, at)
            insert_event(
                conn,
                incident_id,
                at=at,
                kind="opened",
                summary=f"{severity.value} {scenario} on {subject or key} ({state}): {reason}",
                data={
                    "key": key,
                    "severity": severity.value,
                    "scenario": scenario,
                    "subject": subject,
                    "state": state,
                    "findings": [finding.rule for finding in findings],
                },
            )
            return incident_id

    def find_open(self, key: str) -> IncidentRecord | None:
        rows = self._read("SELECT * FROM incidents WHERE key = ? AND closed_at IS NULL", (key,))
        return _incident(rows[0]) if rows else None

    def open_incidents(self) -> list[IncidentRecord]:
        rows = self._read("SELECT * FROM incidents WHERE closed_at IS NULL ORDER BY opened_at, id")
        return [_incident(row) for row in rows]

    def incident(self, incident_id: int) -> IncidentRecord:
        rows = self._read("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        if not rows:
            raise KeyError(f"no incident with id {incident_id}")
        return _incident(rows[0])

    def list_incidents(
        self, *, limit: int = 50, include_closed: bool = True
    ) -> list[IncidentRecord]:
        where = "" if include_closed else "WHERE closed_at IS NULL"
        rows = self._read(
            f"SELECT * FROM incidents {where} ORDER BY opened_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [_incident(row) for row in rows]

    def set_state(
        self, incident_id: int, *, state: str, at: float, reason: str, closed: bool = False
    ) -> None:
        with self._transaction() as conn:
            _change_state(conn, incident_id, state=state, at=at, reason=reason, closed=closed)

    def commit_move(self, incident_id: int, move: MoveRecord) -> None:
        """Write one lifecycle decision whole: states, plan, rung, budget, steps, events, pages."""
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            for finding in move.findings:
                _add_finding(conn, incident_id, finding, move.at)
            if move.severity is not None:
                severity, scenario, why = move.severity
                _change_severity(conn, incident_id, severity, scenario, at=move.at, reason=why)
            for step_id, output in move.unknown_steps:
                finish_step(conn, step_id, status="unknown", at=move.at, output=output)
            if move.plan is not None:
                store_plan(conn, incident_id, move.plan, at=move.at)
            if move.climb is not None:
                rung, scenario = move.climb
                conn.execute(
                    "UPDATE incidents SET rung = ?, scenario = ? WHERE id = ?",
                    (rung, scenario, incident_id),
                )
            for event in move.events:
                insert_event(
                    conn, incident_id, at=move.at, kind=event.kind, summary=event.summary,
                    data=event.data,
                )
            last = len(move.states) - 1
            for index, (state, reason) in enumerate(move.states):
                _change_state(
                    conn, incident_id, state=state, at=move.at, reason=reason,
                    closed=move.closed and index == last,
                )
            for target in move.actions:
                conn.execute("INSERT INTO actions (target, at) VALUES (?, ?)", (target, move.at))
            for page in move.pages:
                insert_page_rows(conn, incident_id, page, move.at)
            _owe(conn, incident_id, move.followups, at=move.at)

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
        with self._transaction() as conn:
            before = require_incident(conn, incident_id)
            if before["closed_at"] is not None or before["state"] in FINAL:
                raise ValueError(
                    f"incident {incident_id} is already {before['state']}"
                    f"{'' if before['state'] == 'closed' else ' (final)'}; expected an "
                    f"incident not yet final ({', '.join(sorted(FINAL))})"
                )
            conn.execute(
                "UPDATE incidents SET state = 'closed', updated_at = ?, closed_at = ? WHERE id = ?",
                (at, at, incident_id),
            )
            insert_event(
                conn,
                incident_id,
                at=at,
                kind=CLOSED_BY_HUMAN,
                summary=f"{before['state']} → closed by {person} ({role}): {comment}",
                data={
                    "from": before["state"],
                    "to": "closed",
                    "person": person,
                    "role": role,
                    "comment": comment,
                },
            )
            _owe(conn, incident_id, followups, at=at)
            return _incident(require_incident(conn, incident_id))

    def set_severity(
        self, incident_id: int, *, severity: Severity, scenario: str, at: float, reason: str
    ) -> None:
        with self._transaction() as conn:
            _change_severity(conn, incident_id, Severity(severity), scenario, at=at, reason=reason)

    # Findings and timeline -------------------------------------------------------

    def add_finding(self, incident_id: int, finding: Finding, at: float) -> None:
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            _add_finding(conn, incident_id, finding, at)

    def findings(self, incident_id: int) -> list[Finding]:
        rows = self._read(
            "SELECT body FROM findings WHERE incident_id = ? ORDER BY id", (incident_id,)
        )
        return [finding_from_dict(json.loads(row["body"])) for row in rows]

    def add_event(
        self,
        incident_id: int,
        *,
        at: float,
        kind: str,
        summary: str,
        data: dict[str, Any] | None = None,
    ) -> int:
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            return insert_event(conn, incident_id, at=at, kind=kind, summary=summary, data=data)

    def timeline(self, incident_id: int) -> list[EventRecord]:
        rows = self._read("SELECT * FROM events WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [
            EventRecord(
                id=row["id"],
                incident_id=row["incident_id"],
                at=row["at"],
                kind=row["kind"],
                summary=row["summary"],
                data=json.loads(row["data"]),
            )
            for row in rows
        ]



def _insert_finding(
    conn: sqlite3.Connection, incident_id: int, finding: Finding, at: float
) -> None:
    conn.execute(
        "INSERT INTO findings (incident_id, at, body) VALUES (?, ?, ?)",
        (incident_id, at, dumps(finding_to_dict(finding))),
    )



def _add_finding(conn: sqlite3.Connection, incident_id: int, finding: Finding, at: float) -> None:
    _insert_finding(conn, incident_id, finding, at)
    insert_event(
        conn,
        incident_id,
        at=at,
        kind="finding",
        summary=f"{finding.rule}: {finding.reason}",
        data={
            "rule": finding.rule,
            "signal": finding.signal,
            "series": finding.series,
            "severity": finding.severity.value,
            "scenario": finding.scenario,
        },
    )


def _change_severity(
    conn: sqlite3.Connection, incident_id: int, severity: Severity, scenario: str, *,
    at: float, reason: str,
) -> None:
    before = require_incident(conn, incident_id)
    conn.execute(
        "UPDATE incidents SET severity = ?, scenario = ?, updated_at = ? WHERE id = ?",
        (severity.value, scenario, at, incident_id),
    )
    insert_event(
        conn,
        incident_id,
        at=at,
        kind="escalated",
        summary=(
            f"{before['severity']} {before['scenario']} → {severity.value} {scenario}: {reason}"
        ),
        data={
            "from_severity": before["severity"],
            "to_severity": severity.value,
            "from_scenario": before["scenario"],
            "to_scenario": scenario,
        },
    )


def _change_state(
    conn: sqlite3.Connection, incident_id: int, *, state: str, at: float, reason: str,
    closed: bool,
) -> None:
    before = require_incident(conn, incident_id)
    conn.execute(
        "UPDATE incidents SET state = ?, updated_at = ?,"
        " closed_at = CASE WHEN ? THEN COALESCE(closed_at, ?) ELSE closed_at END"
        " WHERE id = ?",
        (state, at, closed, at, incident_id),
    )
    insert_event(
        conn,
        incident_id,
        at=at,
        kind="state",
        summary=f"{before['state']} → {state}: {reason}",
        data={"from": before["state"], "to": state, "closed": closed},
    )


def _owe(
    conn: sqlite3.Connection, incident_id: int, dues: Sequence[FollowupDue], *, at: float
) -> None:
    """The follow-ups an ending incident owes, and one timeline line that lists them."""
    if not dues or not followup_rows.insert(conn, incident_id, dues, at=at):
        return
    insert_event(
        conn,
        incident_id,
        at=at,
        kind=followup_rows.FOLLOWUP_EVENT,
        summary=f"{len(dues)} follow-ups owed: {dues[0].reason}",
        data={"items": [{"text": d.text, "owner": d.owner, "due_at": d.due_at} for d in dues]},
    )


def _incident(row: sqlite3.Row) -> IncidentRecord:
    return IncidentRecord(
        id=row["id"],
        key=row["key"],
        severity=Severity(row["severity"]),
        scenario=row["scenario"],
        subject=row["subject"],
        state=row["state"],
        reason=row["reason"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
        rung=row["rung"],
    )


