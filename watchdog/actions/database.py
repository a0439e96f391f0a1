"""The runbook's scenario 2 against the real database: dump, restore, migrate down, verify.

Each method is a step handler (`database.dump`, `database.restore`,
`migrations.down`, `database.integrity`, `database.backup`) and each refuses before
it changes anything when it can tell it would not end well:

- a restore checks its backup first (there, readable, a complete gzip of a complete
  plain pg_dump, not older than the policy allows) and says what it will cost: the
  data written since the backup. It then replaces the schemas in ONE transaction
  (`BEGIN`, the drop, the dump, `COMMIT`, fed to `psql` on stdin with
  ON_ERROR_STOP): an error, a lock held by another session (lock_timeout), a
  truncated file or the watchdog dying mid-way all leave the database exactly as
  it was. psql's `--single-transaction` is not used on purpose: at an end of input
  it COMMITs whatever it has read, so a feeder that dies would commit half a restore;
  with an explicit BEGIN, an early end of input is a rollback.
- down migrations are worked out by the pure `plan_down` over the whole chain, so
  a migration without a down file or an ambiguous version stops the rollback
  before the first file runs; then each down file runs in its own transaction
  together with the removal of its schema_migrations row.

The password reaches `psql`/`pg_dump` only through PGPASSWORD (see `pgtools`), and
every message is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import re
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.errors import Diagnostic
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.pgtools import PgTarget, PgTools, run_tool, summarize
from watchdog.model import Step
from watchdog.policy.durations import parse_duration
from watchdog.policy.migrations import DownPlan, Refusal, plan_down
from watchdog.policy.rules import COMPARE
from watchdog.postgres import DatabaseError, connect

DEFAULT_PATTERN = "musicdb_backup_*.sql.gz"
BACKUP_PREFIX = "musicdb_backup_"
_CHUNK = 1 << 20
_HEADER = b"-- PostgreSQL database dump"
_TRAILER = b"-- PostgreSQL database dump complete"
_STAMP = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})[-_T]?(\d{2}):?(\d{2}):?(\d{2})")
_COPY = re.compile(rb"^COPY (\S+) \((.*)\) FROM stdin;\s*$")
_CREATE_SCHEMA = re.compile(rb'^CREATE SCHEMA ((?:"(?:[^"]|"")+")|[A-Za-z_][A-Za-z0-9_$]*);\s*$')
_DUMP_TXN = re.compile(
    rb"^(BEGIN|COMMIT|ROLLBACK|ABORT|START TRANSACTION)( WORK| TRANSACTION)?;$", re.IGNORECASE
)
_DUMP_DOLLAR = re.compile(rb"\$[A-Za-z_][A-Za-z_0-9]*\$|\$\$")
_SCRIPT_TXN = re.compile(
    r"^\s*(BEGIN(\s+(WORK|TRANSACTION))?|START\s+TRANSACTION|COMMIT(\s+(WORK|TRANSACTION))?)"
    r"\s*;\s*(--.*)?$",
    re.IGNORECASE,
)
_DOLLAR = re.compile(r"\$[A-Za-z_][A-Za-z_0-9]*\$|\$\$")
_OPS = COMPARE
_LOST = re.compile(
    r"server closed the connection|connection to server was lost|terminating connection"
)
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True, slots=True)
class Backup:
    """One backup file; `taken_at` comes from its name (local time), else its mtime."""

    path: Path
    taken_at: float
    age: float
    size: int
    dated_by: str = "name"


@dataclass(frozen=True, slots=True)
class DumpScan:
    """What a full read of a plain dump found.

    `migrations` holds the rows of its schema_migrations COPY block as
    (version, applied_at in Unix seconds), or is None when the dump has no such block.
    `schemas` are the schemas it creates, as written (quoted if pg_dump quoted them).
    """

    sql_bytes: int
    compressed: bool
    schemas: tuple[str, ...]
    migrations: tuple[tuple[str, float | None], ...] | None


class DumpError(Exception):
    """A dump that must not be restored; the message says why."""


@dataclass(frozen=True, slots=True)
class _Checked:
    backup: Backup
    scan: DumpScan
    lines: list[str]
    down: DownPlan | None


class DatabaseActions:
    """The database steps of scenario 2, against the database `dsn` names."""

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
    ) -> None:
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

    # ------------------------------------------------------------ backups

    def newest_backup(self, backup_dir: str | Path, pattern: str = DEFAULT_PATTERN) -> Backup:
        """The most recently taken backup in `backup_dir`; ActionFailed if there is none."""
        folder = Path(backup_dir)
        if not folder.is_dir():
            raise ActionFailed(f"backup folder {folder} does not exist or is not a folder")
        found = [self._describe(path) for path in folder.glob(pattern) if path.is_file()]
        if not found:
            raise ActionFailed(f"no backup matching {pattern} in {folder}")
        return max(found, key=lambda b: (b.taken_at, b.path.name))

    def _describe(self, path: Path) -> Backup:
        try:
            stat = path.stat()
        except OSError as error:
            raise ActionFailed(f"backup {path} cannot be read: {error.strerror}") from None
        taken_at, dated_by = _taken_at_from_name(path.name), "name"
        if taken_at is None:
            taken_at, dated_by = stat.st_mtime, "mtime"
        return Backup(path, taken_at, self._clock() - taken_at, stat.st_size, dated_by)

    def _chosen_backup(self, params: Mapping[str, Any]) -> tuple[Backup, str]:
        backup_dir = Path(str(params["backup_dir"]))
        explicit = params.get("backup")
        if explicit:
            path = Path(str(explicit))
            path = path if path.is_absolute() else backup_dir / path
            if not path.is_file():
                raise ActionFailed(f"backup {path} does not exist")
            return self._describe(path), "backup"
        pattern = str(params.get("pattern") or DEFAULT_PATTERN)
        return self.newest_backup(backup_dir, pattern), "newest backup"

    # ------------------------------------------------------------ preflight

    async def preflight(self, step: Step) -> list[str]:
        """Refuse a `database.restore` that cannot end well; else the impact lines for the page."""
        return (await self._preflight(step.param_map())).lines

    async def _preflight(self, params: Mapping[str, Any]) -> _Checked:
        backup, called = self._chosen_backup(params)
        name = backup.path.name
        try:
            with backup.path.open("rb"):
                pass
        except OSError as error:
            raise ActionFailed(
                f"{called} {backup.path} is not readable: {error.strerror}"
            ) from None
        limit = params.get("max_backup_age")
        if limit is not None:
            allowed = parse_duration(limit)
            if backup.age > allowed:
                dated = "" if backup.dated_by == "name" else " (dated by its mtime)"
                raise ActionFailed(
                    f"{called} {name} is {age_words(backup.age)} old{dated}; "
                    f"the policy allows {age_words(allowed)}"
                )
        try:
            scan = await asyncio.to_thread(scan_dump, backup.path, self._migrations_key())
        except DumpError as error:
            raise ActionFailed(f"{called} {name} {error}: refusing to restore it") from None

        since = _local(backup.taken_at)
        dated = "" if backup.dated_by == "name" else ", dated by its mtime"
        size = (
            f"{human_bytes(backup.size)} compressed, {human_bytes(scan.sql_bytes)} of SQL"
            if scan.compressed
            else f"{human_bytes(scan.sql_bytes)} of SQL"
        )
        schemas = ", ".join(_schemas_to_replace(scan))
        lines = [
            f"backup {name} in {backup.path.parent}, taken {since} "
            f"({age_words(backup.age)} ago{dated})",
            f"data written since {since} ({age_words(backup.age)}) will be lost",
            f"size: {size}",
            f"schema(s) {schemas} of {self._target.where} are replaced in one transaction; "
            "a failure leaves the database as it was",
        ]
        down: DownPlan | None = None
        if params.get("migration_dirs"):
            files = _migration_files(params)
            if scan.migrations is not None:
                applied, source = list(scan.migrations), "in the backup"
            else:
                applied = await self._applied_migrations()
                source = "in the live database (the backup has no schema_migrations data)"
            result = plan_down(files, applied, _optional_str(params.get("target_version")))
            if isinstance(result, Refusal):
                raise ActionFailed(
                    f"after the restore, {result.reason} (schema_migrations {source})"
                )
            down = result
            if result.steps:
                lines.append(
                    "then down migrations, newest first: "
                    + ", ".join(result.labels)
                    + f" (schema_migrations {source})"
                )
            else:
                lines.append(f"no down migration to apply after it: {result.reason}")
        return _Checked(backup, scan, lines, down)

    def _migrations_key(self) -> tuple[str, str]:
        return (self._migrations_schema or "public", self._migrations_table)

    # ------------------------------------------------------------ restore

    async def restore(self, step: Step) -> ActionOutcome:
        """Replace the database with a backup, atomically, after the preflight passes."""
        params = step.param_map()
        checked = await self._preflight(params)
        backup, scan = checked.backup, checked.scan
        prelude = self._prelude(scan)
        tools = self._located()
        options = f"-c lock_timeout={_ms(self._lock_timeout)} -c client_min_messages=warning"
        started = time.perf_counter()
        result = await run_tool(
            [tools.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", *self._target.args()],
            self._target.env(options=options),
            feed=_restore_feed(backup.path, prelude),
        )
        seconds = time.perf_counter() - started
        expected = len(prelude) + scan.sql_bytes + len(_COMMIT)
        if result.returncode != 0 or result.fed != expected:
            text = self._target.scrub(summarize(result.stderr))
            hint = ""
            if "lock timeout" in result.stderr:
                hint = (
                    f"; another session holds a lock (lock_timeout "
                    f"{age_words(self._lock_timeout)}): stop the services using the database "
                    "first (runbook step 1)"
                )
            if result.fed == expected and _LOST.search(result.stderr):
                raise ActionFailed(
                    f"restore of {backup.path.name} into {self._target.where}: psql lost the "
                    "connection after the whole dump and its COMMIT were sent, so whether the "
                    f"restore committed is unknown; check the database before going on: {text}"
                )
            raise ActionFailed(
                f"restore of {backup.path.name} into {self._target.where} failed and was rolled "
                f"back, the database is as it was: psql exited {result.returncode} after "
                f"{human_bytes(result.fed)} of {human_bytes(expected)}: {text}{hint}"
            )
        since = _local(backup.taken_at)
        output = (
            f"restored {backup.path} ({human_bytes(scan.sql_bytes)} of SQL) into "
            f"{self._target.where} in {seconds:.1f} s, in one transaction; "
            f"data written since {since} ({age_words(backup.age)}) is gone"
        )
        return ActionOutcome(
            True,
            output,
            {
                "backup": str(backup.path),
                "taken_at": backup.taken_at,
                "bytes": scan.sql_bytes,
                "seconds": round(seconds, 3),
                "impact": checked.lines,
                "down_migrations": list(checked.down.labels) if checked.down else [],
            },
        )

    def _prelude(self, scan: DumpScan) -> bytes:
        """BEGIN, then drop what the dump recreates; public again, owned by the DSN's user."""
        statements = ["BEGIN;"]
        created = set(scan.schemas)
        for schema in _schemas_to_replace(scan):
            statements.append(f"DROP SCHEMA IF EXISTS {schema} CASCADE;")
        if "public" not in created:
            owner = (
                sql.Identifier(self._target.user).as_string()
                if self._target.user
                else "CURRENT_USER"
            )
            statements.append(f"CREATE SCHEMA public AUTHORIZATION {owner};")
            # What a new database's public schema grants; the dump revokes it if it had.
            statements.append("GRANT USAGE ON SCHEMA public TO PUBLIC;")
        return ("\n".join(statements) + "\n").encode()

    # ------------------------------------------------------------ dump and backup

    async def dump(self, step: Step) -> ActionOutcome:
        """pg_dump the current (maybe corrupted) state, for forensics, before it is replaced."""
        folder = Path(str(step.param_map()["dir"]))
        path = _unique(folder / f"corrupted-state-{self._stamp()}.sql")
        seconds = await self._pg_dump(path, compress=False)
        size = path.stat().st_size
        return ActionOutcome(
            True,
            f"dumped the current state of {self._target.where} to {path} "
            f"({human_bytes(size)}) in {seconds:.1f} s, for forensics",
            {"file": str(path), "bytes": size},
        )

    async def backup(self, step: Step) -> ActionOutcome:
        """A fresh gzip'd plain pg_dump named like the scheduled ones, checked before it counts."""
        folder = Path(str(step.param_map()["backup_dir"]))
        path = _unique(folder / f"{BACKUP_PREFIX}{self._stamp()}.sql.gz")
        seconds = await self._pg_dump(path, compress=True)
        size = path.stat().st_size
        return ActionOutcome(
            True,
            f"backed up {self._target.where} to {path} ({human_bytes(size)}) in {seconds:.1f} s; "
            "verified: a complete gzip of a complete dump",
            {"file": str(path), "bytes": size},
        )

    async def _pg_dump(self, path: Path, *, compress: bool) -> float:
        """pg_dump to a hidden temporary name, check, fsync, rename: never half a file."""
        tools = self._located()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ActionFailed(f"cannot create {path.parent}: {error.strerror}") from None
        temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
        argv = [
            tools.pg_dump,
            *self._target.args(),
            f"--lock-wait-timeout={_ms(self._lock_timeout)}",
            "-f",
            str(temporary),
        ]
        if compress:
            argv += ["-Z", "6"]
        started = time.perf_counter()
        try:
            result = await run_tool(argv, self._target.env())
            if result.returncode != 0:
                raise ActionFailed(
                    f"pg_dump of {self._target.where} failed (exit {result.returncode}): "
                    f"{self._target.scrub(summarize(result.stderr))}"
                )
            if compress:
                try:
                    await asyncio.to_thread(scan_dump, temporary, self._migrations_key())
                except DumpError as error:
                    raise ActionFailed(f"the new backup {error}; it was discarded") from None
            await asyncio.to_thread(_fsync_and_rename, temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return time.perf_counter() - started

    def _stamp(self) -> str:
        return time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))

    # ------------------------------------------------------------ migrations

    async def migrations_down(self, step: Step) -> ActionOutcome:
        """Apply down migrations newest first, each with its row removal in one transaction."""
        params = step.param_map()
        files = _migration_files(params)
        applied = await self._applied_migrations()
        result = plan_down(files, applied, _optional_str(params.get("target_version")))
        if isinstance(result, Refusal):
            raise ActionFailed(f"{result.reason}; nothing was changed")
        if not result.steps:
            return ActionOutcome(True, result.reason, {"applied": []})
        base = _base_dir(params)
        scripts = [
            (version, path, label, _down_script(_resolve(base, path)))
            for (version, path), label in zip(result.steps, result.labels, strict=True)
        ]
        table = self._migrations_identifier()
        delete = sql.SQL("DELETE FROM {} WHERE version = %s").format(table)
        done: list[str] = []
        notices: list[str] = []
        for index, (version, path, label, script) in enumerate(scripts):
            try:
                async with self._connection(autocommit=True) as conn:
                    conn.add_notice_handler(_collect_notice(notices))
                    await conn.execute(
                        "SELECT set_config('lock_timeout', %s, false)",
                        (_ms(self._lock_timeout),),
                    )
                    async with conn.transaction():
                        # First, under the session's own search_path: the file may change it.
                        await conn.execute(delete, (version,))
                        await conn.execute(script.encode())
                        if conn.info.transaction_status != TransactionStatus.INTRANS:
                            raise _EndedTransaction(
                                f"{path} ended the transaction itself (COMMIT or ROLLBACK "
                                "inside the file): what it did before is committed"
                            )
            except (psycopg.Error, _EndedTransaction, ActionFailed) as error:
                rest = [label for _, _, label, _ in scripts[index + 1 :]]
                before = f"applied before it: {', '.join(done)}" if done else "nothing was changed"
                raise ActionFailed(
                    f"down migration {label} ({path}) failed and was rolled back: "
                    f"{self._target.scrub(_error_text(error))}; {before}"
                    + (f"; not attempted: {', '.join(rest)}" if rest else "")
                ) from None
            done.append(label)
        said = f"; notices: {' | '.join(notices)}" if notices else ""
        return ActionOutcome(
            True,
            f"applied {len(done)} down migration(s), newest first, each in its own transaction: "
            + ", ".join(path for _, path, _, _ in scripts)
            + said,
            {"applied": [path for _, path, _, _ in scripts], "versions": [v for v, *_ in scripts]},
        )

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
                f"{self._target.scrub(_error_text(error))}"
            ) from None
        return [(str(row["version"]), _epoch(row["applied_at"])) for row in rows]

    # ------------------------------------------------------------ integrity

    async def integrity(self, step: Step) -> ActionOutcome:
        """Run the policy's read-only integrity queries; fail naming each check that fails."""
        params = step.param_map()
        checks = _integrity_checks(params.get("checks"))
        timeout = parse_duration(params.get("statement_timeout", self._statement_timeout))
        results: list[dict[str, Any]] = []
        async with self._connection(read_only=True) as conn:
            for check in checks:
                value, problem = await self._measure(conn, check["query"], timeout)
                holds = (
                    problem is None
                    and value is not None
                    and _OPS[check["op"]](value, check["threshold"])
                )
                results.append({**check, "value": value, "ok": holds, "error": problem})
        failing = [r for r in results if not r["ok"]]
        words = [_check_words(r) for r in results]
        if failing:
            raise ActionFailed(
                f"{len(failing)} of {len(results)} integrity check(s) do not hold: "
                + "; ".join(_check_words(r) for r in failing)
            )
        return ActionOutcome(
            True,
            f"all {len(results)} integrity check(s) hold: " + "; ".join(words),
            {"checks": results},
        )

    async def _measure(
        self, conn: psycopg.AsyncConnection[DictRow], query: str, timeout: float
    ) -> tuple[float | None, str | None]:
        """One check's number, in a READ ONLY transaction with its own statement_timeout.

        Sent with the extended protocol (binary results), which takes exactly one
        statement: `SELECT 1; COMMIT; DELETE ...` cannot slip out of the read-only
        transaction.
        """
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('statement_timeout', %s, true)", (_ms(timeout),)
                )
                cursor = conn.cursor()
                await cursor.execute(query.encode(), binary=True)
                rows = await cursor.fetchall()
                width = len(cursor.description or ())
        except psycopg.Error as error:
            return None, self._target.scrub(_error_text(error))
        if len(rows) != 1 or width != 1:
            shape = f"{len(rows)} row(s) of {width} column(s)"
            return None, f"returned {shape}; expected one row of one number"
        value = next(iter(rows[0].values()))
        if value is None:
            return None, "returned NULL"
        if isinstance(value, bool):
            return float(value), None
        if isinstance(value, int | float | Decimal):
            return float(value), None
        return None, f"returned {value!r}, not a number"

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


# ---------------------------------------------------------------- reading dumps

_COMMIT = b"\nCOMMIT;\n"


def scan_dump(
    path: Path, migrations_table: tuple[str, str] = ("public", "schema_migrations")
) -> DumpScan:
    """Read a plain dump (gzip'd or not) to its end; DumpError if it must not be restored.

    A gzip is decompressed fully (its CRC and length are checked at the end), and the
    SQL must begin with pg_dump's header and end with its closing line: `pg_dump |
    gzip` that died half-way leaves a valid gzip of a truncated dump, and psql would
    happily load the half. A dump with transaction control of its own or a
    `\\connect` is not a single-database plain dump and is refused too.
    """
    compressed = _is_gzip(path)
    total = 0
    header = complete = False
    schemas: list[str] = []
    migrations: list[tuple[str, float | None]] | None = None
    copying: list[tuple[str, float | None]] | None = None
    columns: tuple[int, int | None] = (0, None)
    in_copy = False
    quote: bytes | None = None
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
            for line in handle:
                total += len(line)
                if in_copy:
                    if line.rstrip(b"\r\n") == b"\\.":
                        in_copy = False
                        if copying is not None:
                            migrations = (migrations or []) + copying
                            copying = None
                    elif copying is not None:
                        copying.append(_migration_row(line, columns))
                    continue
                stripped = line.strip()
                if not stripped:
                    continue
                if quote is not None:  # inside a function body: not a statement of the dump
                    quote = _dollar_state(stripped, quote)
                    complete = False
                    continue
                if stripped == _TRAILER:
                    complete = True
                    continue
                if stripped.startswith((b"--", b"\\unrestrict ")):
                    header = header or stripped.startswith(_HEADER)
                    continue
                complete = False
                copy = _COPY.match(stripped)
                if copy is not None:
                    in_copy = True
                    if _names_table(copy.group(1), migrations_table):
                        columns = _migration_columns(copy.group(2))
                        copying = []
                    continue
                schema = _CREATE_SCHEMA.match(stripped)
                if schema is not None:
                    schemas.append(schema.group(1).decode())
                elif _DUMP_TXN.match(stripped) or stripped.startswith((b"\\connect", b"\\c ")):
                    raise DumpError(
                        f"is not a plain single-database pg_dump: it contains "
                        f"{stripped[:40].decode(errors='replace')!r}"
                    )
                quote = _dollar_state(stripped, None)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DumpError(f"is not a complete gzip file: {error}") from None
    except OSError as error:
        raise DumpError(f"cannot be read: {error}") from None
    if not header:
        raise DumpError(
            "does not look like a plain pg_dump (no '-- PostgreSQL database dump' line)"
        )
    if in_copy or not complete:
        raise DumpError(
            "is not a complete pg_dump: it ends before pg_dump's closing line "
            "'-- PostgreSQL database dump complete' (cut short while it was written?)"
        )
    return DumpScan(
        total, compressed, tuple(schemas), None if migrations is None else tuple(migrations)
    )


async def _restore_feed(path: Path, prelude: bytes) -> AsyncGenerator[bytes, None]:
    """The prelude, the dump in 1 MiB pieces (decompressed in a thread), then COMMIT.

    COMMIT comes only after the whole file was read and its end was pg_dump's
    closing line; any failure before raises, and `run_tool` kills psql, which then
    never sees an end of input.
    """
    yield prelude
    compressed = _is_gzip(path)
    handle = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115
    tail = b""
    try:
        while True:
            try:
                chunk = await asyncio.to_thread(handle.read, _CHUNK)
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
                raise ActionFailed(
                    f"{path.name} could not be read to its end during the restore ({error}); "
                    "psql was stopped before COMMIT, nothing changed"
                ) from None
            if not chunk:
                break
            tail = (tail + chunk)[-4096:]
            yield chunk
    finally:
        handle.close()
    if _TRAILER not in tail:
        raise ActionFailed(
            f"{path.name} changed since the preflight: it no longer ends with pg_dump's closing "
            "line; psql was stopped before COMMIT, nothing changed"
        )
    yield _COMMIT


def _dollar_state(line: bytes, quote: bytes | None) -> bytes | None:
    """The dollar quote still open after `line` (function bodies), given the one before."""
    for tag in _DUMP_DOLLAR.findall(line):
        if quote is None:
            quote = tag
        elif tag == quote:
            quote = None
    return quote


def _is_gzip(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError as error:
        raise DumpError(f"cannot be read: {error}") from None


def _names_table(raw: bytes, wanted: tuple[str, str]) -> bool:
    parts = [p.strip('"').replace('""', '"') for p in raw.decode(errors="replace").split(".")]
    if len(parts) == 1:
        return parts[0] == wanted[1] and wanted[0] == "public"
    return tuple(parts[-2:]) == wanted


def _migration_columns(raw: bytes) -> tuple[int, int | None]:
    names = [n.strip().strip('"') for n in raw.decode(errors="replace").split(",")]
    if "version" not in names:
        raise DumpError("has a schema_migrations COPY block without a version column")
    at = names.index("applied_at") if "applied_at" in names else None
    return names.index("version"), at


def _migration_row(line: bytes, columns: tuple[int, int | None]) -> tuple[str, float | None]:
    fields = line.rstrip(b"\r\n").decode(errors="replace").split("\t")
    version_at, applied_at = columns
    version = _copy_value(fields[version_at]) if version_at < len(fields) else None
    stamp = (
        _copy_value(fields[applied_at])
        if applied_at is not None and applied_at < len(fields)
        else None
    )
    return version or "", _epoch_from_text(stamp)


def _copy_value(field: str) -> str | None:
    r"""A COPY text-format field: `\N` is NULL, backslash escapes are undone."""
    if field == "\\N":
        return None

    def undo(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped in _COPY_ESCAPES:
            return _COPY_ESCAPES[escaped]
        if escaped.startswith("x"):
            return chr(int(escaped[1:], 16))
        if escaped.isdigit():
            return chr(int(escaped, 8))
        return escaped

    return re.sub(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", undo, field)


def _epoch_from_text(text: str | None) -> float | None:
    """A timestamp as pg_dump writes it (ISO, DateStyle=ISO), in Unix seconds; None if odd."""
    if text is None:
        return None
    if text == "infinity":
        return float("inf")
    if text == "-infinity":
        return float("-inf")
    try:
        return _epoch(datetime.fromisoformat(text))
    except ValueError:
        return None


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, int | float | Decimal):
        return float(value)
    return _epoch_from_text(str(value))


def _schemas_to_replace(scan: DumpScan) -> list[str]:
    return ["public", *(s for s in scan.schemas if s != "public")]


# ---------------------------------------------------------------- migration files


def _migration_files(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = params.get("migration_dirs") or []
    folders = [raw] if isinstance(raw, str) else [str(d) for d in raw]
    if not folders:
        raise ActionFailed("migration_dirs names no folder")
    base = _base_dir(params)
    files: list[tuple[str, str]] = []
    for folder in folders:
        real = _resolve(base, folder)
        try:
            names = sorted(entry.name for entry in os.scandir(real) if entry.is_file())
        except OSError as error:
            raise ActionFailed(
                f"migration folder {real} cannot be listed: {error.strerror}"
            ) from None
        files += [(folder, name) for name in names]
    return files


def _base_dir(params: Mapping[str, Any]) -> Path:
    base = params.get("base_dir")
    return Path(str(base)) if base else Path.cwd()


def _resolve(base: Path, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def _down_script(path: Path) -> str:
    """A down file ready to run inside our transaction, or ActionFailed before anything ran.

    Its own BEGIN/COMMIT lines (outside dollar-quoted bodies) are dropped: the
    transaction is ours, so that the file and its schema_migrations row go together.
    psql meta-commands cannot run through a driver and are refused.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ActionFailed(
            f"down file {path} cannot be read: {error}; nothing was changed"
        ) from None
    kept: list[str] = []
    quote: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if quote is None:
            if _SCRIPT_TXN.match(line):
                kept.append(f"-- (watchdog: {line.strip()} dropped, the transaction is ours)")
                continue
            if line.lstrip().startswith("\\"):
                raise ActionFailed(
                    f"down file {path}:{number} uses the psql meta-command "
                    f"{line.strip()[:30]!r}, which only psql can run; nothing was changed"
                )
        for tag in _DOLLAR.findall(line):
            if quote is None:
                quote = tag
            elif tag == quote:
                quote = None
        kept.append(line)
    return "\n".join(kept) + "\n"


class _EndedTransaction(Exception):
    pass


def _collect_notice(notices: list[str]) -> Callable[[Diagnostic], None]:
    def handler(diagnostic: Diagnostic) -> None:
        if diagnostic.message_primary:
            notices.append(diagnostic.message_primary)

    return handler


# ---------------------------------------------------------------- integrity checks


def _integrity_checks(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ActionFailed(
            "database.integrity needs `checks`: a list of {name, query, op, threshold}"
        )
    checks: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ActionFailed(f"checks[{index}] is {item!r}, not a mapping")
        name = str(item.get("name") or f"check {index + 1}")
        op = str(item.get("op", ""))
        if op not in _OPS:
            raise ActionFailed(f"check {name!r}: op {op!r}; expected one of {' '.join(_OPS)}")
        if not item.get("query"):
            raise ActionFailed(f"check {name!r} has no query")
        try:
            threshold = float(item["threshold"])
        except (KeyError, TypeError, ValueError):
            raise ActionFailed(f"check {name!r}: threshold must be a number") from None
        checks.append({"name": name, "query": str(item["query"]), "op": op, "threshold": threshold})
    return checks


def _check_words(result: Mapping[str, Any]) -> str:
    expected = f"{result['op']} {_number(result['threshold'])}"
    if result["error"] is not None:
        return f"{result['name']}: {result['error']} (expected {expected})"
    return f"{result['name']} = {_number(result['value'])} (expected {expected})"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# ---------------------------------------------------------------- words and files


def age_words(seconds: float) -> str:
    """An age as people say it on a page: '45 s', '12 min', '7 h 12 min', '2 d 3 h'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


def _taken_at_from_name(name: str) -> float | None:
    match = _STAMP.search(name)
    if match is None:
        return None
    try:
        return time.mktime(time.strptime("".join(match.groups()), "%Y%m%d%H%M%S"))
    except (ValueError, OverflowError):
        return None


def _local(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _error_text(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def _unique(path: Path) -> Path:
    """`path`, or `name-2.ext`... when two runs land in the same second."""
    if not path.exists():
        return path
    stem, dot, suffix = path.name.partition(".")
    for number in range(2, 1000):
        candidate = path.with_name(f"{stem}-{number}{dot}{suffix}")
        if not candidate.exists():
            return candidate
    raise ActionFailed(f"too many files named like {path}")


def _fsync_and_rename(temporary: Path, path: Path) -> None:
    descriptor = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
