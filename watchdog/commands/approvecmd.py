"""`watchdog approve|reject` and `watchdog people`: the CLI side of approvals.

The rules (who may decide, what counts) live in `watchdog.engine.approvals`,
shared with the API and the web page; this module only wires the command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from watchdog.engine.approvals import Refused, record_decision
from watchdog.people import People, PeopleError, add_person, load_people, new_token
from watchdog.policy.schema import Policy
from watchdog.store.journal import open_journal

DEFAULT_ROLES: tuple[str, ...] = tuple(
    Policy.model_fields["roles"].get_default(call_default_factory=True)
)


def people_path(explicit: str | None, configured: Path | None) -> Path:
    path = Path(explicit) if explicit else configured
    if path is None:
        raise PeopleError(
            "no people file: set WATCHDOG_PEOPLE or pass --people FILE "
            "(create one with: watchdog people add NAME --role lead --people FILE)"
        )
    return path


def decide_command(args: argparse.Namespace, state: str, people_file: Path, decision: str) -> int:
    """`watchdog approve|reject ID --as NAME`: local access to the journal is the credential.

    Exit 0 when recorded, 1 when refused (wrong role, not awaiting approval, a
    second approval by the same person), 2 for bad input (no such person or incident).
    """
    person = People(people_file).named(args.person)
    if person is None:
        raise PeopleError(f"{people_file}: no person named {args.person!r}")
    journal = open_journal(state)
    try:
        recorded = record_decision(
            journal,
            incident_id=args.id,
            person=person,
            decision=decision,
            comment=args.comment or "",
            at=time.time(),
        )
    except Refused as refused:
        print(f"watchdog {decision}: {refused.message}", file=sys.stderr)
        return 2 if refused.status in (404, 422) else 1
    finally:
        journal.close()
    print(recorded.summary())
    return 0


def people_command(
    args: argparse.Namespace, people_file: Path, roles: Sequence[str] | None = None
) -> int:
    """`watchdog people add NAME --role R` prints the new token once; `people list`.

    Roles are checked against the policy's (`roles`), or the default ones without a policy.
    """
    if args.action == "add":
        if not args.name:
            raise PeopleError("`people add` needs a NAME, e.g. watchdog people add lee --role lead")
        token = new_token()
        allowed = roles if roles is not None else DEFAULT_ROLES
        person = add_person(
            people_file, args.name, args.role or [], token, allowed, rotate=args.rotate
        )
        print(f"{person.name} ({', '.join(person.roles)}) written to {people_file}")
        print("personal token (shown once, only its hash is stored):")
        print(token)
        return 0
    for person in load_people(people_file):
        print(f"{person.name}  {', '.join(person.roles)}")
    return 0
