"""The sandbox's "database": two JSON tables kept in memory and persisted atomically.

A restart of the sandbox keeps whatever a test or the watchdog last wrote, and a crash
mid-write can never leave a half-written table behind (temp file, fsync, rename).
Validation is only what the real primary key enforces (the key column is present,
a non-empty string, and unique): the watchdog must be able to write back any
before-image exactly, including a corrupted one.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.sandbox import seed
from watchdog.sandbox.catalog import CONFIG_TABLE, PROVIDERS_TABLE, TABLE_KEYS

Rows = list[dict[str, Any]]


class TableError(ValueError):
    """A write was refused; the message names the problem (answered as HTTP 400)."""


class UnknownTableError(KeyError):
    """No table of that name (answered as HTTP 404)."""


def validate_rows(table: str, rows: Any) -> Rows:
    """Check rows against the table's primary key; return them or raise TableError."""
    key = TABLE_KEYS[table]
    if not isinstance(rows, list):
        raise TableError(f"'rows' must be a list of objects, got {type(rows).__name__}")
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TableError(f"row {index} must be an object, got {type(row).__name__}")
        value = row.get(key)
        if key not in row:
            raise TableError(f"row {index} has no '{key}' (the table's primary key)")
        if not isinstance(value, str) or not value:
            raise TableError(f"row {index}: '{key}' must be a non-empty string, got {value!r}")
        if value in seen:
            raise TableError(f"row {index}: duplicate '{key}' {value!r}")
        seen.add(value)
    return rows


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class TableStore:
    """Thread-safe access to the tables, backed by `{state_dir}/{table}.json`."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir
        self._lock = threading.Lock()
        self._tables: dict[str, Rows] = {}
        seeds: dict[str, Callable[[], Rows]] = {
            CONFIG_TABLE: seed.config_rows,
            PROVIDERS_TABLE: seed.provider_rows,
        }
        for table, make_seed in seeds.items():
            self._tables[table] = self._load(table) or make_seed()
            atomic_write_json(self._path(table), self._tables[table])

    def _path(self, table: str) -> Path:
        return self._dir / f"{table}.json"

    def _load(self, table: str) -> Rows | None:
        """Rows persisted by an earlier run, or None if absent or unreadable."""
        try:
            return validate_rows(table, json.loads(self._path(table).read_text("utf-8")))
        except (OSError, ValueError):
            return None

    def _check(self, table: str) -> None:
        if table not in self._tables:
            known = ", ".join(sorted(self._tables))
            raise UnknownTableError(f"unknown table '{table}'; known: {known}")

    def names(self) -> list[str]:
        """Table names."""
        return sorted(self._tables)

    def rows(self, table: str) -> Rows:
        """A deep copy of the table's rows."""
        self._check(table)
        with self._lock:
            return copy.deepcopy(self._tables[table])

    def replace(self, table: str, rows: Any) -> Rows:
        """Validate, then replace all rows in one step (one "transaction") and persist."""
        self._check(table)
        valid = copy.deepcopy(validate_rows(table, rows))
        with self._lock:
            atomic_write_json(self._path(table), valid)
            self._tables[table] = valid
            return copy.deepcopy(valid)

    def mutate(self, table: str, change: Callable[[Rows], None]) -> Rows:
        """Apply an unchecked in-place change (fault injection bypasses constraints)."""
        self._check(table)
        with self._lock:
            rows = copy.deepcopy(self._tables[table])
            change(rows)
            atomic_write_json(self._path(table), rows)
            self._tables[table] = rows
            return copy.deepcopy(rows)
