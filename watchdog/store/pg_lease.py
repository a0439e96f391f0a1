"""One leader per stack on a shared PostgreSQL journal: a lease row with a fencing token.

Chosen over a session advisory lock: a leader that is paused (SIGSTOP, a long GC, a
frozen VM) keeps its TCP session, and with it an advisory lock, for as long as the
kernel keeps the socket: nobody could take over, and when it woke it would act as if
nothing happened. A lease row expires on the database's clock (so the hosts' clocks
never matter) whatever the old leader's state, and its token, raised at every change
of hands, lets the database refuse the woken leader's writes (`watchdog.store.pg_fence`).

`Lease.claim()` is called by every instance every `seconds / 4`: the leader renews its
term, a follower takes the lease once it is released (a clean hand-over) or expired
(an unclean one: the old leader died, froze or lost the database). A take-over raises
the token under the journal's write lock, after any write of the old term commits and
before any later one can. Each term is a row of `leadership_log`, saying whether the
hand-over was clean. Its own connection, so a busy journal never delays a renewal.

A take-over waits at most LOCK_WAIT_MS for that lock. A leader frozen between two
statements of a write is ended by the server (idle_in_transaction_session_timeout), but
one frozen in the middle of a pipeline (psycopg's `executemany` sends many statements
before one Sync) leaves its session `active`, reading the rest, which no server timeout
reaches: it would hold the lock for as long as the process stays frozen. So when the
wait runs out, the follower ends (`pg_terminate_backend`) every session that has held
the write lock's transaction open for over STALE_WRITE_S, none of which can be a live
journal write (each runs its statements back to back in milliseconds), and takes the
lease at once. The ended transaction rolls back; the woken leader finds its connection
gone and, connected again, its writes fenced.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from watchdog.store.pg_base import (
    CONNECT_TIMEOUT_S,
    IDLE_IN_TRANSACTION,
    TCP_SETTINGS,
    JournalUnavailable,
    lock_key,
    masked,
    split_url,
)
from watchdog.store.pg_stall import WATCH

if TYPE_CHECKING:
    import psycopg

DEFAULT_LEASE_SECONDS = 4.0
_NOW = "extract(epoch FROM clock_timestamp())"
LOCK_WAIT_MS = 1000  # a take-over's wait for the journal's write lock
STALE_WRITE_S = 1.0  # a write transaction open this long holds the lock for a frozen client
log = structlog.get_logger("watchdog.lease")


@dataclass(frozen=True, slots=True)
class Term:
    """Who leads the stack as the database saw it at the last claim, and what it means here."""

    leading: bool  # this instance holds the lease
    token: int | None  # the current term's fencing token (None: nobody ever led)
    instance: str | None  # the instance that leads (None: nobody, or the lease lapsed)
    since: float | None  # when that term began (database clock, epoch seconds)
    began: bool = False  # this claim began this instance's term
    clean: bool = True  # for a term that began: the previous one was handed over
    previous: str | None = None  # for a term that began: who led before


def default_instance() -> str:
    return socket.gethostname() or "watchdog"


class Lease:
    """This instance's claim on the leadership of `stack` in the journal at `url`."""

    def __init__(
        self, url: str, stack: str, instance: str, *, seconds: float = DEFAULT_LEASE_SECONDS
    ) -> None:
        self.url = url
        self.stack = stack
        self.instance = instance
        #: Unique per process: a restarted sidecar of the same name begins a new term.
        self.holder = f"{instance}#{secrets.token_hex(4)}"
        self.seconds = seconds
        self._dsn, self.schema = split_url(url)
        self._write_key = lock_key("watchdog journal", self.schema)
        self._conn: psycopg.Connection[Any] | None = None
        self.token: int | None = None
        self._member = WATCH.join(self._dsn, self._fileno)

    def _fileno(self) -> int:
        if self._conn is None:
            raise ValueError("no connection")
        return self._conn.fileno()

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                conn = psycopg.connect(
                    self._dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                    **TCP_SETTINGS,
                )
            except psycopg.Error as error:
                raise JournalUnavailable(
                    f"cannot reach the journal {masked(self.url)}: {str(error).strip()}"
                ) from None
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.execute(IDLE_IN_TRANSACTION)
            self._conn = conn
        return self._conn

    def refuse_other_stacks(self) -> None:
        """A schema is one stack's journal: its incidents, steps and pages carry no stack.
        Another stack already led from this schema is refused, naming it (ValueError)."""
        import psycopg

        try:
            rows = self._connection().execute(
                "SELECT DISTINCT stack FROM leadership WHERE stack <> %s ORDER BY stack",
                (self.stack,),
            ).fetchall()
        except psycopg.Error as error:
            raise JournalUnavailable(
                f"cannot read the journal {masked(self.url)}: {str(error).strip()}"
            ) from None
        if rows:
            others = ", ".join(repr(row[0]) for row in rows)
            raise ValueError(
                f"the journal {masked(self.url)} holds stack {others}; stack {self.stack!r} "
                "needs a ?schema= of its own (stacks may share a database, never a schema)"
            )

    def claim(self) -> Term:
        """Renew this instance's term, or take the lease if it is free; say who leads."""
        import psycopg

        conn = self._connection()
        try:
            with WATCH.call(self._member, f"lease of {self.stack}"):
                if self.token is not None and (term := self._renew(conn)) is not None:
                    return term
                self.token = None
                try:
                    with conn.transaction():
                        return self._take_or_follow(conn)
                except psycopg.errors.LockNotAvailable:
                    self._end_stale_writers(conn)
                    with conn.transaction():
                        return self._take_or_follow(conn)
        except psycopg.Error as error:
            conn.close()
            raise JournalUnavailable(
                f"lease of stack {self.stack!r} in {masked(self.url)}: {str(error).strip()}"
            ) from None

    def _renew(self, conn: psycopg.Connection[Any]) -> Term | None:
        row = conn.execute(
            f"UPDATE leadership SET renewed_at = {_NOW}, expires_at = {_NOW} + %s"
            f" WHERE stack = %s AND holder = %s AND token = %s AND NOT released"
            f" AND expires_at > {_NOW} RETURNING token, acquired_at",
            (self.seconds, self.stack, self.holder, self.token),
        ).fetchone()
        if row is None:
            return None
        return Term(True, int(row[0]), self.instance, float(row[1]))

    def _take_or_follow(self, conn: psycopg.Connection[Any]) -> Term:
        held = conn.execute(
            f"SELECT holder, instance, token, acquired_at, released, expires_at <= {_NOW}"
            " FROM leadership WHERE stack = %s FOR UPDATE",
            (self.stack,),
        ).fetchone()
        if held is not None and not held[4] and not held[5]:
            return Term(False, int(held[2]), str(held[1]), float(held[3]))
        # Free: every write of the old term commits before the token rises.
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_key,))
        token = 1 if held is None else int(held[2]) + 1
        previous = None if held is None else str(held[1])
        # Its own lapsed lease (the journal was away a while) is no hand-over to page:
        # the database's absence is an incident of its own.
        clean = held is None or bool(held[4]) or held[0] == self.holder
        row = conn.execute(
            "INSERT INTO leadership (stack, holder, instance, token, acquired_at, renewed_at,"
            f" expires_at, released) VALUES (%s, %s, %s, %s, {_NOW}, {_NOW}, {_NOW} + %s, false)"
            " ON CONFLICT (stack) DO UPDATE SET holder = EXCLUDED.holder,"
            " instance = EXCLUDED.instance, token = EXCLUDED.token,"
            " acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at,"
            " expires_at = EXCLUDED.expires_at, released = false RETURNING acquired_at",
            (self.stack, self.holder, self.instance, token, self.seconds),
        ).fetchone()
        assert row is not None
        since = float(row[0])
        reason = (
            "first leader of this journal" if held is None
            else f"{previous} handed over" if held[4]
            else "its own lease lapsed while the journal was away" if clean
            else f"{previous}'s lease expired without a hand-over"
        )
        conn.execute(
            "INSERT INTO leadership_log (stack, at, token, instance, holder, previous_instance,"
            " clean, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (self.stack, since, token, self.instance, self.holder, previous, clean, reason),
        )
        self.token = token
        return Term(True, token, self.instance, since, began=True, clean=clean, previous=previous)

    def _end_stale_writers(self, conn: psycopg.Connection[Any]) -> None:
        """End the sessions holding the journal's write lock in a transaction open for over
        STALE_WRITE_S: a leader frozen mid-pipeline (module docstring)."""
        key = self._write_key & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks splits it into two oids
        ended = conn.execute(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.state,"
            " extract(epoch FROM clock_timestamp() - a.xact_start), pg_terminate_backend(a.pid)"
            " FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = %s::oid AND l.objid = %s::oid AND a.pid <> pg_backend_pid()"
            f" AND a.xact_start < clock_timestamp() - interval '{STALE_WRITE_S} s'",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchall()
        for pid, application, address, state, seconds, done in ended:
            log.warning(
                "stale_writer_ended", stack=self.stack, instance=self.instance, pid=pid,
                application=application, address=address, state=state,
                held_seconds=round(float(seconds), 1), ended=bool(done),
                reason="it held the journal's write lock past the lease; its client is frozen "
                "or gone",
            )

    def release(self) -> None:
        """Hand the lease over at a clean stop: a follower takes it at its next claim."""
        if self.token is None:
            return
        try:
            conn = self._connection()
            with WATCH.call(self._member, f"lease of {self.stack}"):
                conn.execute(
                    f"UPDATE leadership SET released = true, expires_at = {_NOW}"
                    " WHERE stack = %s AND holder = %s AND token = %s",
                    (self.stack, self.holder, self.token),
                )
        finally:
            self.token = None

    def close(self) -> None:
        WATCH.leave(self._member)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
