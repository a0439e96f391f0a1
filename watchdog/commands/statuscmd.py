"""`watchdog status`: the status strip in a terminal, from the journal alone.

It does not reach the daemon: the running daemon writes its status row with a
heartbeat (`watchdog.engine.statusbeat`), so this works from another host, in a
container with only the journal's volume, or when the daemon is hung. Exit 0 while
a daemon's heartbeat is fresh; 1 when it is stale, the daemon stopped, or none ever
wrote (nothing is watching); 2 when the journal does not exist (`journalfile`).
"""

from __future__ import annotations

import dataclasses
import json
import time

from watchdog.commands.journalfile import journal_place
from watchdog.policy.statusview import judge_status
from watchdog.store.journal import open_journal


def status_command(state: str, *, as_json: bool = False, stale_after: float | None = None) -> int:
    """Print the strip for the journal `state` (known to exist); the exit code."""
    journal = open_journal(state)
    try:
        facts = journal.status_facts()
    finally:
        journal.close()
    where = journal_place(state)
    verdict = judge_status(facts, time.time(), stale_after=stale_after, journal=where)
    if as_json:
        print(json.dumps({**verdict.as_dict(), "facts": dataclasses.asdict(facts)}, indent=2))
    else:
        print(verdict.text())
    return 0 if verdict.running else 1
