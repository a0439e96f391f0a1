"""The journaled observations in the SQLite journal (and, through `PgBase`, PostgreSQL).

`watchdog.store.observations` has the table and the row conversions. A tick's kept
samples are written in one transaction (`record_observations`), never one per sample;
pruning is one indexed DELETE, run by the daemon now and then, not every tick.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.model import Observation
from watchdog.store.observations import INSERT, observation_of, row_values
from watchdog.store.sqlite_base import SqliteBase

COLUMNS = "at, signal, series, value, error, detail"


class SqliteObservations(SqliteBase):
    """Observations kept for replay: batched writes, ranged reads, pruning by age."""

    def record_observations(self, observations: Sequence[Observation]) -> None:
        if not observations:
            return
        with self._transaction() as conn:
            conn.executemany(INSERT, [row_values(o) for o in observations])

    def observations(
        self, *, since: float | None = None, until: float | None = None
    ) -> list[Observation]:
        """The kept samples in [since, until], oldest first (in recording order at a tie)."""
        where, params = [], []
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if until is not None:
            where.append("at <= ?")
            params.append(until)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(f"SELECT {COLUMNS} FROM observations{clause} ORDER BY at, id", params)
        return [observation_of(row) for row in rows]

    def observation_span(self) -> tuple[int, float | None, float | None]:
        """How many samples are kept, and the first and last time among them."""
        row = self._read("SELECT COUNT(*), MIN(at), MAX(at) FROM observations")[0]
        return int(row[0]), row[1], row[2]

    def prune_observations(self, before: float) -> int:
        """Forget samples older than `before`; return how many went."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM observations WHERE at < ?", (before,))
            return int(cursor.rowcount)
