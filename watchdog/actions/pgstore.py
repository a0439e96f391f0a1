"""The configuration tables in PostgreSQL, read and restored without collateral damage.

The runbook restores configuration with `TRUNCATE ... CASCADE` and an INSERT
whose columns do not exist; on the real schema that would also wipe
`provider_performance_history` (its foreign keys cascade on delete). Here a
restore is one transaction that upserts every snapshot row by primary key (an
UPDATE never cascades) and removes rows the snapshot does not have only when
nothing references them; a referenced extra row is disabled instead, and the
summary says so. Anything that fails before COMMIT leaves the table exactly as
it was.

Names come from the policy (validated identifiers) or from the catalogue, and
are always composed with `psycopg.sql`; every value is a parameter.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from watchdog.actions.base import ActionFailed
from watchdog.policy.identifiers import split_table
from watchdog.postgres import DatabaseError, connect, jsonable, scrub

JSON_TYPES = ("json", "jsonb")


@dataclass(frozen=True, slots=True)
class TableShape:
    """A table as the catalogue describes it: columns with their types, and its key."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...]
    # One-column foreign keys into this table: ((schema, table), their column, our column).
    referenced_by: tuple[tuple[tuple[str, str], str, str], ...]
    multi_column_references: bool

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(column) for column in self.key)


class PostgresConfigStore:
    def __init__(self, dsn: str, *, timeout: float = 5.0, statement_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._statement_timeout = statement_timeout

    def _table(self, table: str) -> sql.Identifier:
        try:
            return sql.Identifier(*split_table(table))
        except ValueError as error:
            raise ActionFailed(f"table {table!r}: {error}") from None

    async def _connect(self, *, read_only: bool = False) -> psycopg.AsyncConnection[DictRow]:
        try:
            return await connect(self._dsn, timeout=self._timeout, read_only=read_only)
        except DatabaseError as error:
            raise ActionFailed(f"cannot connect to the database: {error}") from None

    def _failed(self, doing: str, error: psycopg.Error) -> ActionFailed:
        return ActionFailed(f"{doing}: {scrub(str(error).strip(), self._dsn)}")

    async def shape(self, connection: psycopg.AsyncConnection[DictRow], table: str) -> TableShape:
        name = ".".join(split_table(table))
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT to_regclass(%s) AS oid", (name,))
            found = await cursor.fetchone()
            if found is None or found["oid"] is None:
                raise ActionFailed(f"table {table} does not exist in the database")
            await cursor.execute(
                "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (name,),
            )
            columns = {str(r["attname"]): str(r["type"]) for r in await cursor.fetchall()}
            await cursor.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY a.attnum",
                (name,),
            )
            key = tuple(str(r["attname"]) for r in await cursor.fetchall())
            await cursor.execute(
                "SELECT n.nspname AS schema, r.relname AS referrer, "
                "array_length(c.conkey, 1) AS width, "
                "(SELECT attname FROM pg_attribute WHERE attrelid = c.conrelid "
                " AND attnum = c.conkey[1]) AS column, "
                "(SELECT attname FROM pg_attribute WHERE attrelid = c.confrelid "
                " AND attnum = c.confkey[1]) AS ours "
                "FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid "
                "JOIN pg_namespace n ON n.oid = r.relnamespace "
                "WHERE c.contype = 'f' AND c.confrelid = %s::regclass",
                (name,),
            )
            references = await cursor.fetchall()
        if not key:
            raise ActionFailed(
                f"table {table} has no primary key: rows cannot be restored one by one"
            )
        single = tuple(
            ((str(r["schema"]), str(r["referrer"])), str(r["column"]), str(r["ours"]))
            for r in references
            if r["width"] == 1
        )
        return TableShape(name, columns, key, single, any(r["width"] != 1 for r in references))

    async def primary_key(self, table: str) -> tuple[str, ...]:
        try:
            async with await self._connect(read_only=True) as connection:
                return (await self.shape(connection, table)).key
        except psycopg.Error as error:
            raise self._failed(f"reading the primary key of {table}", error) from None

    async def read_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row, ordered by primary key, as JSON-able values (what snapshots store)."""
        try:
            async with await self._connect(read_only=True) as connection:
                shape = await self.shape(connection, table)
                query = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
                    self._table(table), sql.SQL(", ").join(map(sql.Identifier, shape.key))
                )
                async with connection.cursor() as cursor:
                    await cursor.execute(query)
                    rows = await cursor.fetchall()
        except psycopg.Error as error:
            raise self._failed(f"reading {table}", error) from None
        return [{k: jsonable(v) for k, v in row.items()} for row in rows]

    async def replace_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> str:
        """Make the table hold exactly `rows`, in one transaction, cascading into nothing."""
        try:
            async with await self._connect() as connection, connection.transaction():
                await self._limit(connection)
                shape = await self.shape(connection, table)
                await self._lock(connection, table)
                ignored = await self._upsert(connection, shape, rows)
                removed, disabled, kept = await self._remove_extras(connection, shape, rows)
        except psycopg.Error as error:
            raise self._failed(
                f"restoring {table} (rolled back, the table is unchanged)", error
            ) from None
        parts = [f"{len(rows)} row(s) of {table} written in one transaction"]
        if removed:
            parts.append(f"{len(removed)} row(s) not in the snapshot deleted {removed}")
        if disabled:
            parts.append(
                f"{len(disabled)} row(s) not in the snapshot disabled, not deleted, because "
                f"other tables reference them {disabled}"
            )
        if kept:
            parts.append(
                f"{len(kept)} referenced row(s) not in the snapshot left as they are {kept}"
            )
        if ignored:
            parts.append(f"snapshot column(s) the table no longer has, ignored: {ignored}")
        return "; ".join(parts)

    async def update_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> str:
        """Write exactly these rows (by primary key), touching no other row."""
        try:
            async with await self._connect() as connection, connection.transaction():
                await self._limit(connection)
                shape = await self.shape(connection, table)
                ignored = await self._upsert(connection, shape, rows)
        except psycopg.Error as error:
            raise self._failed(
                f"updating {table} (rolled back, the table is unchanged)", error
            ) from None
        return f"{len(rows)} row(s) of {table} written" + (
            f"; ignored columns the table does not have: {ignored}" if ignored else ""
        )

    async def copy_csv(self, table: str, path: Path) -> int:
        """COPY the live table to a CSV file (written aside, then renamed); its size in bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".copy-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as handle:
                async with await self._connect(read_only=True) as connection:
                    query = sql.SQL("COPY {} TO STDOUT WITH (FORMAT csv, HEADER)").format(
                        self._table(table)
                    )
                    async with connection.cursor() as cursor, cursor.copy(query) as copy:
                        async for chunk in copy:
                            handle.write(chunk)
                            size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except psycopg.Error as error:
            Path(temporary).unlink(missing_ok=True)
            raise self._failed(f"copying {table} to {path}", error) from None
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return size

    async def _limit(self, connection: psycopg.AsyncConnection[DictRow]) -> None:
        milliseconds = int(self._statement_timeout * 1000)
        await connection.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(milliseconds))
        )
        await connection.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(milliseconds))
        )

    async def _lock(self, connection: psycopg.AsyncConnection[DictRow], table: str) -> None:
        """No writer slips a row in between our upsert and our delete."""
        await connection.execute(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(self._table(table))
        )

    async def _upsert(
        self,
        connection: psycopg.AsyncConnection[DictRow],
        shape: TableShape,
        rows: Sequence[Mapping[str, Any]],
    ) -> list[str]:
        given = sorted({column for row in rows for column in row})
        ignored = [c for c in given if c not in shape.columns]
        columns = [c for c in shape.columns if c in given]
        missing_key = [k for k in shape.key if k not in columns]
        if rows and missing_key:
            raise ActionFailed(
                f"rows for {shape.name} lack its primary key column(s) {missing_key}"
            )
        if not rows:
            return ignored
        values = sql.SQL(", ").join(
            sql.SQL("CAST({} AS {})").format(sql.Placeholder(), sql.SQL(shape.columns[c]))
            for c in columns
        )
        updates = [c for c in columns if c not in shape.key]
        conflict = (
            sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates
                )
            )
            if updates
            else sql.SQL("DO NOTHING")
        )
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            sql.Identifier(*shape.name.split(".")),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            values,
            sql.SQL(", ").join(map(sql.Identifier, shape.key)),
            conflict,
        )
        params = [
            [_parameter(row.get(c), shape.columns[c]) for c in columns] for row in rows
        ]
        async with connection.cursor() as cursor:
            await cursor.executemany(statement, params)
        return ignored

    async def _remove_extras(
        self,
        connection: psycopg.AsyncConnection[DictRow],
        shape: TableShape,
        rows: Sequence[Mapping[str, Any]],
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """Rows the snapshot lacks: deleted if unreferenced, else disabled (or left, named)."""
        wanted = {shape.key_of(row) for row in rows}
        keys = sql.SQL(", ").join(map(sql.Identifier, shape.key))
        async with connection.cursor() as cursor:
            await cursor.execute(
                sql.SQL("SELECT {} FROM {}").format(keys, sql.Identifier(*shape.name.split(".")))
            )
            extras = [
                tuple(r[k] for k in shape.key)
                for r in await cursor.fetchall()
                if tuple(jsonable(r[k]) for k in shape.key) not in wanted
            ]
        removed: list[Any] = []
        disabled: list[Any] = []
        kept: list[Any] = []
        for extra in extras:
            label = extra[0] if len(extra) == 1 else list(extra)
            if await self._referenced(connection, shape, extra):
                if "enabled" in shape.columns:
                    await self._where_key(connection, shape, extra, "UPDATE {} SET enabled = false")
                    disabled.append(jsonable(label))
                else:
                    kept.append(jsonable(label))
            else:
                await self._where_key(connection, shape, extra, "DELETE FROM {}")
                removed.append(jsonable(label))
        return removed, disabled, kept

    async def _referenced(
        self, connection: psycopg.AsyncConnection[DictRow], shape: TableShape, key: tuple[Any, ...]
    ) -> bool:
        if shape.multi_column_references:
            return True  # we do not reason about composite keys: never risk a cascade
        row = dict(zip(shape.key, key, strict=True))
        async with connection.cursor() as cursor:
            for referrer, column, ours in shape.referenced_by:
                if ours not in row:
                    return True
                await cursor.execute(
                    sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} = %s) AS used").format(
                        sql.Identifier(*referrer), sql.Identifier(column)
                    ),
                    (row[ours],),
                )
                found = await cursor.fetchone()
                if found is not None and found["used"]:
                    return True
        return False

    async def _where_key(
        self,
        connection: psycopg.AsyncConnection[DictRow],
        shape: TableShape,
        key: tuple[Any, ...],
        verb: str,
    ) -> None:
        condition = sql.SQL(" AND ").join(
            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in shape.key
        )
        statement = sql.SQL(verb + " WHERE {}").format(
            sql.Identifier(*shape.name.split(".")), condition
        )
        await connection.execute(statement, key)


def _parameter(value: Any, column_type: str) -> Any:
    """A journaled value as a parameter its column's CAST accepts."""
    if column_type in JSON_TYPES and value is not None:
        return json.dumps(value)
    return value
