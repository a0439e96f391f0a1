"""The daemon's status row: what `watchdog status` and the strip read without the daemon.

One row per stack (a journal has one daemon: `DaemonLock`), written at start and then
on every heartbeat in its own short transaction, and marked stopped by a clean stop.
What is recorded elsewhere is not copied here: the pause switch is the `paused` flag
(who set it is the `paused_by` flag, written in the same transaction), and the last
delivery per pager is the outbox's newest finished row. An additive table: older
journals simply gain it, and an older watchdog ignores it.
"""

from __future__ import annotations

import json
import sqlite3

from watchdog.policy.statusview import DaemonRow, LastDelivery

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS daemon_status (
        stack TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        heartbeat_seconds REAL NOT NULL,
        stopped_at REAL,
        dry_run INTEGER NOT NULL,
        role TEXT NOT NULL,
        journal TEXT NOT NULL,
        listen TEXT NOT NULL,
        policy_name TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        channels TEXT NOT NULL,
        p0_routes TEXT NOT NULL
    )""",
)

PAUSED_BY_FLAG = "paused_by"
"""Who last paused or resumed (`watchdog pause --as`), written with the `paused` flag."""

UPSERT = (
    "INSERT INTO daemon_status (stack, pid, host, started_at, heartbeat_at, heartbeat_seconds,"
    " stopped_at, dry_run, role, journal, listen, policy_name, policy_version, channels,"
    " p0_routes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (stack) DO UPDATE SET pid = excluded.pid, host = excluded.host,"
    " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
    " heartbeat_seconds = excluded.heartbeat_seconds, stopped_at = excluded.stopped_at,"
    " dry_run = excluded.dry_run, role = excluded.role, journal = excluded.journal,"
    " listen = excluded.listen, policy_name = excluded.policy_name,"
    " policy_version = excluded.policy_version, channels = excluded.channels,"
    " p0_routes = excluded.p0_routes"
)

#: Per channel, its newest row that says something about delivery: sent, refused, or
#: pending after a failed attempt (retrying). Dry-run rows were never meant to be sent.
LAST_DELIVERIES = (
    "SELECT channel, status, created_at, finished_at, last_error FROM outbox WHERE id IN"
    " (SELECT MAX(id) FROM outbox WHERE status IN ('sent', 'rejected')"
    " OR (status = 'pending' AND attempts > 0) GROUP BY channel) ORDER BY channel"
)


def row_values(row: DaemonRow) -> tuple[object, ...]:
    return (
        row.stack, row.pid, row.host, row.started_at, row.heartbeat_at, row.heartbeat_seconds,
        row.stopped_at, int(row.dry_run), row.role, row.journal, row.listen, row.policy_name,
        row.policy_version, json.dumps(list(row.channels)), json.dumps(list(row.p0_routes)),
    )


def daemon_row(row: sqlite3.Row) -> DaemonRow:
    return DaemonRow(
        stack=row["stack"], pid=row["pid"], host=row["host"], started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"], heartbeat_seconds=row["heartbeat_seconds"],
        stopped_at=row["stopped_at"], dry_run=bool(row["dry_run"]), role=row["role"],
        journal=row["journal"], listen=row["listen"], policy_name=row["policy_name"],
        policy_version=row["policy_version"], channels=tuple(json.loads(row["channels"])),
        p0_routes=tuple(json.loads(row["p0_routes"])),
    )


def last_delivery(row: sqlite3.Row) -> LastDelivery:
    status = row["status"]
    ok = True if status == "sent" else False if status == "rejected" else None
    at = row["finished_at"] if row["finished_at"] is not None else row["created_at"]
    return LastDelivery(channel=row["channel"], ok=ok, at=at, error=row["last_error"])
