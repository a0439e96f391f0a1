"""The outbox in the SQLite journal: pages written with the decision, delivered after.

A page is rows here (one per channel) before any notifier sends it, so a crash
loses no page: a delivery is due while 'pending', once its `next_at` has come and
no older pending row of its incident and channel waits before it; it ends 'sent'
or 'rejected' (with, perhaps, a fallback page to another channel).

Two daemons on one journal (PostgreSQL, issue 17) send a row only after claiming it:
`claim_deliveries` picks due rows that nobody holds, or whose holder's lease has
passed (it died or froze), and marks them with the holder's name and lease in one
write transaction, so two claims never return the same row. An outcome written by
another than the live holder is refused (`ClaimLost`, naming both): a daemon that
woke up after its lease was taken over does not mark a row the new holder sends.
Times are the callers' clocks, as everywhere in the journal: across hosts, the
lease must also cover their clock skew.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from watchdog.store.records import PAGE_ROW_STATUSES, ClaimLost, DeliveryRecord, PageRows
from watchdog.store.sqlite_base import (
    SqliteBase,
    dumps,
    insert_event,
    lastrowid,
    require_incident,
)

#: The due rule: pending, its time come, and no older pending row of its incident and
#: channel before it (a resolve never overtakes its trigger).
_DUE = (
    "SELECT * FROM outbox AS o WHERE o.status = 'pending' AND o.next_at <= ?"
    " AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.status = 'pending'"
    " AND e.incident_id = o.incident_id AND e.channel = o.channel AND e.id < o.id)"
)
_OLDEST_FIRST = " ORDER BY o.next_at, o.id LIMIT ?"


class SqliteOutbox(SqliteBase):
    """Pages enqueued, the deliveries due, their claims, and each delivery's outcome."""

    #: What a claim's SELECT adds to lock the rows it picks. Nothing here: BEGIN
    #: IMMEDIATE already makes the claim the file's only writer. PgJournal sets
    #: FOR UPDATE SKIP LOCKED, so its claims stay disjoint without the journal-wide
    #: write lock too.
    _claim_lock = ""

    def enqueue_page(self, incident_id: int, rows: PageRows, *, at: float) -> list[int]:
        with self._transaction() as conn:
            return insert_page_rows(conn, incident_id, rows, at)

    def due_deliveries(self, now: float, *, limit: int = 20) -> list[DeliveryRecord]:
        rows = self._read(_DUE + _OLDEST_FIRST, (now, limit))
        return [_delivery(row) for row in rows]

    def claim_deliveries(
        self, holder: str, now: float, *, lease: float, limit: int = 20
    ) -> list[DeliveryRecord]:
        if not holder or lease <= 0:
            raise ValueError(f"a claim needs a holder and a lease > 0 (got {holder!r}, {lease})")
        until = now + lease
        free = " AND (o.claimed_until IS NULL OR o.claimed_until <= ?)"
        if not self._read(_DUE + free + " LIMIT 1", (now, now)):
            return []  # the idle poll: a read, no write transaction (nor journal lock)
        with self._transaction() as conn:
            rows = conn.execute(
                _DUE + free + _OLDEST_FIRST + self._claim_lock, (now, now, limit)
            ).fetchall()
            if rows:
                conn.executemany(
                    "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                    [(holder, until, row["id"]) for row in rows],
                )
        return [replace(_delivery(row), claimed_by=holder, claimed_until=until) for row in rows]

    def release_claims(self, dead: Callable[[str], bool]) -> list[str]:
        with self._transaction() as conn:
            held = conn.execute(
                "SELECT DISTINCT claimed_by FROM outbox WHERE status = 'pending'"
                " AND claimed_by IS NOT NULL ORDER BY claimed_by"
            ).fetchall()
            gone = [row[0] for row in held if dead(row[0])]
            conn.executemany(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
                " WHERE status = 'pending' AND claimed_by = ?",
                [(holder,) for holder in gone],
            )
        return gone

    def delivery_sent(
        self, delivery_id: int, *, at: float, summary: str, holder: str | None = None
    ) -> None:
        with self._transaction() as conn:
            row = _require_pending(conn, delivery_id, holder, at)
            conn.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, finished_at = ?"
                " WHERE id = ?",
                (at, delivery_id),
            )
            insert_event(
                conn,
                row["incident_id"],
                at=at,
                kind="page_sent",
                summary=f"{row['channel']} {row['event']} sent: {summary}",
                data=_delivery_data(row, attempts=row["attempts"] + 1),
            )

    def delivery_retry(
        self, delivery_id: int, *, at: float, next_at: float, error: str,
        holder: str | None = None,
    ) -> None:
        with self._transaction() as conn:
            _require_pending(conn, delivery_id, holder, at)
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ?,"
                " claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                (next_at, error, delivery_id),
            )

    def delivery_rejected(
        self,
        delivery_id: int,
        *,
        at: float,
        error: str,
        fallback: PageRows | None = None,
        fallback_of: int | None = None,
        lost: str = "",
        holder: str | None = None,
    ) -> list[int]:
        with self._transaction() as conn:
            row = _require_pending(conn, delivery_id, holder, at)
            conn.execute(
                "UPDATE outbox SET status = 'rejected', attempts = attempts + 1,"
                " finished_at = ?, last_error = ?, claimed_by = NULL, claimed_until = NULL"
                " WHERE id = ?",
                (at, error, delivery_id),
            )
            data = _delivery_data(row, attempts=row["attempts"] + 1)
            insert_event(
                conn,
                row["incident_id"],
                at=at,
                kind="page_rejected",
                summary=f"{row['channel']} {row['event']} not delivered: {error}",
                data=data,
            )
            if lost:
                insert_event(
                    conn,
                    row["incident_id"],
                    at=at,
                    kind="page_lost",
                    summary=lost,
                    data={**data, "error": error},
                )
            if fallback is None:
                return []
            return insert_page_rows(
                conn, row["incident_id"], fallback, at, fallback_of=fallback_of
            )

    def deliveries(self, incident_id: int) -> list[DeliveryRecord]:
        rows = self._read("SELECT * FROM outbox WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [_delivery(row) for row in rows]

    def pending_deliveries(self) -> dict[str, int]:
        rows = self._read(
            "SELECT channel, COUNT(*) AS n FROM outbox WHERE status = 'pending' GROUP BY channel"
        )
        return {row["channel"]: row["n"] for row in rows}




def insert_page_rows(
    conn: sqlite3.Connection,
    incident_id: int,
    rows: PageRows,
    at: float,
    *,
    fallback_of: int | None = None,
) -> list[int]:
    """Write one page's outbox rows (due at `at`) and its timeline event; return the row ids.

    No transaction of its own: `enqueue_page` wraps it in one, and an incident move
    calls it inside the move's transaction, so the move and its page commit together.
    A dry-run page is journaled as 'dry_run' rows, never due, shown as "would page".
    `fallback_of` names the page event this page stands in for (a channel refused it).
    """
    if rows.status not in PAGE_ROW_STATUSES:
        raise ValueError(
            f"page rows status {rows.status!r} is not one of {', '.join(PAGE_ROW_STATUSES)}"
        )
    if not rows.bodies:
        raise ValueError(f"page rows for incident {incident_id} name no channel")
    require_incident(conn, incident_id)
    insert = (
        "INSERT INTO outbox (incident_id, channel, event, dedup_key, body, status, created_at,"
        " next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    key, status = rows.dedup_key, rows.status
    ids = [
        lastrowid(
            conn.execute(
                insert, (incident_id, channel, rows.event, key, dumps(body), status, at, at)
            )
        )
        for channel, body in rows.bodies.items()
    ]
    channels = ", ".join(rows.bodies)
    dry = rows.status == "dry_run"
    data: dict[str, Any] = {
        "event": rows.event,
        "channels": list(rows.bodies),
        "delivery_ids": ids,
        "reason": rows.reason,
    }
    if fallback_of is not None:
        data["fallback_of"] = fallback_of
    insert_event(
        conn,
        incident_id,
        at=at,
        kind="page_dry_run" if dry else "page",
        summary=(
            f"would page {channels}: {rows.event}: {rows.reason}"
            if dry
            else f"{rows.event} to {channels}: {rows.reason}"
        ),
        data=data,
    )
    return ids


def _require_pending(
    conn: sqlite3.Connection, delivery_id: int, holder: str | None, at: float
) -> sqlite3.Row:
    """The row, pending, and not claimed by another whose claim is still live at `at`."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM outbox WHERE id = ?", (delivery_id,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no outbox row with id {delivery_id}")
    if row["status"] != "pending":
        raise ValueError(f"outbox row {delivery_id} is already {row['status']!r}, not pending")
    owner, until = row["claimed_by"], row["claimed_until"]
    if owner is not None and owner != holder and until is not None and until > at:
        caller = repr(holder) if holder else "a caller holding no claim"
        raise ClaimLost(
            f"outbox row {delivery_id} is claimed by {owner!r} until {until}, not by {caller}"
        )
    return row


def _delivery_data(row: sqlite3.Row, *, attempts: int) -> dict[str, Any]:
    return {
        "delivery_id": row["id"],
        "channel": row["channel"],
        "event": row["event"],
        "attempts": attempts,
    }


def _delivery(row: sqlite3.Row) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        incident_id=row["incident_id"],
        channel=row["channel"],
        event=row["event"],
        dedup_key=row["dedup_key"],
        body=json.loads(row["body"]),
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_at=row["next_at"],
        finished_at=row["finished_at"],
        last_error=row["last_error"],
        claimed_by=row["claimed_by"],
        claimed_until=row["claimed_until"],
    )
