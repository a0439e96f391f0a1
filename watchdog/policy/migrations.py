"""Which down migrations undo a database back to a version, or why none may run.

The runbook's scenario 2 lists down files by hand, with names that do not exist.
The real folders (`sql/migrations`, `sql/migrations/medallion`) repeat numbers
across folders and even within one, some migrations have no down file, and the
`schema_migrations` table records a version as the stem (`008_enrichment_metadata_fields`),
the stem under its folder (`medallion/001_bronze_layer`, or the whole configured
folder), or the bare number (`008`). So the chain is worked out here, from the file
listing and the applied rows, before anything is changed: a rollback that would stop
half-way at a migration without a down file, or guess between two files, is refused
up front with the reason, never discovered in the middle.

Pure: the caller lists the folders and reads the table; nothing here touches a file
or the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


#: What `applied_at` may be: Unix seconds, a datetime, anything ordered.
At = TypeVar("At", bound=_Comparable)

_FILE = re.compile(r"^(?P<stem>(?P<number>\d+)_.+?)(?:_(?P<kind>up|down))?\.sql$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: the up and down files of one stem in one folder."""

    directory: str
    number: str
    stem: str
    up: str | None = None
    down: str | None = None

    @property
    def label(self) -> str:
        """How people tell it apart: `007_x (sql/migrations)`."""
        return f"{self.stem} ({self.directory})"

    @property
    def down_path(self) -> str | None:
        return None if self.down is None else _join(self.directory, self.down)


class DownStep(NamedTuple):
    """One down file to apply, and the schema_migrations version it removes."""

    version: str
    path: str


@dataclass(frozen=True, slots=True)
class DownPlan:
    """The down files to apply, newest applied first; empty when nothing is to undo."""

    steps: tuple[DownStep, ...]
    reason: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no down migration may run; `version` and `candidates` say which and what matched."""

    reason: str
    version: str | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Applied(Generic[At]):
    version: str
    at: At | None


def discover(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """Group `(directory, filename)` pairs into migrations, one per folder and stem.

    `NNN_name_up.sql` and `NNN_name_down.sql` pair up; a plain `NNN_name.sql` is an
    up file without a down. Files that do not start with a number (README, helper
    scripts, `quick_reference.sql`) are not migrations.
    """
    found: dict[tuple[str, str], dict[str, str | None]] = {}
    for directory, filename in files:
        match = _FILE.match(filename)
        if match is None:
            continue
        key = (_clean_dir(directory), match["stem"])
        entry = found.setdefault(key, {"dir": directory, "number": match["number"]})
        kind = (match["kind"] or "up").lower()
        entry[kind] = filename
    return sorted(
        (
            Migration(
                directory=str(entry["dir"]),
                number=str(entry["number"]),
                stem=stem,
                up=entry.get("up"),
                down=entry.get("down"),
            )
            for (_, stem), entry in found.items()
        ),
        key=lambda m: (_clean_dir(m.directory), m.stem),
    )


def matches(version: str, migration: Migration) -> bool:
    """Whether a schema_migrations version names this migration.

    Accepted: the stem, the bare number (`008` or `8`), either under a folder prefix
    that is the migration's folder, its last components (`medallion/...`) or a longer
    path ending in it; a trailing `.sql`, `_up` or `_down` is ignored.
    """
    prefix, _, name = version.strip().rpartition("/")
    name = re.sub(r"(?i)(_(up|down))?\.sql$", "", name)
    name = re.sub(r"(?i)_(up|down)$", "", name)
    same = int(name) == int(migration.number) if name.isdigit() else name == migration.stem
    if not same or not prefix:
        return same
    wanted = _parts(prefix)
    have = _parts(migration.directory)
    size = min(len(wanted), len(have))
    return size > 0 and wanted[-size:] == have[-size:]


def plan_down(
    files: Iterable[tuple[str, str]],
    applied: Iterable[tuple[str, At | None]],
    target_version: str | None,
) -> DownPlan | Refusal:
    """The down files that take the database back to `target_version`, or why not.

    Undone are the migrations applied after the target (the target stays applied),
    newest applied first by `applied_at`, then version; with no target, the newest
    applied one alone. A version without `applied_at` counts as older than every
    dated one. Every version to undo must name exactly one migration, each one
    migration only once, and each such migration must have a down file: the whole
    chain is checked before the caller changes anything. Versions older than the
    target are not examined: a baseline row with no file of its own must not block
    every rollback.
    """
    migrations = discover(files)
    rows = [_Applied(version, at) for version, at in applied]
    ordered = _newest_first(rows)
    if target_version is None:
        if not ordered:
            return DownPlan((), "no migration is recorded in schema_migrations: nothing to undo")
        chain = ordered[:1]
        scope = f"the newest applied migration, {ordered[0].version}"
    else:
        position = _target_position(ordered, target_version, migrations)
        if isinstance(position, Refusal):
            return position
        chain = ordered[:position]
        target = ordered[position].version
        if not chain:
            return DownPlan((), f"{target} is the newest applied migration: nothing to undo")
        scope = f"the {len(chain)} migration(s) applied after {target} ({target} stays)"

    resolved: list[tuple[str, Migration]] = []
    for row in chain:
        found = [m for m in migrations if matches(row.version, m)]
        if not found:
            same_number = _same_number(row.version, migrations)
            hint = (
                f"; files with that number: {', '.join(m.label for m in same_number)}"
                if same_number
                else ""
            )
            return Refusal(
                f"schema_migrations version {row.version} matches no migration file in "
                f"{_folders(migrations)}{hint}: refusing to guess what to undo",
                row.version,
                tuple(m.label for m in same_number),
            )
        if len(found) > 1:
            return Refusal(
                f"schema_migrations version {row.version} is ambiguous: it matches "
                f"{', '.join(m.label for m in found)}; refusing to guess which to undo",
                row.version,
                tuple(m.label for m in found),
            )
        resolved.append((row.version, found[0]))

    seen: dict[Migration, str] = {}
    for version, migration in resolved:
        if migration in seen:
            return Refusal(
                f"schema_migrations versions {seen[migration]} and {version} both name "
                f"{migration.label}: its down file would run twice",
                version,
                (migration.label,),
            )
        seen[migration] = version

    missing = [m for _, m in resolved if m.down is None]
    if missing:
        first, *others = missing
        also = "".join(f"; nor past {m.label}" for m in others)
        return Refusal(
            f"cannot roll back past {first.label}: it has no down file{also}",
            next(v for v, m in resolved if m is first),
            (first.label,),
        )

    steps = tuple(DownStep(version, str(m.down_path)) for version, m in resolved)
    labels = tuple(m.label for _, m in resolved)
    return DownPlan(steps, f"undo {scope}, newest first: {', '.join(labels)}", labels)


def _newest_first(rows: Sequence[_Applied[At]]) -> list[_Applied[At]]:
    dated = [row for row in rows if row.at is not None]
    undated = [row for row in rows if row.at is None]
    dated.sort(key=lambda row: (row.at, row.version), reverse=True)
    undated.sort(key=lambda row: row.version, reverse=True)
    return dated + undated


def _target_position(
    ordered: Sequence[_Applied[At]], target: str, migrations: Sequence[Migration]
) -> int | Refusal:
    """Index of the target among the applied rows, exactly or through the file it names."""
    for index, row in enumerate(ordered):
        if row.version == target:
            return index
    named = [m for m in migrations if matches(target, m)]
    if len(named) == 1:
        hits = [i for i, row in enumerate(ordered) if matches(row.version, named[0])]
        if len(hits) == 1:
            return hits[0]
    applied = ", ".join(row.version for row in ordered) or "none"
    return Refusal(
        f"target version {target} is not among the applied migrations (applied: {applied}): "
        "refusing to guess how far to roll back",
        target,
        tuple(m.label for m in named),
    )


def _same_number(version: str, migrations: Sequence[Migration]) -> list[Migration]:
    number = re.match(r"\d+", version.strip().rpartition("/")[2])
    if number is None:
        return []
    return [m for m in migrations if int(m.number) == int(number.group())]


def _folders(migrations: Sequence[Migration]) -> str:
    folders = sorted({m.directory for m in migrations})
    return ", ".join(folders) if folders else "the migration folders (no migration files found)"


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _clean_dir(directory: str) -> str:
    return "/".join(_parts(directory))


def _join(directory: str, filename: str) -> str:
    return f"{directory.rstrip('/')}/{filename}" if directory else filename
