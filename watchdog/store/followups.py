"""Follow-ups: what people owe after an incident that acted, with owner and due time.

Written in the transaction of the move (or the human close) that makes the
incident final, so a crash cannot leave a finished rollback with nothing owed;
closed one by one by a person, who is recorded with the time. The rows and their
statements are here, like `watchdog.store.undo`; the journal methods that open
the transactions are `watchdog.store.sqlite_followups`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.policy.followups import FollowupDue

STATEMENTS = (
    # An additive table: older files simply gain it. One row per item and incident:
    # writing the same incident's items again (a repeated close) adds nothing.
    """CREATE TABLE IF NOT EXISTS followups (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        text TEXT NOT NULL,
        owner TEXT NOT NULL,
        due_at REAL NOT NULL,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        done_at REAL,
        done_by TEXT NOT NULL DEFAULT '',
        UNIQUE (incident_id, text)
    )""",
    "CREATE INDEX IF NOT EXISTS followups_open ON followups (done_at, due_at)",
)

FOLLOWUP_EVENT = "followups"
"""The timeline kind of the follow-ups written when an incident ends."""

FOLLOWUP_DONE_EVENT = "followup_done"
"""The timeline kind of a person closing one follow-up."""


@dataclass(frozen=True, slots=True)
class FollowupRecord:
    """One follow-up; open while `done_at` is None. `owner` is a role."""

    id: int
    incident_id: int
    text: str
    owner: str
    due_at: float
    reason: str
    created_at: float
    done_at: float | None
    done_by: str

    @property
    def is_open(self) -> bool:
        return self.done_at is None

    def overdue(self, now: float) -> bool:
        return self.is_open and now > self.due_at


def insert(
    conn: sqlite3.Connection, incident_id: int, dues: Sequence[FollowupDue], *, at: float
) -> int:
    """Write the incident's follow-ups inside the caller's transaction; how many are new."""
    written = 0
    for due in dues:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO followups (incident_id, text, owner, due_at, reason,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (incident_id, due.text, due.owner, due.due_at, due.reason, at),
        )
        written += cursor.rowcount
    return written


def record(row: sqlite3.Row) -> FollowupRecord:
    return FollowupRecord(
        id=row["id"],
        incident_id=row["incident_id"],
        text=row["text"],
        owner=row["owner"],
        due_at=row["due_at"],
        reason=row["reason"],
        created_at=row["created_at"],
        done_at=row["done_at"],
        done_by=row["done_by"],
    )
