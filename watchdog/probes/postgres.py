"""The guarded PostgreSQL: can it be reached, and what do the policy's queries say.

Reachability is a real connection and `SELECT 1`, not an open port: a server
that accepts TCP but refuses logins (too many connections, recovery) is down
for every service that needs it. Queries run in a READ ONLY transaction with
the signal's timeout as `statement_timeout`, so a probe can neither write nor
pile up behind a lock. A new connection per observation keeps a restarted
server from leaving the probe holding a dead one.

psycopg (9 MB) is imported by the first observation that has a database to
ask: a daemon without one never loads it.
"""

from __future__ import annotations

from watchdog.model import Observation
from watchdog.policy.schema import PostgresSignal
from watchdog.probes.stamp import Stopwatch

MISSING_URL = (
    "no database configured: set WATCHDOG_DATABASE_URL, e.g. "
    "postgresql://musicdb_user@127.0.0.1:5433/musicdb (the password from PGPASSWORD or the URL)"
)


class PostgresProbe:
    def __init__(self, signal: PostgresSignal, dsn: str | None) -> None:
        self.signal = signal
        self._dsn = dsn

    async def observe(self) -> list[Observation]:
        watch = Stopwatch(self.signal.name)
        if not self._dsn:
            return [watch.stop().failure(MISSING_URL)]
        import psycopg
        from psycopg import sql

        from watchdog.postgres import DatabaseError, connect, scrub, where

        dsn = self._dsn
        try:
            connection = connect(dsn, timeout=self.signal.timeout, read_only=True)
            async with await connection as db, db.transaction():
                milliseconds = int(self.signal.timeout * 1000)
                await db.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(milliseconds))
                )
                query = self.signal.query if self.signal.check == "query" else None
                cursor = await db.execute((query or "SELECT 1").encode())
                row = await cursor.fetchone()
        except (DatabaseError, psycopg.Error) as error:
            text = scrub(str(error).strip(), dsn)
            stamp = watch.stop()
            if self.signal.check == "reachable":
                return [stamp.failure(f"{where(dsn)}: {text}", value=0.0)]
            return [stamp.failure(f"{self.signal.name} query on {where(dsn)}: {text}")]
        stamp = watch.stop()
        if self.signal.check == "reachable":
            return [stamp.reading(1.0, detail=f"{where(dsn)} answers")]
        first = next(iter(row.values()), None) if row else None
        try:
            value = float(first) if first is not None else 0.0
        except (TypeError, ValueError):
            return [stamp.failure(f"{self.signal.name}: the query gave {first!r}, not a number")]
        return [stamp.reading(value, detail=f"{self.signal.name} = {value:g}")]
