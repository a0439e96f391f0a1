"""Alertmanager's alerts in the journal: stored before the webhook is answered.

One row per firing of one alert, keyed by its startsAt and fingerprint, so the
at-least-once deliveries of Alertmanager (repeats, retries, an HA pair sending
twice) land on the same row. The key leads with the time because new alerts
start now: their rows and index entries go to the end of the B-trees, and a
commit writes a few pages whatever the table's size (keyed by fingerprint
first, a random key, a 100-alert delivery dirtied ~100 index pages and cost
twice as much at 200,000 rows). A `resolved` notification closes the row; a
new firing of the same fingerprint (a later startsAt) closes the older firings
the caller still holds as firing, whose resolution may have been lost. A row
is `settled` once an incident that it helped to open has been resolved: that
firing has been handled, and only a new firing (a new startsAt) counts again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic_core import to_json

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
        PRIMARY KEY (starts_at, fingerprint)
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


FiringStarts = dict[str, set[float]]
"""For each fingerprint, the startsAt of its firings held as still firing."""


def record(
    conn: sqlite3.Connection,
    alerts: Sequence[Alert],
    *,
    at: float,
    group_key: str,
    receiver: str,
    firing: FiringStarts,
) -> AlertReceipt:
    """Store one webhook's alerts; call inside a write transaction.

    A handful of statements per delivery, whatever its size: one indexed read of
    the rows these exact (startsAt, fingerprint) already have, then batched
    writes. `firing` is the caller's view of what still fires (the daemon keeps
    it in memory, so finding a fingerprint's older firings needs no index by
    fingerprint); it is updated in place with what this delivery started and
    ended, so the next delivery in the same transaction sees it.
    """
    unique = list({(a.fingerprint, a.starts_at, a.status): a for a in alerts}.values())
    known = _known(conn, {(a.fingerprint, a.starts_at) for a in unique})
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
        for fingerprint, latest in newest.items()
        for starts in sorted(firing.get(fingerprint, ()))
        if starts < latest and known.get((fingerprint, starts)) != "resolved"
    ]
    ended = [(a.fingerprint, a.starts_at) for a in resolutions] + replaced
    for fingerprint, starts in ended:
        firing.get(fingerprint, set()).discard(starts)
    for alert in started:
        firing.setdefault(alert.fingerprint, set()).add(alert.starts_at)
    if inserts:
        conn.executemany(
            "INSERT INTO alerts (fingerprint, starts_at, status, ends_at, labels, annotations,"
            " generator_url, group_key, receiver, first_received_at, last_received_at,"
            " deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            [
                (
                    a.fingerprint,
                    a.starts_at,
                    a.status,
                    a.ends_at,
                    _json(a.labels),
                    _json(a.annotations),
                    a.generator_url,
                    group_key,
                    receiver,
                    at,
                    at,
                )
                for a in inserts
            ],
        )
    if resolutions:
        conn.executemany(
            "UPDATE alerts SET status = 'resolved', ends_at = ?, last_received_at = ?,"
            " deliveries = deliveries + 1 WHERE fingerprint = ? AND starts_at = ?",
            [(a.ends_at, at, a.fingerprint, a.starts_at) for a in resolutions],
        )
    if repeats:
        conn.executemany(
            "UPDATE alerts SET last_received_at = ?, deliveries = deliveries + 1"
            " WHERE fingerprint = ? AND starts_at = ?",
            [(at, a.fingerprint, a.starts_at) for a in repeats],
        )
    if replaced:
        conn.executemany(
            "UPDATE alerts SET status = 'resolved', ends_at = ? WHERE fingerprint = ?"
            " AND starts_at = ?",
            [(newest[fingerprint], fingerprint, starts) for fingerprint, starts in replaced],
        )
    duplicates = len(alerts) - len(inserts) - len(resolutions)
    return AlertReceipt(len(inserts) + len(resolutions), duplicates, tuple(started), tuple(ended))


def _json(pairs: tuple[tuple[str, str], ...]) -> str:
    """Label pairs as JSON text: pydantic-core's encoder, a fifth of json.dumps's cost
    (two per alert, on the webhook's path)."""
    return to_json(pairs).decode()


def _known(
    conn: sqlite3.Connection, keys: Iterable[tuple[str, float]]
) -> dict[tuple[str, float], str]:
    """The status of each of these (fingerprint, startsAt) that has a row: primary-key reads."""
    wanted = list(keys)
    found: dict[tuple[str, float], str] = {}
    for chunk in range(0, len(wanted), 500):  # under SQLite's parameter limit
        batch = wanted[chunk : chunk + 500]
        rows = conn.execute(
            "WITH wanted (fingerprint, starts_at) AS (VALUES "
            + ", ".join(["(?, ?)"] * len(batch))
            + ") SELECT a.fingerprint, a.starts_at, a.status FROM wanted JOIN alerts AS a"
            " ON a.starts_at = wanted.starts_at AND a.fingerprint = wanted.fingerprint",
            [value for key in batch for value in key],
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
