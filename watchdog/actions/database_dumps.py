"""Reading plain pg_dump files: what a backup holds, whether it is whole, and the feed to psql.

`scan_dump` reads a backup to its end before anything is restored from it;
`restore_feed` streams the same file to psql between our BEGIN and COMMIT.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import zlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from watchdog.actions.base import ActionFailed
from watchdog.policy.psqlscan import PsqlScan

DEFAULT_PATTERN = "musicdb_backup_*.sql.gz"
BACKUP_PREFIX = "musicdb_backup_"
_CHUNK = 1 << 20
_HEADER = b"-- PostgreSQL database dump"
TRAILER = b"-- PostgreSQL database dump complete"
_COPY = re.compile(rb"^COPY (\S+) \((.*)\) FROM stdin;\s*$")
_CREATE_SCHEMA = re.compile(rb'^CREATE SCHEMA ((?:"(?:[^"]|"")+")|[A-Za-z_][A-Za-z0-9_$]*);\s*$')
_DUMP_TXN = re.compile(
    rb"^(BEGIN|COMMIT|ROLLBACK|ABORT|START TRANSACTION)( WORK| TRANSACTION)?;$", re.IGNORECASE
)
_DUMP_DOLLAR = re.compile(rb"\$[A-Za-z_][A-Za-z_0-9]*\$|\$\$")
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



COMMIT = b"\nCOMMIT;\n"


def scan_dump(
    path: Path, migrations_table: tuple[str, str] = ("public", "schema_migrations")
) -> DumpScan:
    """Read a plain dump (gzip'd or not) to its end; DumpError if it must not be restored.

    A gzip is decompressed fully (its CRC and length are checked at the end), and the
    SQL must begin with pg_dump's header and end with its closing line: `pg_dump |
    gzip` that died half-way leaves a valid gzip of a truncated dump, and psql would
    happily load the half. A dump with transaction control of its own is
    not a single-database plain dump, and one holding any psql meta-command
    (`watchdog.policy.psqlscan`) is refused too.
    """
    compressed = is_gzip(path)
    total = 0
    header = complete = False
    schemas: list[str] = []
    migrations: list[tuple[str, float | None]] | None = None
    copying: list[tuple[str, float | None]] | None = None
    columns: tuple[int, int | None] = (0, None)
    in_copy = False
    quote: bytes | None = None
    psql = PsqlScan()
    try:
        with gzip.open(path, "rb") if compressed else path.open("rb") as handle:
            for line in handle:
                total += len(line)
                refusal = psql.feed(line.decode(errors="replace"))
                if refusal is not None:
                    raise DumpError(f"is refused before psql sees it: {refusal.reason}")
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
                if stripped == TRAILER:
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
                elif _DUMP_TXN.match(stripped):
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


async def restore_feed(path: Path, prelude: bytes) -> AsyncGenerator[bytes, None]:
    """The prelude, the dump in 1 MiB pieces (decompressed in a thread), then COMMIT.

    COMMIT comes only after the whole file was read and its end was pg_dump's
    closing line; any failure before raises, and `run_tool` kills psql, which then
    never sees an end of input.
    """
    yield prelude
    compressed = is_gzip(path)
    handle = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115
    tail = carry = b""
    psql = PsqlScan()
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
            carry = _rescan(psql, carry + chunk, path)
            yield chunk
    finally:
        handle.close()
    _rescan(psql, carry + b"\n", path)
    if TRAILER not in tail:
        raise ActionFailed(
            f"{path.name} changed since the preflight: it no longer ends with pg_dump's closing "
            "line; psql was stopped before COMMIT, nothing changed"
        )
    yield COMMIT


def _rescan(psql: PsqlScan, data: bytes, path: Path) -> bytes:
    """Scan the whole lines of `data` again as they go to psql; the unfinished rest back.

    psql acts on a line only once it has read all of it, so a line checked before
    its last piece is sent can never run: a file swapped after the preflight is
    stopped here, before COMMIT.
    """
    cut = data.rfind(b"\n") + 1
    for line in data[:cut].splitlines(keepends=True):
        refusal = psql.feed(line.decode(errors="replace"))
        if refusal is not None:
            raise ActionFailed(
                f"{path.name} changed since the preflight: {refusal.reason}; psql was "
                "stopped before it read that line and before COMMIT, nothing changed"
            )
    return data[cut:]


def _dollar_state(line: bytes, quote: bytes | None) -> bytes | None:
    """The dollar quote still open after `line` (function bodies), given the one before."""
    for tag in _DUMP_DOLLAR.findall(line):
        if quote is None:
            quote = tag
        elif tag == quote:
            quote = None
    return quote


def is_gzip(path: Path) -> bool:
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
        return epoch(datetime.fromisoformat(text))
    except ValueError:
        return None


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, int | float | Decimal):
        return float(value)
    return _epoch_from_text(str(value))


def schemas_to_replace(scan: DumpScan) -> list[str]:
    return ["public", *(s for s in scan.schemas if s != "public")]

