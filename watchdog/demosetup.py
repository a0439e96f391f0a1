"""What `watchdog demo` prepares for scenario 1 (a new version that fails), said out loud.

The policy's 15-minute watch after a revert would be 90 s even at the demo's 10x,
so the demo runs a copy of songnodes.yaml with that one `verify_for` shortened
and prints that it did; and the sandbox plays the stack's 6-hourly backup job,
so scenario 1's "confirm backup availability" has a backup to find.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.policy.durations import parse_duration
from watchdog.sandbox.catalog import TABLE_KEYS
from watchdog.sandbox.stack import SandboxStack
from watchdog.store.journal import open_journal

#: Scenario 1's watch in the demo's copy of the policy (the runbook's is 15 minutes).
DEMO_NEW_VERSION_WATCH = "2m"
NEW_VERSION_WATCH = "    verify_for: 15m       # the runbook's \"monitor for 15 minutes\"\n"


def has_service_last_good(state: Path, service: str) -> bool:
    journal = open_journal(str(state / "journal.db"))
    try:
        return journal.latest_snapshot(f"docker:last_good:{service}") is not None
    finally:
        journal.close()


def demo_policy(
    policy: Path, folder: Path, time_scale: float, out: Callable[[str], None]
) -> Path:
    """songnodes.yaml with scenario 1's 15-minute watch shortened, said out loud."""
    text = policy.read_text(encoding="utf-8")
    if text.count(NEW_VERSION_WATCH) != 1:
        raise RuntimeError(f"{policy} no longer has scenario 1's watch line {NEW_VERSION_WATCH!r}")
    copy = folder / "songnodes-demo.yaml"
    copy.write_text(
        text.replace(NEW_VERSION_WATCH, f"    verify_for: {DEMO_NEW_VERSION_WATCH}  # demo\n"),
        encoding="utf-8",
    )
    out(
        f"demo setting: scenario 1's 15-minute watch shortened to {DEMO_NEW_VERSION_WATCH} "
        f"({parse_duration(DEMO_NEW_VERSION_WATCH) / time_scale:g} s at {time_scale:g}x) "
        f"for the demo (policy copy {copy.name})"
    )
    return copy


def seed_backup(stack: SandboxStack, folder: Path, out: Callable[[str], None]) -> None:
    """The stack's 6-hourly pg_dump, played by the sandbox: its tables, gzip'd, under the
    real backups' name, so scenario 1's "confirm backup availability" finds one."""
    folder.mkdir(parents=True, exist_ok=True)
    name = time.strftime("musicdb_backup_%Y%m%d-%H%M%S.sql.gz", time.localtime())
    tables = {t: stack.control.table(t) for t in TABLE_KEYS}
    with gzip.open(folder / name, "wt", encoding="utf-8") as dump:
        dump.write("-- sandbox stand-in of pg_dump musicdb: its tables as JSON\n")
        dump.write("-- " + json.dumps(tables, default=str) + "\n")
    out(f"sandbox backup job: {name} in {folder}")
