"""`watchdog followups [--all]`, `watchdog followups done ID --as NAME`, `watchdog report ID`.

Like `incidents`, these read the journal directly: local access to the journal is
the credential, and the API's read token is not needed. Closing a follow-up names
a person: one from the people file when one is configured (the name must be
there), any name otherwise; either way the close is journaled with who and when.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from watchdog.people import People, PeopleError
from watchdog.store.followups import FollowupRecord
from watchdog.store.journal import open_journal
from watchdog.store.markdown import incident_markdown, owner_words, read_facts
from watchdog.store.render import age, iso_utc

DONE_USAGE = "watchdog followups done ID --as NAME"
COLUMNS = ("ID", "INCIDENT", "DUE", "STATUS", "OWNER", "ITEM")
NO_FOLLOWUPS = "no open follow-ups"


def holders_of(people_file: Path | None) -> dict[str, list[str]]:
    """Role → persons, from the people file if there is one (else no names: roles only)."""
    if people_file is None or not people_file.exists():
        return {}
    return People(people_file).holders()


def followups_text(
    records: Sequence[FollowupRecord], holders: dict[str, list[str]], *, now: float
) -> str:
    """An aligned table, overdue first (the journal's order), or an explicit "none"."""
    if not records:
        return NO_FOLLOWUPS
    rows = [COLUMNS] + [
        (
            str(f.id),
            str(f.incident_id),
            iso_utc(f.due_at),
            _status(f, now),
            owner_words(f.owner, holders),
            f.text,
        )
        for f in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _status(followup: FollowupRecord, now: float) -> str:
    if followup.done_at is not None:
        return f"done by {followup.done_by}"
    if followup.overdue(now):
        return f"OVERDUE {age(now - followup.due_at)}"
    return f"due in {age(followup.due_at - now)}"


def list_command(*, state: str, include_done: bool, people_file: Path | None) -> int:
    journal = open_journal(state)
    try:
        records = journal.followups(include_done=include_done)
    finally:
        journal.close()
    print(followups_text(records, holders_of(people_file), now=time.time()))
    return 0


def done_command(
    *, state: str, followup_id: int | None, person_name: str | None, people_file: Path | None
) -> int:
    """Exit 0 closed; 2 for bad input: no ID or name, a name not in the people file, an
    unknown ID, or a follow-up already closed (the message names who closed it)."""
    if followup_id is None or not person_name or not person_name.strip():
        missing = [
            label for label, value in (("ID", followup_id), ("--as", person_name)) if not value
        ]
        raise ValueError(f"`followups done` needs {', '.join(missing)}: {DONE_USAGE}")
    name = person_name.strip()
    if people_file is not None and People(people_file).named(name) is None:
        raise PeopleError(f"{people_file}: no person named {name!r}")
    journal = open_journal(state)
    try:
        done = journal.followup_done(followup_id, person=name, at=time.time())
    finally:
        journal.close()
    print(f"follow-up {done.id} of incident {done.incident_id} done by {name}: {done.text}")
    return 0


def report_command(
    *, state: str, incident_id: int, out: str | None, people_file: Path | None
) -> int:
    journal = open_journal(state)
    try:
        facts = read_facts(journal, incident_id, holders_of(people_file))
    finally:
        journal.close()
    text = incident_markdown(facts, now=time.time())
    if out is None:
        print(text, end="")
    else:
        Path(out).write_text(text, encoding="utf-8")
        print(f"incident {incident_id}: report written to {out}")
    return 0
