"""Snapshots and undo records in the SQLite journal: the before-images a rollback restores.

A snapshot is a table's rows as last seen healthy, kept while it changes (the
newest `keep`); an undo record holds the before- and after-images of one step's
change, written ahead of it (`watchdog.store.undo` has its rows and states).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from watchdog.store import undo as undo_rows
from watchdog.store.records import SnapshotRecord
from watchdog.store.sqlite_base import (
    SqliteBase,
    dumps,
    insert_event,
    lastrowid,
    require_incident,
)
from watchdog.store.undo import UndoRecord


class SqliteSnapshots(SqliteBase):
    """Tables' snapshots, and the undo records written ahead of a change."""

    def save_snapshot(
        self,
        table: str,
        rows: list[dict[str, Any]],
        *,
        at: float,
        keep: int = 10,
        caveat: str = "",
    ) -> SnapshotRecord | None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        checksum = rows_checksum(rows)
        body = dumps(rows)
        with self._transaction() as conn:
            newest = conn.execute(
                "SELECT checksum, caveat FROM snapshots WHERE table_name = ?"
                " ORDER BY id DESC LIMIT 1",
                (table,),
            ).fetchone()
            # The same rows again are news only when they were under a caveat and are
            # now seen clean: the clean version is what a restore should say it is.
            if (
                newest is not None
                and newest["checksum"] == checksum
                and (caveat or not newest["caveat"])
            ):
                return None
            cursor = conn.execute(
                "INSERT INTO snapshots (table_name, at, checksum, row_count, rows, caveat)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (table, at, checksum, len(rows), body, caveat),
            )
            snapshot_id = lastrowid(cursor)
            conn.execute(
                "DELETE FROM snapshots WHERE table_name = ? AND id NOT IN"
                " (SELECT id FROM snapshots WHERE table_name = ? ORDER BY id DESC LIMIT ?)",
                (table, table, keep),
            )
        return SnapshotRecord(
            id=snapshot_id,
            table_name=table,
            at=at,
            checksum=checksum,
            row_count=len(rows),
            rows=json.loads(body),
            caveat=caveat,
        )

    def latest_snapshot(self, table: str) -> SnapshotRecord | None:
        rows = self._read(
            "SELECT * FROM snapshots WHERE table_name = ? ORDER BY id DESC LIMIT 1", (table,)
        )
        return _snapshot(rows[0]) if rows else None

    def snapshots(self, table: str) -> list[SnapshotRecord]:
        rows = self._read("SELECT * FROM snapshots WHERE table_name = ? ORDER BY id DESC", (table,))
        return [_snapshot(row) for row in rows]

    def snapshot(self, snapshot_id: int) -> SnapshotRecord:
        rows = self._read("SELECT * FROM snapshots WHERE id = ?", (snapshot_id,))
        if not rows:
            raise KeyError(f"no snapshot with id {snapshot_id}")
        return _snapshot(rows[0])

    # Undo records, written ahead of the change ----------------------------------------------

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
        with self._transaction() as conn:
            require_incident(conn, incident_id)
            undo_id = undo_rows.intend(
                conn, incident_id, step=step, action=action, table=table,
                before=before, after=after, at=at,
            )
            insert_event(
                conn,
                incident_id,
                at=at,
                kind="undo",
                summary=f"undo record {undo_id} written ahead of {step!r}: the before-images "
                f"of {len(before)} row(s) of {table}",
                data={"undo": undo_id, "status": "intended"},
            )
            return undo_id

    def settle_undo(self, undo_id: int, *, status: str, at: float, reason: str) -> None:
        with self._transaction() as conn:
            settled = undo_rows.settle(conn, undo_id, status=status, at=at, reason=reason)
            if settled is not None:
                insert_event(
                    conn,
                    settled.incident_id,
                    at=at,
                    kind="undo",
                    summary=f"undo record {undo_id} {status.replace('_', ' ')}: {reason}",
                    data={"undo": undo_id, "status": status},
                )

    def undo_records(self, incident_id: int) -> list[UndoRecord]:
        return [
            undo_rows.record(r) for r in self._read(undo_rows.SELECT_FOR_INCIDENT, (incident_id,))
        ]



def rows_checksum(rows: Sequence[dict[str, Any]]) -> str:
    """sha256 of the rows as canonical JSON, independent of the order of rows and keys."""
    canonical = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return hashlib.sha256(("[" + ",".join(canonical) + "]").encode()).hexdigest()


def _snapshot(row: sqlite3.Row) -> SnapshotRecord:
    return SnapshotRecord(
        id=row["id"],
        table_name=row["table_name"],
        at=row["at"],
        checksum=row["checksum"],
        row_count=row["row_count"],
        rows=json.loads(row["rows"]),
        caveat=row["caveat"],
    )


