"""The journal's SQLite schema, and the check that a file speaks our version.

`schema_version` holds one row; a later version adds its migration here, run in
the same transaction that opens the file, keyed on the stored version. A file
written by a newer watchdog is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

from watchdog.store import alerts, daemonstatus, followups, observations, shadow, undo

SCHEMA_VERSION = 5

#: What each version adds to the one before, run in order on an older file (and on
#: a new one, after STATEMENTS create the version 1 tables), in the opening transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        # The rung of the remediation ladder an incident is on, and each step row's
        # rung: a resume continues the right plan, never max(index) over two plans.
        "ALTER TABLE incidents ADD COLUMN rung INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE steps ADD COLUMN rung INTEGER NOT NULL DEFAULT 0",
        # The digest of the plan an approval was given for: it authorises that plan only.
        "ALTER TABLE approvals ADD COLUMN plan_digest TEXT NOT NULL DEFAULT ''",
        # Why a last-known-good snapshot is less than clean (taken while the watchdog
        # had a provider disabled, say): a restore from it says so.
        "ALTER TABLE snapshots ADD COLUMN caveat TEXT NOT NULL DEFAULT ''",
    ),
    3: (
        # Who claimed an outbox row to send it, and until when (the claimer's clock):
        # two daemons on one journal never send one page twice (store/sqlite_outbox.py).
        "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
        "ALTER TABLE outbox ADD COLUMN claimed_until REAL",
    ),
    # The observations that fed decisions, kept compactly for `watchdog replay`
    # (store/observations.py); a new file gains the table here too (it starts at 1).
    4: observations.STATEMENTS,
    # A shadow policy's would-be decisions beside the live ones (store/shadow.py).
    5: shadow.STATEMENTS,
}

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        severity TEXT NOT NULL,
        scenario TEXT NOT NULL,
        subject TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        closed_at REAL
    )""",
    # At most one open incident per key, whatever process writes.
    """CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_key
        ON incidents (key) WHERE closed_at IS NULL""",
    """CREATE TABLE IF NOT EXISTS findings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS findings_incident ON findings (incident_id)",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_incident ON events (incident_id)",
    """CREATE TABLE IF NOT EXISTS plans (
        incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
        at REAL NOT NULL,
        body TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        action TEXT NOT NULL,
        risk TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        output TEXT NOT NULL DEFAULT '',
        idempotent INTEGER NOT NULL,
        UNIQUE (incident_id, idx, attempt)
    )""",
    "CREATE INDEX IF NOT EXISTS steps_status ON steps (status)",
    """CREATE TABLE IF NOT EXISTS approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        person TEXT NOT NULL,
        role TEXT NOT NULL,
        decision TEXT NOT NULL,
        comment TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS approvals_incident ON approvals (incident_id)",
    """CREATE TABLE IF NOT EXISTS actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS actions_at ON actions (at)",
    "CREATE INDEX IF NOT EXISTS actions_target_at ON actions (target, at)",
    """CREATE TABLE IF NOT EXISTS flags (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_name TEXT NOT NULL,
        at REAL NOT NULL,
        checksum TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        rows TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS snapshots_table ON snapshots (table_name, id)",
    # The notifier's outbox: a page is written here before it is sent, and stays
    # 'pending' (with its retry state) until a vendor accepts or refuses it. The
    # body holds no secret: routing keys, API keys and webhook URLs are added at
    # send time. An additive table, so version 1 files simply gain it.
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        channel TEXT NOT NULL,
        event TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_at REAL NOT NULL,
        finished_at REAL,
        last_error TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, next_at)",
    "CREATE INDEX IF NOT EXISTS outbox_incident ON outbox (incident_id, channel, id)",
    *alerts.STATEMENTS,
    # Undo records written ahead of the change they can undo (see store/undo.py).
    # An additive table: older files simply gain it.
    *undo.STATEMENTS,
    # Follow-ups owed after an incident that acted (see store/followups.py). Additive.
    *followups.STATEMENTS,
    # The daemon's status row and heartbeat (see store/daemonstatus.py). Additive.
    *daemonstatus.STATEMENTS,
)


def ensure_schema(conn: sqlite3.Connection, *, where: str) -> None:
    """Create what is missing and record the version; call inside a write transaction."""
    for statement in STATEMENTS:
        conn.execute(statement)
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    if version is not None and version > SCHEMA_VERSION:
        raise RuntimeError(
            f"journal {where} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this watchdog understands; upgrade watchdog"
        )
    stored = 1 if version is None else int(version)
    for target in range(stored + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[target]:
            conn.execute(statement)
    if version is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    elif stored < SCHEMA_VERSION:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
