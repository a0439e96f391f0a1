"""`watchdog incidents close ID --as NAME --comment TEXT`: the CLI side of ending an incident.

The rules (who may close, what can be closed) live in `watchdog.engine.closing`,
shared with the API and the web page; this module only wires the command line.
As with `approve`, local access to the journal is the credential: the name picks
the person (and so the roles) from the people file.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from watchdog.engine.approvals import Refused
from watchdog.engine.closing import close_incident
from watchdog.people import People, PeopleError
from watchdog.policy.schema import FollowupSpec
from watchdog.store.journal import open_journal

USAGE = "watchdog incidents close ID --as NAME --comment TEXT"


def close_command(
    *,
    incident_id: int | None,
    person_name: str | None,
    comment: str | None,
    state: str,
    people_file: Path,
    close_roles: Sequence[str],
    followup_items: Sequence[FollowupSpec] | None = None,
) -> int:
    """Exit 0 when closed, 1 when refused (wrong role, already final), 2 for bad input
    (no such person or incident, no or an empty comment); the journal is unchanged unless 0."""
    if incident_id is None or person_name is None or comment is None:
        missing = [
            label
            for label, value in (("ID", incident_id), ("--as", person_name), ("--comment", comment))
            if value is None
        ]
        raise ValueError(f"`incidents close` needs {', '.join(missing)}: {USAGE}")
    person = People(people_file).named(person_name)
    if person is None:
        raise PeopleError(f"{people_file}: no person named {person_name!r}")
    journal = open_journal(state)
    try:
        closed = close_incident(
            journal,
            incident_id=incident_id,
            person=person,
            comment=comment,
            close_roles=close_roles,
            at=time.time(),
            followup_items=followup_items,
        )
    except Refused as refused:
        print(f"watchdog incidents close: {refused.message}", file=sys.stderr)
        return 2 if refused.status in (404, 422) else 1
    finally:
        journal.close()
    print(closed.summary())
    return 0
