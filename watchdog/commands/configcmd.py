"""`watchdog config snapshots|diff` and `watchdog rollback --undo`: the configuration by hand.

The on-call engineer sees what the daemon would restore before it does
(`snapshots`, `diff`), and can take back a provider disable exactly: the rows
the daemon changed, from the before-images it journaled, and nothing else.
The undo is itself an incident in the journal, so the timeline shows it.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable

import httpx

from watchdog.actions.base import ActionFailed
from watchdog.actions.config import UNDOABLE, ConfigActions, NothingToUndo
from watchdog.actions.http import HttpActions
from watchdog.commands.runner import backends
from watchdog.model import Severity
from watchdog.policy.schema import Policy
from watchdog.policy.tablediff import diff_rows, render_diff
from watchdog.settings import Settings
from watchdog.store.journal import Journal, open_journal


def snapshots_text(journal: Journal, tables: list[str]) -> str:
    lines = [f"{'ID':>4}  {'TABLE':<30} {'TAKEN AT':<19}  {'ROWS':>6}  CHECKSUM"]
    for table in tables:
        for snapshot in journal.snapshots(table):
            taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.at))
            lines.append(
                f"{snapshot.id:>4}  {table:<30} {taken}  {snapshot.row_count:>6}  "
                f"{snapshot.checksum[:12]}"
            )
    if len(lines) == 1:
        return (
            f"no snapshots of {', '.join(tables)} yet: one is taken after a healthy period "
            "while the daemon runs"
        )
    return "\n".join(lines)


async def diff_text(
    policy: Policy, settings: Settings, *, table: str, snapshot_id: int | None, key: str | None
) -> str:
    journal = open_journal(settings.state)
    try:
        snapshot = (
            journal.snapshot(snapshot_id) if snapshot_id is not None
            else journal.latest_snapshot(table)
        )
        if snapshot is None:
            raise ValueError(f"no snapshot of {table} in the journal {settings.state}")
        async with httpx.AsyncClient() as client:
            store = backends(settings, client).store
            if store is None:
                raise ValueError(
                    "WATCHDOG_CONFIG_STORE is not set: expected postgres (with "
                    "WATCHDOG_DATABASE_URL), a postgresql:// URL or sandbox+http://…"
                )
            live = await store.read_rows(snapshot.table_name)
            primary = await store.primary_key(snapshot.table_name) if key is None else ()
    finally:
        journal.close()
    # The table's own key; a composite one is matched on its first column.
    differences = diff_rows(snapshot.rows, live, key or (primary[0] if primary else None))
    return render_diff(
        differences, old=f"snapshot {snapshot.id} of {snapshot.table_name}", new="the live table"
    )


async def undo_change(
    policy: Policy,
    settings: Settings,
    *,
    incident: int,
    force: bool,
    out: Callable[[str], None] = print,
) -> int:
    """Restore the before-images a provider disable journaled in `incident`."""
    journal = open_journal(settings.state)
    try:
        async with httpx.AsyncClient() as client:
            store = backends(settings, client, policy, journal).store
            if store is None:
                raise ValueError("WATCHDOG_CONFIG_STORE is not set: no table to write to")
            actions = ConfigActions(
                store, journal, HttpActions(policy, client), settings.backup_dir
            )
            try:
                lines, code = await actions.undo_incident(incident, force=force), 0
            except NothingToUndo as error:
                raise ValueError(str(error)) from None
            except ActionFailed as error:
                lines, code = [f"undo failed: {error}"], 1
            record = _open_undo(journal, incident)
            for words in lines:
                journal.add_event(record, at=time.time(), kind="undo", summary=words)
                out(words)
            journal.set_state(
                record,
                state="resolved" if code == 0 else "escalated",
                at=time.time(),
                reason=f"undo of incident {incident}'s {UNDOABLE} by {getpass.getuser()}",
                closed=code == 0,
            )
            return code
    finally:
        journal.close()


def _open_undo(journal: Journal, incident: int) -> int:
    now = time.time()
    original = journal.incident(incident)
    record = journal.open_incident(
        key=f"undo/{incident}/{int(now)}",
        severity=Severity.P3,
        scenario="undo",
        subject=original.subject,
        state="executing",
        reason=f"undo of incident {incident} by {getpass.getuser()}: the command is the "
        "authorisation",
        at=now,
        findings=(),
    )
    return record

