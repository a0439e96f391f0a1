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
from pathlib import Path
from typing import Any

from watchdog.actions.base import ActionFailed, ActionOutcome, ConfigStore
from watchdog.actions.http import HttpActions, config_differences
from watchdog.model import Step
from watchdog.policy.configrows import disable_provider
from watchdog.store.journal import Journal


class ConfigActions:
    def __init__(
        self, store: ConfigStore, journal: Journal, http: HttpActions, backup_dir: Path
    ) -> None:
        self._store = store
        self._journal = journal
        self._http = http
        self._backup_dir = backup_dir

    async def backup(self, step: Step) -> ActionOutcome:
        table = str(step.param_map()["table"])
        rows = await self._store.read_rows(table)
        path = self._backup_dir / f"{table}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
        write_csv_atomically(path, rows)
        return ActionOutcome(
            True,
            f"backed up {len(rows)} rows of {table} to {path}",
            {"rows": rows, "file": str(path)},
        )

    async def restore(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        table = str(params["table"])
        snapshot = self._journal.latest_snapshot(table)
        if snapshot is None:
            raise ActionFailed(
                f"no last known good snapshot of {table} in the journal: it is taken only after a "
                "healthy period, and none has been seen yet"
            )
        await self._store.replace_rows(table, snapshot.rows)
        return ActionOutcome(
            True,
            f"restored {snapshot.row_count} rows of {table} from snapshot {snapshot.id} "
            f"(checksum {snapshot.checksum[:12]}, "
            f"taken at {time.strftime('%H:%M:%S', time.localtime(snapshot.at))})",
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
        params = step.param_map()
        table, provider = str(params["table"]), str(params["provider"])
        mode = str(params.get("mode", "surgical"))
        if mode not in ("runbook", "surgical"):
            raise ActionFailed(f"provider.disable mode {mode!r}; expected 'runbook' or 'surgical'")
        rows = await self._store.read_rows(table)
        change = disable_provider(rows, provider, "runbook" if mode == "runbook" else "surgical")
        if not change.before:
            return ActionOutcome(True, f"{provider} is in no row of {table}: nothing to change")
        await self._store.replace_rows(table, change.rows)
        return ActionOutcome(True, change.summary, {"before": change.before, "table": table})


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
