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

The steps are split by job: `database_backups` (dump, backup, which backup),
`database_migrations` (down files), `database_integrity` (checks),
`database_dumps` (reading a dump, the feed to psql); this module is the restore
and the class the registry builds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.database_backups import BackupActions
from watchdog.actions.database_dumps import (
    BACKUP_PREFIX,
    COMMIT,
    DEFAULT_PATTERN,
    Backup,
    DumpError,
    DumpScan,
    restore_feed,
    scan_dump,
    schemas_to_replace,
)
from watchdog.actions.database_integrity import IntegrityActions
from watchdog.actions.database_migrations import MigrationActions, migration_files
from watchdog.actions.database_words import age_words, human_bytes, local_time, ms, optional_str
from watchdog.actions.pgtools import run_tool, summarize
from watchdog.model import Step
from watchdog.policy.durations import parse_duration
from watchdog.policy.migrations import DownPlan, Refusal, plan_down

__all__ = [
    "BACKUP_PREFIX",
    "DEFAULT_PATTERN",
    "Backup",
    "DatabaseActions",
    "DumpError",
    "DumpScan",
    "age_words",
    "human_bytes",
    "scan_dump",
]

_LOST = re.compile(
    r"server closed the connection|connection to server was lost|terminating connection"
)


@dataclass(frozen=True, slots=True)
class _Checked:
    backup: Backup
    scan: DumpScan
    lines: list[str]
    down: DownPlan | None


class DatabaseActions(BackupActions, MigrationActions, IntegrityActions):
    """The database steps of scenario 2, against the database `dsn` names."""

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

        since = local_time(backup.taken_at)
        dated = "" if backup.dated_by == "name" else ", dated by its mtime"
        size = (
            f"{human_bytes(backup.size)} compressed, {human_bytes(scan.sql_bytes)} of SQL"
            if scan.compressed
            else f"{human_bytes(scan.sql_bytes)} of SQL"
        )
        schemas = ", ".join(schemas_to_replace(scan))
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
            files = migration_files(params, self._migrations_dir)
            if scan.migrations is not None:
                applied, source = list(scan.migrations), "in the backup"
            else:
                applied = await self._applied_migrations()
                source = "in the live database (the backup has no schema_migrations data)"
            result = plan_down(files, applied, optional_str(params.get("target_version")))
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

    # ------------------------------------------------------------ restore

    async def restore(self, step: Step) -> ActionOutcome:
        """Replace the database with a backup, atomically, after the preflight passes."""
        params = step.param_map()
        checked = await self._preflight(params)
        backup, scan = checked.backup, checked.scan
        prelude = self._prelude(scan)
        tools = self._located()
        options = f"-c lock_timeout={ms(self._lock_timeout)} -c client_min_messages=warning"
        started = time.perf_counter()
        result = await run_tool(
            [tools.psql, "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", *self._target.args()],
            self._target.env(options=options),
            feed=restore_feed(backup.path, prelude),
        )
        seconds = time.perf_counter() - started
        expected = len(prelude) + scan.sql_bytes + len(COMMIT)
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
        since = local_time(backup.taken_at)
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
        for schema in schemas_to_replace(scan):
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
