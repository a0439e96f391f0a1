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
from watchdog.store.pg_base import is_pg_url, masked


class NoJournal(ValueError):
    """The journal file a command would read does not exist (exit 2)."""


def journal_path(url_or_path: str) -> Path:
    """The SQLite file of a path or `sqlite:///` URL, as `open_journal` reads it."""
    if url_or_path.startswith(SQLITE_SCHEME) and url_or_path[len(SQLITE_SCHEME) :]:
        return Path(url_or_path[len(SQLITE_SCHEME) :])
    if url_or_path and "://" not in url_or_path and not url_or_path.startswith("sqlite:"):
        return Path(url_or_path)
    raise ValueError(f"cannot open a journal at {masked(url_or_path)!r}: expected {ACCEPTED_FORMS}")


def journal_place(url_or_path: str) -> str:
    """How logs and the status strip name the journal: its absolute file, or its URL
    with the password as `***`."""
    if is_pg_url(url_or_path):
        return masked(url_or_path)
    return str(journal_path(url_or_path).absolute())


def state_folder(settings: Settings) -> Path:
    """The daemon's working folder for files (system steps' default `dir`): the SQLite
    journal's folder, or the state folder when the journal is in PostgreSQL."""
    if is_pg_url(settings.state):
        return settings.state_dir.absolute()
    return journal_path(settings.state).absolute().parent


def existing_journal(settings: Settings) -> str:
    """The journal setting, once its file is known to exist; `NoJournal` otherwise.

    A PostgreSQL journal is passed through: opening it names a missing server or
    database itself."""
    if is_pg_url(settings.state):
        return settings.state
    path = journal_path(settings.state)
    if not path.is_file():
        raise NoJournal(
            f"no journal at {path.absolute()} (the default is {settings.default_journal}; "
            "set another with --state or WATCHDOG_STATE; `watchdog run` creates it)"
        )
    return settings.state
