"""The observations that fed decisions, journaled compactly so `watchdog replay` can rerun them.

One row per kept sample: (at, signal, series, value, error, detail). The daemon keeps
only what replay needs (`watchdog.engine.recording`): a change of value or of error
state per (signal, series), and otherwise at most one sample per signal interval, so
a quiet signal costs one row per interval and a steady stack a few MB a day. Derived
signals are not journaled: replay derives them again from their sources, as the daemon
does each tick. Rows older than the retention setting are pruned.

Added by schema version 4 (`watchdog.store.schema.MIGRATIONS`): a journal written by
an older watchdog has the table, empty; replay says so instead of showing a quiet day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchdog.model import Observation
from watchdog.scrub import scrub_text

#: The version whose migration created the table: recording exists since it.
RECORDING_SINCE_VERSION = 4

STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS observations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        signal TEXT NOT NULL,
        series TEXT NOT NULL,
        value REAL,
        error TEXT,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS observations_at ON observations (at)",
)

INSERT = (
    "INSERT INTO observations (at, signal, series, value, error, detail)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

#: Error and detail texts are evidence, not payloads: a long one is cut here.
TEXT_LIMIT = 240


def _said(text: str) -> str:
    """A probe's words as the journal may keep them: scrubbed (an error can quote a URL
    with its password), then cut."""
    return scrub_text(text)[:TEXT_LIMIT] if text else text


def row_values(observation: Observation) -> tuple[object, ...]:
    error = _said(observation.error) if observation.error is not None else None
    return (
        observation.at,
        observation.signal,
        observation.series,
        observation.value,
        error,
        _said(observation.detail),
    )


def observation_of(row: Sequence[Any]) -> Observation:
    at, signal, series, value, error, detail = row
    return Observation(
        signal=str(signal),
        at=float(at),
        value=None if value is None else float(value),
        series=str(series),
        error=None if error is None else str(error),
        detail=str(detail),
    )
