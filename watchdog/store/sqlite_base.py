"""The SQLite journal's core: one connection, its transactions, its schema, shared row helpers.

Durability comes from SQLite itself: WAL mode with `synchronous=FULL`, and every
write method runs in its own `BEGIN IMMEDIATE … COMMIT` before it returns, so a
row is on disk before the daemon acts on it, and a read-then-write (the
from-state of a transition, the attempt number of a step) cannot interleave with
another writer, even one in another process. One connection is shared by every
thread behind a lock, so the asyncio daemon may call in from a worker thread;
each call is a handful of indexed statements.

Each job of the journal (incidents, plans and steps, guards, snapshots and undo,
alerts, the outbox) is a subclass of `SqliteBase` in its own module, and
`watchdog.store.sqlite.SqliteJournal` joins them. They share only what is here:
`_transaction()` (the one place a write commits, and where the crash matrix names
each write after the public method that opened it) and `_read()`, plus the
row helpers every job writes through (`insert_event`, `require_incident`,
`lastrowid`) and the journal's one JSON encoding (`dumps`).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from watchdog.store import crashpoints
from watchdog.store.schema import ensure_schema

BUSY_TIMEOUT_MS = 5000


JOURNAL_MODE = 0o600


def _create_private(path: Path) -> None:
    """Create the journal file readable by its owner only, before SQLite opens it.

    It holds incidents' evidence, step outputs and before-images of configuration rows;
    SQLite gives its -wal and -shm files the mode of the database file, so they are
    private too. An existing journal keeps the mode its operator gave it.
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, JOURNAL_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, JOURNAL_MODE)  # whatever the umask
    finally:
        os.close(descriptor)


class JournalLocked(Exception):
    """Another live daemon holds the journal's lock; the message names its pid."""


class DaemonLock:
    """`journal.db.lock` beside the journal, flock'ed by the one daemon that writes it.

    A second daemon on the same journal would take over the first one's incidents (its
    start-up resumes them as after a crash), so it is refused with the holder's pid.
    The kernel releases a flock when its process dies, SIGKILL included: a lock left by
    a crashed daemon never blocks the restart. Commands (`incidents`, `approve`, ...)
    never take it: they read and write beside a running daemon, as they always did.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.path = journal.with_name(journal.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, JOURNAL_MODE)  # never truncated here
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise JournalLocked(
                f"another watchdog (pid {holder}) is already running on the journal "
                f"{self.journal}; stop it first, or give this one its own --state"
            ) from None
        os.ftruncate(fd, 0)  # ours now: the pid of the previous holder goes
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Unlock (closing the descriptor does); the file stays, naming nobody alive."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def dumps(value: Any) -> str:
    """The one JSON encoding of the journal: sorted keys, anything else as a string."""
    return json.dumps(value, sort_keys=True, default=str)


class SqliteBase:
    """One SQLite file, opened with its schema: the connection every job of the journal shares."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self._crash = crashpoints.CrashPoints.from_environment()  # the crash matrix only
        self._conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,
        )
        try:
            self._conn.row_factory = sqlite3.Row
            self._configure()
            self._create_schema()
        except BaseException:
            self._conn.close()
            raise

    # Connection and transactions ---------------------------------------------

    def _configure(self) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(
                f"journal {self.path}: SQLite would not switch to WAL mode (got {mode!r}); "
                "put the journal on a local filesystem"
            )
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _create_schema(self) -> None:
        with self._transaction() as conn:
            ensure_schema(conn, where=str(self.path))

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"journal {self.path} is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the caller returns."""
        with self._lock:
            conn = self._connection()
            site = crashpoints.write_site() if self._crash else ""
            conn.execute("BEGIN IMMEDIATE")
            changes = conn.total_changes
            try:
                yield conn
                number = 0
                if self._crash and conn.total_changes != changes:
                    number = crashpoints.before_commit(self._crash, site)
                conn.execute("COMMIT")
                if self._crash and number:
                    crashpoints.after_commit(self._crash, site, number)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


# Rows every job writes -------------------------------------------------------------------


def lastrowid(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote, as an int for the records that carry it."""
    row_id = cursor.lastrowid
    if row_id is None:  # only after statements that insert nothing
        raise RuntimeError("SQLite reported no id for an inserted row")
    return row_id


def require_incident(conn: sqlite3.Connection, incident_id: int) -> sqlite3.Row:
    """The incident's row, read inside the caller's transaction; KeyError names a wrong id."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM incidents WHERE id = ?", (incident_id,)
    ).fetchone()
    if row is None:
        raise KeyError(f"no incident with id {incident_id}")
    return row


def insert_event(
    conn: sqlite3.Connection,
    incident_id: int,
    *,
    at: float,
    kind: str,
    summary: str,
    data: dict[str, Any] | None,
) -> int:
    """One timeline event, in the transaction of the change it tells of; return its id."""
    cursor = conn.execute(
        "INSERT INTO events (incident_id, at, kind, summary, data) VALUES (?, ?, ?, ?, ?)",
        (incident_id, at, kind, summary, dumps(data or {})),
    )
    return lastrowid(cursor)


