"""Alertmanager's alerts in the SQLite journal: each write in its own transaction.

The rows and their statements are `watchdog.store.alerts`; this job only opens
the transaction, so each webhook's deliveries commit before it is answered.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.model import Alert
from watchdog.store import alerts as alert_rows
from watchdog.store.alerts import AlertDelivery, AlertReceipt, FiringStarts
from watchdog.store.sqlite_base import SqliteBase


class SqliteAlerts(SqliteBase):
    """Alertmanager's deliveries recorded, the firing alerts read, handled firings settled."""

    def record_alerts(
        self, deliveries: Sequence[AlertDelivery], *, at: float, firing: FiringStarts
    ) -> list[AlertReceipt]:
        with self._transaction() as conn:
            return [
                alert_rows.record(
                    conn,
                    d.alerts,
                    at=at,
                    group_key=d.group_key,
                    receiver=d.receiver,
                    firing=firing,
                )
                for d in deliveries
            ]

    def firing_alerts(self) -> list[Alert]:
        return alert_rows.firing(self._read(alert_rows.FIRING_UNSETTLED))

    def settle_alerts(self, keys: Sequence[tuple[str, float]], *, at: float, by: str) -> None:
        with self._transaction() as conn:
            alert_rows.settle(conn, keys, at=at, by=by)
