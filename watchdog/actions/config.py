"""Configuration actions: back up, restore last known good, verify, disable a provider.

They work on any `ConfigStore` (the sandbox's table now, PostgreSQL later) and
keep what they replace: a backup of the live table goes to a CSV file and the
step's output before anything is overwritten, and a provider disable keeps the
exact before-image of the rows it changed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from watchdog.actions.base import ActionFailed, ActionOutcome, ConfigStore
from watchdog.actions.http import HttpActions, config_differences
from watchdog.model import Step
from watchdog.policy.configrows import assess_intent, disable_provider, invalid_rows, undo_plan
from watchdog.store.journal import Journal
from watchdog.store.undo import UndoRecord

#: The action whose journaled before-images an undo puts back.
UNDOABLE = "provider.disable"


class NothingToUndo(ActionFailed):
    """The incident changed no rows that an undo could put back."""


class ConfigActions:
    def __init__(
        self,
        store: ConfigStore,
        journal: Journal,
        http: HttpActions,
        backup_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        validated: Collection[str] = (),
    ) -> None:
        """`validated`: the tables the policy checks with its own validation; a snapshot or
        defaults file of one of them that fails it is never restored."""
        self._store = store
        self._journal = journal
        self._http = http
        self._backup_dir = backup_dir
        self._clock = clock
        self._validated = frozenset(validated)

    # Preflights: read-only, before the plan's first step acts ---------------

    async def preflight_restore(self, step: Step) -> list[str]:
        """Refuse a plan whose `config.restore` would find nothing trustworthy to restore.

        Run before the plan stops anything: a last known good snapshot that
        still validates, else a defaults file that exists, parses and validates.
        """
        params = step.param_map()
        table = str(params["table"])
        source = str(params.get("source", "last_good"))
        if source == "last_good":
            snapshot = self._journal.latest_snapshot(table)
            if snapshot is not None:
                problems = self._problems(table, snapshot.rows)
                if not problems:
                    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.at))
                    return [
                        f"{table} will be restored from last known good snapshot {snapshot.id} "
                        f"({snapshot.row_count} rows, taken {taken})"
                    ]
                if params.get("defaults") is None:
                    raise ActionFailed(
                        f"the last known good snapshot {snapshot.id} of {table} fails the "
                        f"policy's validation ({'; '.join(problems[:3])}) and the policy names "
                        "no defaults file: nothing trustworthy to restore"
                    )
            elif params.get("defaults") is None:
                raise ActionFailed(
                    f"no last known good snapshot of {table} in the journal (one is taken only "
                    "after a healthy period, and none has been seen yet) and no defaults file "
                    "in the policy: nothing trustworthy to restore"
                )
        path = Path(str(params["defaults"] if source == "last_good" else source))
        rows = read_rows_file(path)
        problems = self._problems(table, rows)
        if problems:
            raise ActionFailed(
                f"defaults file {path} fails the policy's validation of {table}: "
                + "; ".join(problems[:3])
            )
        return [f"{table} will be restored from the defaults file {path} ({len(rows)} rows)"]

    async def preflight_table(self, step: Step) -> list[str]:
        """Refuse a plan whose step works on a table the store cannot read."""
        table = str(step.param_map()["table"])
        await self._store.read_rows(table)
        return []

    def _problems(self, table: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        return invalid_rows(rows) if table in self._validated else []

    async def backup(self, step: Step) -> ActionOutcome:
        """The live table to the journal (the step's data) and to a CSV file, for analysis.

        PostgreSQL writes the file with COPY, exactly as the runbook's psql does;
        other stores get the same CSV from the rows.
        """
        table = str(step.param_map()["table"])
        rows = await self._store.read_rows(table)
        path = self._backup_dir / f"{table}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
        copy_csv = getattr(self._store, "copy_csv", None)
        if copy_csv is not None:
            await copy_csv(table, path)
        else:
            write_csv_atomically(path, rows)
        return ActionOutcome(
            True,
            f"backed up {len(rows)} rows of {table} to the journal and to {path}",
            {"rows": rows, "file": str(path), "table": table},
        )

    async def restore(self, step: Step) -> ActionOutcome:
        """The last known good snapshot, or the policy's defaults file when there is none."""
        params = step.param_map()
        table = str(params["table"])
        source = str(params.get("source", "last_good"))
        defaults = params.get("defaults")
        snapshot = self._journal.latest_snapshot(table) if source == "last_good" else None
        if snapshot is not None and self._problems(table, snapshot.rows):
            if defaults is None:
                raise ActionFailed(
                    f"the last known good snapshot {snapshot.id} of {table} fails the policy's "
                    "validation and the policy names no defaults file: nothing trustworthy "
                    "to restore"
                )
            snapshot = None  # as the preflight said: the defaults file instead
        if snapshot is not None:
            summary = await self._store.replace_rows(table, snapshot.rows)
            # The caveat goes first: the step's output is what the page shows.
            caveat = f"CAVEAT: this snapshot was {snapshot.caveat}. " if snapshot.caveat else ""
            data: dict[str, Any] = {"snapshot": snapshot.id}
            if snapshot.caveat:
                data["caveat"] = snapshot.caveat
            return ActionOutcome(
                True,
                f"{caveat}restored {table} from last known good snapshot {snapshot.id} "
                f"(checksum {snapshot.checksum[:12]}, taken at "
                f"{time.strftime('%H:%M:%S', time.localtime(snapshot.at))}): {summary}",
                data,
            )
        if defaults is None and source == "last_good":
            raise ActionFailed(
                f"no last known good snapshot of {table} in the journal (one is taken only "
                "after a healthy period, and none has been seen yet) and no defaults file in the "
                "policy: nothing trustworthy to restore"
            )
        path = Path(str(defaults if source == "last_good" else source))
        rows = read_rows_file(path)
        summary = await self._store.replace_rows(table, rows)
        return ActionOutcome(
            True, f"restored {table} from the defaults file {path}: {summary}", {"file": str(path)}
        )

    async def verify(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        table, target = str(params["table"]), str(params["target"])
        rows = await self._store.read_rows(table)
        loaded = await self._http.loaded_config(target)
        differences = config_differences(rows, loaded)
        if differences:
            raise ActionFailed(
                f"{target} loaded a configuration unlike {table}: " + "; ".join(differences)
            )
        return ActionOutcome(
            True, f"{target} serves exactly the {len(loaded)} enabled fields of {table}"
        )

    async def disable(self, step: Step) -> ActionOutcome:
        """Take a provider out of the waterfall, writing only the rows that route through it.

        With `incident`, the exact before- and after-images are journaled as an undo
        record *before* the rows are written, and marked applied after, so a crash
        at any instant leaves the undo findable (`rollback --undo`, `provider.enable`).
        A second run of the same step settles what the first left 'intended' against
        the live rows and writes nothing over it. Without `incident` (older
        policies) the images only reach the journal with the step's evidence,
        after the change: the catalogue then calls the step not idempotent.
        """
        params = step.param_map()
        table, provider = str(params["table"]), str(params["provider"])
        mode = str(params.get("mode", "surgical"))
        if mode not in ("runbook", "surgical"):
            raise ActionFailed(f"provider.disable mode {mode!r}; expected 'runbook' or 'surgical'")
        incident = _incident_param(params)
        if incident is not None:
            await self.settle_intents(incident)
        rows = await self._store.read_rows(table)
        change = disable_provider(rows, provider, "runbook" if mode == "runbook" else "surgical")
        if not change.before:
            return ActionOutcome(
                True, f"{provider} is in no enabled waterfall of {table}: nothing to change"
            )
        evidence: dict[str, Any] = {
            "action": UNDOABLE,
            "table": table,
            "provider": provider,
            "before": change.before,
            "after": change.after,
        }
        if incident is None:
            await self._store.update_rows(table, change.after)
            return ActionOutcome(True, change.summary, evidence)
        undo_id = self._journal.intend_undo(
            incident,
            step=step.name,
            action=UNDOABLE,
            table=table,
            before=change.before,
            after=change.after,
            at=self._clock(),
        )
        try:
            written = await self._store.update_rows(table, change.after)
        except ActionFailed:
            # A failure may still have committed (the connection lost during COMMIT):
            # only the live rows can say; if they cannot be read, the record stays
            # 'intended' for the next reader to settle.
            await self.settle_intents(incident)
            raise
        self._journal.settle_undo(undo_id, status="applied", at=self._clock(), reason=written)
        return ActionOutcome(
            True, f"{change.summary} (undo record {undo_id})", {**evidence, "undo": undo_id}
        )

    async def enable(self, step: Step) -> ActionOutcome:
        """The daemon's own undo of a provider disable, once the provider is healthy again.

        Never forced: a row someone edited since the disable is theirs now, and
        is named in the output instead of overwritten.
        """
        incident = _incident_param(step.param_map())
        if incident is None:
            raise ActionFailed("provider.enable needs `incident`, the incident to undo")
        lines = await self.undo_incident(incident, force=False)
        return ActionOutcome(
            True, "; ".join(lines), {"action": "provider.enable", "incident": incident}
        )

    async def settle_intents(self, incident: int) -> list[UndoRecord]:
        """Settle the incident's 'intended' undo records from the live rows; all its records.

        An 'intended' record is what a crash (or a failed COMMIT) left between
        writing the undo and marking it: `assess_intent` compares the table with
        its images. A table that cannot be read leaves the record as it is.
        """
        records = self._journal.undo_records(incident)
        for record in records:
            if record.status != "intended":
                continue
            live = await self._store.read_rows(record.table_name)
            outcome = assess_intent(live, record.before, record.after)
            self._journal.settle_undo(
                record.id, status=outcome.status, at=self._clock(), reason=outcome.reason
            )
        return self._journal.undo_records(incident) if records else []

    async def undo_incident(self, incident: int, *, force: bool) -> list[str]:
        """Put back the before-images of every provider disable `incident` made.

        From its undo records (settled first: an 'intended' one may have landed),
        or, for a journal written before they existed, its step evidence. Newest
        change first, so rows changed twice end at their oldest image.
        """
        records = await self.settle_intents(incident)
        changes = [
            (r.table_name, r.before, r.after) for r in records if r.status == "applied"
        ]
        if records and not changes:
            return [
                f"nothing to put back: incident {incident}'s {UNDOABLE} never reached the "
                f"table (undo record(s) {', '.join(str(r.id) for r in records)} not applied)"
            ]
        if not records:
            changes = [
                (str(e.data["table"]), _rows(e.data["before"]), _rows(e.data["after"]))
                for e in self._journal.timeline(incident)
                if e.kind == "step_evidence" and e.data.get("action") == UNDOABLE
            ]
        if not changes:
            raise NothingToUndo(
                f"incident {incident} journaled no {UNDOABLE} change: nothing to undo"
            )
        return [
            await self.undo(table, before, after, force=force)
            for table, before, after in reversed(changes)
        ]

    async def undo(self, table: str, before: list[dict[str, Any]], after: list[dict[str, Any]],
                   *, force: bool = False) -> str:
        """Put back exactly the rows a change replaced, and nothing else.

        A row someone changed again since (it no longer equals our after-image)
        is left alone unless `force`: undoing blindly would destroy their edit.
        """
        plan = undo_plan(await self._store.read_rows(table), before, after)
        rows = plan.rows + (plan.conflicts_before if force else [])
        summary = await self._store.update_rows(table, rows) if rows else "nothing to write"
        words = f"{len(rows)} row(s) of {table} restored to their before-image ({summary})"
        if plan.already:
            words += f"; already back: {', '.join(plan.already)}"
        if plan.conflicts and not force:
            words += (
                f"; left alone because they changed since: {', '.join(plan.conflicts)} "
                "(--force restores them anyway)"
            )
        return words


def _incident_param(params: dict[str, Any]) -> int | None:
    """The step's `incident` as an id; None when the step has none."""
    value = params.get("incident")
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise ActionFailed(
            f"incident {value!r}: expected an incident id (digits); the engine fills "
            "'{incident}' in the policy with the plan's own incident"
        )
    return int(text)


def _rows(value: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in value] if isinstance(value, list) else []


def read_rows_file(path: Path) -> list[dict[str, Any]]:
    """A defaults file: a JSON list of rows, or {"rows": [...]}."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ActionFailed(f"defaults file {path}: {error}") from None
    rows = body.get("rows") if isinstance(body, dict) else body
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ActionFailed(f"defaults file {path}: expected a JSON list of row objects")
    return [dict(r) for r in rows]


def write_csv_atomically(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write, fsync, rename: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({key for row in rows for key in row})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".backup-")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
