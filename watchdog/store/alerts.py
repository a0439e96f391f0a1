"""Alertmanager's alerts in the journal: stored before the webhook is answered.

One row per firing of one alert, keyed by its fingerprint and startsAt, so the
at-least-once deliveries of Alertmanager (repeats, retries, an HA pair sending
twice) land on the same row. A `resolved` notification closes the row; a new
firing of the same fingerprint (a later startsAt) closes the older ones, whose
resolution may have been lost. A row is `settled` once an incident that it
helped to open has been resolved: that firing has been handled, and only a new
firing (a new startsAt) counts again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.model import Alert

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS alerts (
        fingerprint TEXT NOT NULL,
        starts_at REAL NOT NULL,
        status TEXT NOT NULL,
        ends_at REAL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        generator_url TEXT NOT NULL,
        group_key TEXT NOT NULL,
        receiver TEXT NOT NULL,
        first_received_at REAL NOT NULL,
        last_received_at REAL NOT NULL,
        deliveries INTEGER NOT NULL,
        settled_at REAL,
        settled_by TEXT,
        PRIMARY KEY (fingerprint, starts_at)
    )""",
    "CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status)",
)


@dataclass(frozen=True, slots=True)
class AlertReceipt:
    """What a delivery changed: alerts new to the journal (or newly resolved), and repeats."""

    accepted: int
    duplicates: int


def record(
    conn: sqlite3.Connection,
    alerts: Sequence[Alert],
    *,
    at: float,
    group_key: str,
    receiver: str,
) -> AlertReceipt:
    """Store one webhook's alerts; call inside a write transaction."""
    accepted = duplicates = 0
    for alert in alerts:
        row = conn.execute(
            "SELECT status FROM alerts WHERE fingerprint = ? AND starts_at = ?",
            (alert.fingerprint, alert.starts_at),
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO alerts (fingerprint, starts_at, status, ends_at, labels, annotations,"
                " generator_url, group_key, receiver, first_received_at, last_received_at,"
                " deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    alert.fingerprint,
                    alert.starts_at,
                    alert.status,
                    alert.ends_at,
                    json.dumps(alert.labels),
                    json.dumps(alert.annotations),
                    alert.generator_url,
                    group_key,
                    receiver,
                    at,
                    at,
                ),
            )
            accepted += 1
        elif row["status"] == "firing" and not alert.firing:
            conn.execute(
                "UPDATE alerts SET status = 'resolved', ends_at = ?, last_received_at = ?,"
                " deliveries = deliveries + 1 WHERE fingerprint = ? AND starts_at = ?",
                (alert.ends_at, at, alert.fingerprint, alert.starts_at),
            )
            accepted += 1
        else:  # the same news again, or a late firing after its resolution
            conn.execute(
                "UPDATE alerts SET last_received_at = ?, deliveries = deliveries + 1"
                " WHERE fingerprint = ? AND starts_at = ?",
                (at, alert.fingerprint, alert.starts_at),
            )
            duplicates += 1
        if alert.firing:
            conn.execute(
                "UPDATE alerts SET status = 'resolved', ends_at = ? WHERE fingerprint = ?"
                " AND starts_at < ? AND status = 'firing'",
                (alert.starts_at, alert.fingerprint, alert.starts_at),
            )
    return AlertReceipt(accepted, duplicates)


def settle(
    conn: sqlite3.Connection, keys: Sequence[tuple[str, float]], *, at: float, by: str
) -> None:
    conn.executemany(
        "UPDATE alerts SET settled_at = ?, settled_by = ? WHERE fingerprint = ? AND starts_at = ?"
        " AND settled_at IS NULL",
        [(at, by, fingerprint, starts_at) for fingerprint, starts_at in keys],
    )


def firing(rows: Sequence[sqlite3.Row]) -> list[Alert]:
    return [
        Alert(
            fingerprint=row["fingerprint"],
            status=row["status"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            labels=tuple((str(k), str(v)) for k, v in json.loads(row["labels"])),
            annotations=tuple((str(k), str(v)) for k, v in json.loads(row["annotations"])),
            generator_url=row["generator_url"],
        )
        for row in rows
    ]


FIRING_UNSETTLED = (
    "SELECT * FROM alerts WHERE status = 'firing' AND settled_at IS NULL"
    " ORDER BY starts_at, fingerprint"
)
