"""The PostgreSQL journal's core: one connection, its transactions, and a thin SQL adapter.

The journal's jobs (incidents, steps, guards, snapshots, alerts, the outbox, ...) are
written once, as the SQLite mixins, in SQL that is nearly portable. `PgBase` takes the
place of `SqliteBase` under those same mixins (`watchdog.store.pg.PgJournal`), so the
store contract has one implementation of each job, and `_Connection` translates the few
SQLite-isms on the way: `?` placeholders become `%s` (a literal `%` is doubled),
`INSERT OR IGNORE` becomes `INSERT … ON CONFLICT DO NOTHING`, an INSERT into a table
with an identity id gains `RETURNING id` so `cursor.lastrowid` works, and rows answer
to index and column name like `sqlite3.Row`. PostgreSQL text cannot hold a NUL byte,
which SQLite stores: one in a text parameter is written as U+FFFD. JSON columns never
meet it (`json.dumps` escapes it), so only display text (a summary naming a title that
held one) differs.

Transactions. SQLite's `BEGIN IMMEDIATE` makes each write transaction the only writer
of the file, and the mixins rely on it: the from-state of a move, the attempt number
of a step and the budget's count are read and then written in one transaction. Here
each write transaction (READ COMMITTED) first takes `pg_advisory_xact_lock` on a key
derived from the journal's schema: one writer per journal at a time, across processes
(the daemon and `watchdog approve` beside it), released by COMMIT or ROLLBACK. Chosen
over SERIALIZABLE, which would need a retry loop around every method for the
serialization failures it raises, and over row locks (`SELECT … FOR UPDATE`), which
would fork each mixin's SQL per backend; readers never wait. A leader's handle (`fence`)
begins each write transaction with the database's fence check (`watchdog.store.pg_fence`),
under the same lock. The crash matrix (`watchdog.store.crashpoints`) is SQLite's only.

psycopg is imported when a PostgreSQL journal is opened, never before: a daemon on
SQLite loads none of it (tests/unit/test_startup_weight.py).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from watchdog.store import pg_fence, pg_schema
from watchdog.store.pg_stall import WATCH
from watchdog.store.sqlite_base import SqliteBase

if TYPE_CHECKING:
    import sqlite3

    import psycopg

PG_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_SCHEMA = "watchdog"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)
CONNECT_TIMEOUT_S = 5
#: Between attempts to connect again, in the background, to a journal that went away.
RETRY_AFTER_S = 1.0


class JournalUnavailable(RuntimeError):
    """The PostgreSQL journal cannot be reached or logged into; the URL is masked."""


class Fenced(RuntimeError):
    """A write of a leader whose term has ended, refused by the database (pg_fence)."""


#: libpq's TCP settings for every journal connection: a database cut off without a word
#: (a dead host, a dropped route) fails a query within seconds instead of the kernel's
#: ~15 minutes of retransmissions, so a leader cut from its journal notices and steps down.
#: A journal transaction runs its statements back to back in milliseconds. One left open
#: by a client that froze (SIGSTOP) or vanished behind a silent network would hold the
#: journal's write lock, and a take-over waits for that lock: the server ends it instead.
IDLE_IN_TRANSACTION = "SET idle_in_transaction_session_timeout = '3s'"
TCP_SETTINGS: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1,
                "keepalives_count": 2, "tcp_user_timeout": 5000}


def is_pg_url(url: str) -> bool:
    return url.startswith(PG_SCHEMES)


def masked(url: str) -> str:
    """The URL with its password as `***`: how every message names a PostgreSQL journal."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def split_url(url: str) -> tuple[str, str]:
    """The libpq URL without our `schema=` parameter, and the schema it names."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"journal {masked(url)}: schema {schema!r} is not a plain lower-case name "
            "(letters, digits, _)"
        )
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def lock_key(*names: str) -> int:
    """A signed 64-bit advisory-lock key, stable across processes and Python versions."""
    digest = hashlib.sha256("\0".join(names).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def translate(sql: str) -> str:
    """`?` → `%s` outside string literals, a literal `%` doubled for psycopg."""
    out: list[str] = []
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


class PgRow(tuple[Any, ...]):
    """A row read by index or by column name, and `keys()`, as `sqlite3.Row` is."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _param(value: Any) -> Any:
    return value.replace("\0", "\ufffd") if isinstance(value, str) and "\0" in value else value


def _params(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_param(value) for value in values)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, names)


class _Cursor:
    """What the mixins use of a cursor: fetches, `rowcount`, and `lastrowid`."""

    def __init__(self, cursor: psycopg.Cursor[Any], returning: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        if returning:
            row = cursor.fetchone()
            self.lastrowid = None if row is None else int(row[0])

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Connection:
    """The slice of `sqlite3.Connection` the mixins call, over one psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any], id_tables: frozenset[str]) -> None:
        self._conn = conn
        self._id_tables = id_tables

    def _prepare(self, sql: str, *, many: bool) -> tuple[str, bool]:
        text = sql.strip()
        match = _INSERT.match(text)
        returning = False
        if match is not None:
            if match.group(1):  # INSERT OR IGNORE INTO t ... -> INSERT INTO t ... ON CONFLICT
                text = f"INSERT INTO {match.group(2)}{text[match.end():]} ON CONFLICT DO NOTHING"
            if not many and match.group(2) in self._id_tables and "RETURNING" not in text.upper():
                text += " RETURNING id"
                returning = True
        return translate(text), returning

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        text, returning = self._prepare(sql, many=False)
        cursor = self._conn.cursor()
        cursor.execute(text, _params(params) if params else None)
        return _Cursor(cursor, returning)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> _Cursor:
        text, _ = self._prepare(sql, many=True)
        cursor = self._conn.cursor()
        cursor.executemany(text, [_params(row) for row in rows])
        return _Cursor(cursor, False)


class PgBase(SqliteBase):
    """One PostgreSQL schema, opened with its tables: what `SqliteBase` is for a file."""

    def __init__(self, url: str, *, fence: tuple[str, int] | None = None) -> None:
        # not SqliteBase's: there is no file here
        self.url = url
        self.fence: tuple[str, int] | None = None  # opening the schema is never fenced
        #: Why the database last refused this handle's write ("fenced: ..."), if it did.
        self.fenced: str | None = None
        self.where = masked(url)
        self._dsn, self.schema = split_url(url)
        self._lock = threading.Lock()
        self._closed = False
        self._crash = None
        self._write_key = lock_key("watchdog journal", self.schema)
        self._unreachable = ""
        self._fresh: psycopg.Connection[Any] | None = None
        self._reconnecting: threading.Thread | None = None
        self._swap = threading.Lock()
        self._member = WATCH.join(self._dsn, self._fileno)
        self._id_tables = pg_schema.ID_TABLES
        self._pg = self._connect()
        try:
            with self._transaction() as conn:
                pg_schema.ensure_schema(conn, schema=self.schema, where=self.where)
                pg_fence.ensure_fencing(self._pg, self.schema)
        except BaseException:
            self._pg.close()
            raise
        #: (stack, token) on a leader's handle: every write transaction is fenced by it.
        self.fence = fence

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            conn = psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                row_factory=_row_factory, **TCP_SETTINGS,
            )
        except psycopg.Error as error:
            raise JournalUnavailable(
                f"cannot open the journal {self.where}: {str(error).strip()}"
            ) from None
        try:
            # Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database
            # even when the schema exists, and an operator may have made it for us.
            # Sidecars starting together would race in it (IF NOT EXISTS is no lock: one
            # fails on pg_namespace's unique index): the write lock's key, in a transaction.
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            if found.fetchone() is None:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.execute(IDLE_IN_TRANSACTION)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"journal {self.where} is closed")
        if self._pg.closed or self._pg.broken:  # a restarted server, a cut call
            with self._swap:
                fresh, self._fresh = self._fresh, None
            if fresh is None:
                self._reconnect_in_background()
                raise JournalUnavailable(
                    self._unreachable or f"the journal {self.where} is being reconnected")
            self._pg = fresh
        return cast("sqlite3.Connection", _Connection(self._pg, self._id_tables))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, the only writer of this journal while it runs."""
        with self._lock, WATCH.call(self._member, self.where):
            conn = self._connection()
            self._pg.execute("BEGIN")
            try:
                self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
                if self.fence is not None:
                    self._check_fence()
                yield conn
                self._pg.execute("COMMIT")
            except BaseException:
                if not self._pg.closed and not self._pg.broken:
                    self._pg.execute("ROLLBACK")
                raise

    def _check_fence(self) -> None:
        import psycopg

        assert self.fence is not None
        try:
            self._pg.execute("SELECT fence_check(%s, %s)", self.fence)
        except psycopg.Error as error:
            if error.sqlstate != pg_fence.FENCED_SQLSTATE:
                raise
            self.fenced = error.diag.message_primary or str(error).strip()
            raise Fenced(self.fenced) from None

    def _reconnect_in_background(self) -> None:
        """Connect again off the caller's thread: a database that does not answer would
        hold the daemon's event loop for a whole connect timeout on every call. Calls fail
        at once meanwhile; the first one after a connection is made uses it."""
        if self._reconnecting is not None and self._reconnecting.is_alive():
            return

        def attempt() -> None:
            while not self._closed:
                try:
                    made = self._connect()
                except Exception as error:
                    self._unreachable = str(error)
                    time.sleep(RETRY_AFTER_S)
                    continue
                with self._swap:
                    if self._closed:  # closed meanwhile: nobody will use it
                        made.close()
                        return
                    self._fresh = made
                    self._unreachable = ""
                return

        self._reconnecting = threading.Thread(
            target=attempt, name="journal-reconnect", daemon=True)
        self._reconnecting.start()

    def _fileno(self) -> int:
        return self._pg.fileno()

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, WATCH.call(self._member, self.where):
            rows: list[sqlite3.Row] = self._connection().execute(sql, params).fetchall()
            return rows

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                WATCH.leave(self._member)
                self._pg.close()
                with self._swap:
                    if self._fresh is not None:
                        self._fresh.close()
                        self._fresh = None
