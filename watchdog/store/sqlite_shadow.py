"""A shadow policy's decisions in the SQLite journal (and, through `PgBase`, PostgreSQL).

`watchdog.store.shadow` has the table and the row conversions; a tick's rows are one
transaction, written by the engine that acts (on a shared journal, the leader's fenced
handle: a lost term writes no shadow rows either).
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.store.shadow import COLUMNS, INSERT, ShadowDecision, decision_of
from watchdog.store.sqlite_base import SqliteBase


class SqliteShadow(SqliteBase):
    """Shadow decisions: batched writes, newest-first reads."""

    def record_shadow_decisions(self, decisions: Sequence[ShadowDecision]) -> None:
        if not decisions:
            return
        with self._transaction() as conn:
            conn.executemany(INSERT, [d.values() for d in decisions])

    def shadow_decisions(self, *, limit: int = 50) -> list[ShadowDecision]:
        """The latest `limit` shadow decisions, newest first."""
        rows = self._read(
            f"SELECT {COLUMNS} FROM shadow_decisions ORDER BY at DESC, id DESC LIMIT ?", (limit,)
        )
        return [decision_of(row) for row in rows]
