"""Which file a journal setting names, and refusing one that does not exist.

A typo in `--state` used to read as a quiet night: `watchdog incidents` created an
empty journal there and printed "no incidents". Only `watchdog run` (and a rollback
by hand, which journals what it does) may create the journal; every other command
reads or decides on incidents a daemon journaled, so a missing file is a mistake,
named in one line with the default and how to set another.
"""

from __future__ import annotations

from pathlib import Path

from watchdog.settings import Settings
from watchdog.store.journal import ACCEPTED_FORMS, SQLITE_SCHEME


class NoJournal(ValueError):
    """The journal file a command would read does not exist (exit 2)."""


def journal_path(url_or_path: str) -> Path:
    """The SQLite file of a path or `sqlite:///` URL, as `open_journal` reads it."""
    if url_or_path.startswith(SQLITE_SCHEME) and url_or_path[len(SQLITE_SCHEME) :]:
        return Path(url_or_path[len(SQLITE_SCHEME) :])
    if url_or_path and "://" not in url_or_path and not url_or_path.startswith("sqlite:"):
        return Path(url_or_path)
    raise ValueError(
        f"cannot open a journal at {url_or_path!r}: expected {ACCEPTED_FORMS} "
        "(only SQLite is supported for now)"
    )


def existing_journal(settings: Settings) -> str:
    """The journal setting, once its file is known to exist; `NoJournal` otherwise."""
    path = journal_path(settings.state)
    if not path.is_file():
        raise NoJournal(
            f"no journal at {path.absolute()} (the default is {settings.default_journal}; "
            "set another with --state or WATCHDOG_STATE; `watchdog run` creates it)"
        )
    return settings.state
