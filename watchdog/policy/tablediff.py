"""How a live table differs from a snapshot, row by row and column by column.

`watchdog config diff` shows this before anyone restores anything: which rows
the live table added or lost and, for rows in both, each column whose value
changed, old → new. Rows are matched by a key column: the caller's, or else the
first column whose values are unique in both versions (the primary key, as
PostgreSQL returns columns in table order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowDifference:
    key: str
    kind: str  # "added", "removed" or "changed"
    columns: tuple[tuple[str, Any, Any], ...] = field(default_factory=tuple)


def key_column(*tables: Sequence[Row]) -> str:
    """The first column present and unique in every row of every version."""
    candidates: list[str] = []
    for rows in tables:
        for row in rows:
            candidates += [c for c in row if c not in candidates]
    for column in candidates:
        if all(
            all(column in row for row in rows)
            and len({_text(row[column]) for row in rows}) == len(rows)
            for rows in tables
        ):
            return column
    raise ValueError("no column identifies the rows uniquely; name one with --key")


def diff_rows(
    old: Sequence[Row], new: Sequence[Row], key: str | None = None
) -> list[RowDifference]:
    column = key or key_column(old, new)
    before = {_text(row[column]): row for row in old}
    after = {_text(row[column]): row for row in new}
    differences: list[RowDifference] = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            differences.append(RowDifference(name, "removed"))
        elif name not in before:
            differences.append(RowDifference(name, "added"))
        else:
            changed = tuple(
                (c, before[name].get(c), after[name].get(c))
                for c in _columns(before[name], after[name])
                if before[name].get(c) != after[name].get(c)
            )
            if changed:
                differences.append(RowDifference(name, "changed", changed))
    return differences


def render_diff(differences: Sequence[RowDifference], *, old: str, new: str) -> str:
    if not differences:
        return f"{new} is identical to {old}"
    lines = [f"{len(differences)} row(s) differ ({old} → {new}):"]
    for difference in differences:
        if difference.kind == "changed":
            lines.append(f"  ~ {difference.key}")
            lines += [
                f"      {column}: {_text(was)} → {_text(now)}"
                for column, was, now in difference.columns
            ]
        else:
            sign = "+" if difference.kind == "added" else "-"
            lines.append(f"  {sign} {difference.key} ({difference.kind} in {new})")
    return "\n".join(lines)


def _columns(*rows: Row) -> list[str]:
    seen: list[str] = []
    for row in rows:
        seen += [c for c in row if c not in seen]
    return seen


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
