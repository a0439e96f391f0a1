"""Backups and dumps: find the newest backup, take a fresh one, dump the state for forensics.

A new file is written by pg_dump under a hidden temporary name, checked (a gzip'd
backup is read to its end by `scan_dump`), fsync'd and renamed: a backup that
exists is whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.database_base import DatabaseBase
from watchdog.actions.database_dumps import (
    BACKUP_PREFIX,
    DEFAULT_PATTERN,
    Backup,
    DumpError,
    scan_dump,
)
from watchdog.actions.database_words import (
    fsync_and_rename,
    human_bytes,
    ms,
    taken_at_from_name,
    unique_path,
)
from watchdog.actions.pgtools import run_tool, summarize
from watchdog.model import Step


class BackupActions(DatabaseBase):
    """`database.dump` and `database.backup`, and the choice of a backup to restore."""


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
        taken_at, dated_by = taken_at_from_name(path.name), "name"
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

    # ------------------------------------------------------------ dump and backup

    async def dump(self, step: Step) -> ActionOutcome:
        """pg_dump the current (maybe corrupted) state, for forensics, before it is replaced."""
        folder = Path(str(step.param_map()["dir"]))
        path = unique_path(folder / f"corrupted-state-{self._stamp()}.sql")
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
        path = unique_path(folder / f"{BACKUP_PREFIX}{self._stamp()}.sql.gz")
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
            f"--lock-wait-timeout={ms(self._lock_timeout)}",
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
            await asyncio.to_thread(fsync_and_rename, temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return time.perf_counter() - started
