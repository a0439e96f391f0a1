"""Scenario 1's "confirm backup availability", for the services that need it.

Reverting a service that reads and writes the database (the policy's
`schema_coupled_services`) to an older image is the one part of scenario 1 that
can touch data: if the old version misbehaves on the current schema, the way
back is the newest backup. So before such a revert the newest backup in the
policy's folder must exist, be readable and be younger than `max_backup_age`;
for any other service the item does not apply, and the step says so. It is the
step's own check and its preflight (run before the plan's first step acts), so
a missing backup stops the plan before the failed service is touched. It reads
a folder, never the database: it needs no WATCHDOG_DATABASE_URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path

from watchdog.actions.base import ActionFailed, ActionOutcome
from watchdog.actions.database_dumps import DEFAULT_PATTERN
from watchdog.actions.database_words import age_words, local_time, taken_at_from_name
from watchdog.model import Step
from watchdog.policy.durations import parse_duration


class BackupConfirm:
    """`backup.confirm` for one policy's schema-coupled services."""

    def __init__(
        self, coupled: Collection[str], clock: Callable[[], float] = time.time
    ) -> None:
        self._coupled = frozenset(coupled)
        self._clock = clock

    async def confirm(self, step: Step) -> ActionOutcome:
        params = step.param_map()
        service = str(params["service"])
        if service not in self._coupled:
            return ActionOutcome(
                True,
                f"not applicable: {service} is not schema-coupled (the policy's "
                "stack.schema_coupled_services), its revert touches no data",
            )
        folder = Path(str(params["backup_dir"]))
        pattern = str(params.get("pattern") or DEFAULT_PATTERN)
        newest, age = self._newest(folder, pattern)
        limit = params.get("max_backup_age")
        if limit is not None and age > parse_duration(limit):
            raise ActionFailed(
                f"{service} is schema-coupled and the newest backup {newest.name} is "
                f"{age_words(age)} old; the policy allows {age_words(parse_duration(limit))}: "
                "not reverting it without a recent backup to fall back on"
            )
        return ActionOutcome(
            True,
            f"{service} is schema-coupled: newest backup {newest.name} in {folder}, "
            f"taken {local_time(self._clock() - age)} ({age_words(age)} ago)",
            {"backup": str(newest), "age_seconds": round(age, 1)},
        )

    async def preflight(self, step: Step) -> list[str]:
        """The same check before the plan acts; a refusal changes nothing."""
        return [(await self.confirm(step)).output]

    def _newest(self, folder: Path, pattern: str) -> tuple[Path, float]:
        if not folder.is_dir():
            raise ActionFailed(
                f"no backup to fall back on: backup folder {folder} does not exist"
            )
        found = []
        for path in folder.glob(pattern):
            try:
                if not path.is_file():
                    continue
                with path.open("rb"):
                    pass
                taken = taken_at_from_name(path.name) or path.stat().st_mtime
            except OSError as error:
                raise ActionFailed(f"backup {path} cannot be read: {error.strerror}") from None
            found.append((taken, path.name, path))
        if not found:
            raise ActionFailed(f"no backup to fall back on: nothing matches {pattern} in {folder}")
        taken, _, path = max(found)
        return path, max(0.0, self._clock() - taken)
