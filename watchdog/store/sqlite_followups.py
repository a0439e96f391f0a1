"""Follow-ups in the SQLite journal: listed, counted when overdue, closed by a person.

They are written by `commit_move` and `close_by_human` (`watchdog.store.sqlite_incidents`)
in the transaction that makes an incident final; this job reads them and closes
them, each close in its own transaction with a timeline event naming who.
"""

from __future__ import annotations

from watchdog.store import followups as rows
from watchdog.store.followups import FOLLOWUP_DONE_EVENT, FollowupRecord
from watchdog.store.render import iso_utc
from watchdog.store.sqlite_base import SqliteBase, insert_event

#: Overdue first (the earliest due first), then the rest by due time; done ones last.
_ORDER = "ORDER BY done_at IS NOT NULL, due_at, id"


class SqliteFollowups(SqliteBase):
    """The follow-ups people owe: read, counted, and closed once."""

    def followups(
        self, *, include_done: bool = False, incident_id: int | None = None
    ) -> list[FollowupRecord]:
        where = [] if include_done else ["done_at IS NULL"]
        params: list[int] = []
        if incident_id is not None:
            where.append("incident_id = ?")
            params.append(incident_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return [
            rows.record(row)
            for row in self._read(f"SELECT * FROM followups {clause}{_ORDER}", params)
        ]

    def overdue_followups(self, now: float) -> int:
        row = self._read(
            "SELECT COUNT(*) FROM followups WHERE done_at IS NULL AND due_at < ?", (now,)
        )
        return int(row[0][0])

    def followup_done(self, followup_id: int, *, person: str, at: float) -> FollowupRecord:
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM followups WHERE id = ?", (followup_id,)).fetchone()
            if row is None:
                raise KeyError(f"no follow-up with id {followup_id}")
            if row["done_at"] is not None:
                raise ValueError(
                    f"follow-up {followup_id} ({row['text']!r}) was already closed by "
                    f"{row['done_by']} at {iso_utc(row['done_at'])}"
                )
            conn.execute(
                "UPDATE followups SET done_at = ?, done_by = ? WHERE id = ?",
                (at, person, followup_id),
            )
            insert_event(
                conn,
                row["incident_id"],
                at=at,
                kind=FOLLOWUP_DONE_EVENT,
                summary=f"follow-up {followup_id} done by {person}: {row['text']}",
                data={"followup_id": followup_id, "person": person, "text": row["text"]},
            )
            done = conn.execute("SELECT * FROM followups WHERE id = ?", (followup_id,)).fetchone()
            return rows.record(done)
