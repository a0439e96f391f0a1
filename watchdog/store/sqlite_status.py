"""The daemon's status row and the pause switch with its author, in the SQLite journal.

`watchdog.store.daemonstatus` has the table and the row conversions; this is the
journal's side: each write its own short transaction (a heartbeat never waits behind
a plan), each read one statement.
"""

from __future__ import annotations

from watchdog.policy.statusview import DaemonRow, StatusFacts
from watchdog.store.daemonstatus import (
    LAST_DELIVERIES,
    PAUSED_BY_FLAG,
    UPSERT,
    daemon_row,
    last_delivery,
    row_values,
)
from watchdog.store.records import PAUSED_FLAG
from watchdog.store.sqlite_base import SqliteBase

FLAG_UPSERT = (
    "INSERT INTO flags (name, value, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)


class SqliteStatus(SqliteBase):
    """The status row a daemon writes, and the facts the status strip is judged from."""

    def write_status(self, row: DaemonRow) -> None:
        with self._transaction() as conn:
            conn.execute(UPSERT, row_values(row))

    def set_paused(self, paused: bool, *, by: str, at: float) -> None:
        """The kill switch and who threw it, in one transaction."""
        with self._transaction() as conn:
            conn.execute(FLAG_UPSERT, (PAUSED_FLAG, "1" if paused else "0", at))
            conn.execute(FLAG_UPSERT, (PAUSED_BY_FLAG, by, at))

    def status_facts(self) -> StatusFacts:
        """The newest daemon's row (by heartbeat), the pause, the last delivery per pager."""
        rows = self._read("SELECT * FROM daemon_status ORDER BY heartbeat_at DESC LIMIT 1")
        flags = {
            row["name"]: (str(row["value"]), float(row["updated_at"]))
            for row in self._read(
                "SELECT * FROM flags WHERE name IN (?, ?)", (PAUSED_FLAG, PAUSED_BY_FLAG)
            )
        }
        paused, paused_at = flags.get(PAUSED_FLAG, ("0", None))
        return StatusFacts(
            daemon=daemon_row(rows[0]) if rows else None,
            paused=paused == "1",
            paused_at=paused_at,
            paused_by=flags.get(PAUSED_BY_FLAG, ("", None))[0],
            deliveries=tuple(last_delivery(row) for row in self._read(LAST_DELIVERIES)),
        )
