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
class AlertDelivery:
    """One webhook's alerts, as Alertmanager's group sent them."""

    alerts: tuple[Alert, ...]
    group_key: str
    receiver: str


@dataclass(frozen=True, slots=True)
class AlertReceipt:
    """What a delivery changed: alerts new to the journal (or newly resolved), and repeats.

    `started` are the firings new to the journal and `ended` the (fingerprint,
    startsAt) of firings that stopped (resolved, or replaced by a newer firing),
    so a reader can keep its view of what fires up to date without reading back
    every firing alert after each delivery.
    """

    accepted: int
    duplicates: int
    started: tuple[Alert, ...] = ()
    ended: tuple[tuple[str, float], ...] = ()


def record(
    conn: sqlite3.Connection,
    alerts: Sequence[Alert],
    *,
    at: float,
    group_key: str,
    receiver: str,
) -> AlertReceipt:
    """Store one webhook's alerts; call inside a write transaction.

    A handful of statements per delivery, whatever its size: one indexed read of
    every firing already known for these fingerprints, then batched writes.
    """
    unique = list({(a.fingerprint, a.starts_at, a.status): a for a in alerts}.values())
    known = _known(conn, sorted({a.fingerprint for a in unique}))
    inserts: list[Alert] = []
    resolutions: list[Alert] = []
    repeats: list[Alert] = []
    for alert in unique:
        key = (alert.fingerprint, alert.starts_at)
        status = known.get(key)
        if status is None:
            inserts.append(alert)
            known[key] = alert.status
        elif status == "firing" and not alert.firing:
            resolutions.append(alert)
            known[key] = "resolved"
        else:  # the same news again, or a late firing after its resolution
            repeats.append(alert)
    # A new firing of a fingerprint ends its older firings, whose `resolved` never came.
    started = [a for a in inserts if a.firing]
    newest: dict[str, float] = {}
    for alert in started:
        newest[alert.fingerprint] = max(alert.starts_at, newest.get(alert.fingerprint, 0.0))
    replaced = [
        (fingerprint, starts)
        for (fingerprint, starts), status in known.items()
        if status == "firing" and starts < newest.get(fingerprint, float("-inf"))
    ]
    conn.executemany(
        "INSERT INTO alerts (fingerprint, starts_at, status, ends_at, labels, annotations,"
        " generator_url, group_key, receiver, first_received_at, last_received_at,"
        " deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        [
            (
                a.fingerprint, a.starts_at, a.status, a.ends_at, json.dumps(a.labels),
                json.dumps(a.annotations), a.generator_url, group_key, receiver, at, at,
            )
            for a in inserts
        ],
    )
    conn.executemany(
        "UPDATE alerts SET status = 'resolved', ends_at = ?, last_received_at = ?,"
        " deliveries = deliveries + 1 WHERE fingerprint = ? AND starts_at = ?",
        [(a.ends_at, at, a.fingerprint, a.starts_at) for a in resolutions],
    )
    conn.executemany(
        "UPDATE alerts SET last_received_at = ?, deliveries = deliveries + 1"
        " WHERE fingerprint = ? AND starts_at = ?",
        [(at, a.fingerprint, a.starts_at) for a in repeats],
    )
    conn.executemany(
        "UPDATE alerts SET status = 'resolved', ends_at = ? WHERE fingerprint = ?"
        " AND starts_at = ?",
        [(newest[fingerprint], fingerprint, starts) for fingerprint, starts in replaced],
    )
    ended = [(a.fingerprint, a.starts_at) for a in resolutions] + replaced
    duplicates = len(alerts) - len(inserts) - len(resolutions)
    return AlertReceipt(len(inserts) + len(resolutions), duplicates, tuple(started), tuple(ended))


def _known(conn: sqlite3.Connection, fingerprints: list[str]) -> dict[tuple[str, float], str]:
    """Every stored firing of these fingerprints and its status (the primary key's prefix)."""
    found: dict[tuple[str, float], str] = {}
    for chunk in range(0, len(fingerprints), 500):  # under SQLite's parameter limit
        batch = fingerprints[chunk : chunk + 500]
        rows = conn.execute(
            "SELECT fingerprint, starts_at, status FROM alerts"
            f" WHERE fingerprint IN ({', '.join(['?'] * len(batch))})",
            batch,
        ).fetchall()
        found.update({(r["fingerprint"], r["starts_at"]): r["status"] for r in rows})
    return found


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
