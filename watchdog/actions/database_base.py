"""What every database step shares: the target, its timeouts, connections and tools.

`DatabaseActions` (in `database.py`) is made of one class per job, each built on
this one: backups and dumps, migrations, integrity checks, and the restore.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from watchdog.actions.base import ActionFailed
from watchdog.actions.database_dumps import epoch
from watchdog.actions.database_words import error_text
from watchdog.actions.pgtools import PgTarget, PgTools
from watchdog.postgres import DatabaseError, connect


class DatabaseBase:
    """The database `dsn` names, and how long any step may wait on it."""

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        tools: PgTools | None = None,
        connect_timeout: float = 5.0,
        lock_timeout: float = 30.0,
        statement_timeout: float = 30.0,
        migrations_table: str = "public.schema_migrations",
        migrations_dir: str | Path | None = None,
    ) -> None:
        """`migrations_dir`: the policy's `stack.migrations_dir`, the one folder down files
        run from (relative: to the step's `base_dir`, else the working directory)."""
        self._dsn = dsn
        self._target = PgTarget.from_dsn(dsn)
        self._clock = clock
        self._tools = tools
        self._connect_timeout = connect_timeout
        self._lock_timeout = lock_timeout
        self._statement_timeout = statement_timeout
        schema, _, table = migrations_table.rpartition(".")
        self._migrations_schema = schema or None
        self._migrations_table = table
        self._migrations_dir = migrations_dir


    def _migrations_key(self) -> tuple[str, str]:
        return (self._migrations_schema or "public", self._migrations_table)

    def _migrations_identifier(self) -> sql.Identifier:
        if self._migrations_schema:
            return sql.Identifier(self._migrations_schema, self._migrations_table)
        return sql.Identifier(self._migrations_table)

    def _migrations_name(self) -> str:
        schema = f"{self._migrations_schema}." if self._migrations_schema else ""
        return schema + self._migrations_table

    async def _applied_migrations(self) -> list[tuple[str, float | None]]:
        """schema_migrations' (version, applied_at) from the live database."""
        query = sql.SQL("SELECT version::text AS version, applied_at FROM {}").format(
            self._migrations_identifier()
        )
        try:
            async with self._connection(read_only=True) as conn, conn.transaction():
                cursor = await conn.execute(query)
                rows = await cursor.fetchall()
        except psycopg.Error as error:
            raise ActionFailed(
                f"cannot read {self._migrations_name()}(version, applied_at) in "
                f"{self._target.where}: "
                f"{self._target.scrub(error_text(error))}"
            ) from None
        return [(str(row["version"]), epoch(row["applied_at"])) for row in rows]


    # ------------------------------------------------------------ plumbing

    @contextlib.asynccontextmanager
    async def _connection(
        self, *, read_only: bool = False, autocommit: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
        try:
            conn = await connect(self._dsn, timeout=self._connect_timeout, read_only=read_only)
        except DatabaseError as error:
            raise ActionFailed(f"cannot connect to {self._target.where}: {error}") from None
        try:
            if autocommit:
                await conn.set_autocommit(True)
            yield conn
        finally:
            await conn.close()

    def _located(self) -> PgTools:
        if self._tools is None:
            self._tools = PgTools.locate()
        return self._tools


    def _stamp(self) -> str:
        return time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
