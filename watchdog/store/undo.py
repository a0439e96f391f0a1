"""Undo records: the before- and after-images of a change, journaled before it is made.

A step that changes rows it can put back (`provider.disable`) writes its record
here as 'intended' before it touches the database, and marks it 'applied' (or
'not_applied', when the change failed before its commit) afterwards. A crash
between the database's COMMIT and that mark leaves an 'intended' record whose
outcome is unknown; whoever reads it next compares the live rows with its
images (`watchdog.policy.configrows.assess_intent`) and settles it. The undo is
never lost: the record exists before the change can.

The saga pattern as Temporal teaches it: register the compensation, then act.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNDO_STATUSES = ("intended", "applied", "not_applied")
"""'intended' is the write-ahead mark; the other two are how it was settled."""

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS undo (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        step TEXT NOT NULL,
        action TEXT NOT NULL,
        table_name TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        intended_at REAL NOT NULL,
        settled_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS undo_incident ON undo (incident_id, id)",
)


@dataclass(frozen=True, slots=True)
class UndoRecord:
    """One change's images; `status` says whether the change is known to have landed."""

    id: int
    incident_id: int
    step: str
    action: str
    table_name: str
    before: list[dict[str, Any]]
    after: list[dict[str, Any]]
    status: str
    reason: str
    intended_at: float
    settled_at: float | None


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def intend(
    conn: sqlite3.Connection,
    incident_id: int,
    *,
    step: str,
    action: str,
    table: str,
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    at: float,
) -> int:
    cursor = conn.execute(
        "INSERT INTO undo (incident_id, step, action, table_name, before, after, status,"
        " intended_at) VALUES (?, ?, ?, ?, ?, ?, 'intended', ?)",
        (
            incident_id,
            step,
            action,
            table,
            _dumps([dict(r) for r in before]),
            _dumps([dict(r) for r in after]),
            at,
        ),
    )
    if cursor.lastrowid is None:
        raise RuntimeError("SQLite reported no id for an inserted undo record")
    return cursor.lastrowid


def settle(
    conn: sqlite3.Connection, undo_id: int, *, status: str, at: float, reason: str
) -> UndoRecord | None:
    """Mark an 'intended' record; None when it already held `status` (a repeat is harmless)."""
    if status not in UNDO_STATUSES[1:]:
        raise ValueError(
            f"undo status {status!r}: expected one of {', '.join(UNDO_STATUSES[1:])}"
        )
    row = conn.execute("SELECT * FROM undo WHERE id = ?", (undo_id,)).fetchone()
    if row is None:
        raise KeyError(f"no undo record with id {undo_id}")
    if row["status"] == status:
        return None
    if row["status"] != "intended":
        raise ValueError(
            f"undo record {undo_id} is already {row['status']!r}; it cannot become {status!r}"
        )
    conn.execute(
        "UPDATE undo SET status = ?, reason = ?, settled_at = ? WHERE id = ?",
        (status, reason, at, undo_id),
    )
    return record(conn.execute("SELECT * FROM undo WHERE id = ?", (undo_id,)).fetchone())


SELECT_FOR_INCIDENT = "SELECT * FROM undo WHERE incident_id = ? ORDER BY id"


def record(row: sqlite3.Row) -> UndoRecord:
    return UndoRecord(
        id=row["id"],
        incident_id=row["incident_id"],
        step=row["step"],
        action=row["action"],
        table_name=row["table_name"],
        before=json.loads(row["before"]),
        after=json.loads(row["after"]),
        status=row["status"],
        reason=row["reason"],
        intended_at=row["intended_at"],
        settled_at=row["settled_at"],
    )
