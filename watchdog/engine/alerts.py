"""Alertmanager's alerts, from the webhook to the decision tick.

The receiver hands a validated delivery here; it is journaled (deduplicated,
durably) before the webhook is answered, and the daemon's tick then reads the
alerts still firing as observations of the policy's `alert` signals, exactly
like a probe's. When an incident that such an alert helped to open is resolved,
the firings behind it are settled in the journal: the daemon has handled them,
and an alert that Alertmanager keeps repeating (or resolves late) must not open
the same incident again. Only a new firing of the alert counts anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from watchdog.engine.firing import FiringView
from watchdog.model import Alert, Observation
from watchdog.policy.alerts import alert_observations, matches, series_of
from watchdog.policy.schema import AlertSignal, Policy
from watchdog.policy.triage import rule_key
from watchdog.store.alerts import AlertDelivery, AlertReceipt, FiringStarts
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.alerts")


class AlertIntake:
    def __init__(self, policy: Policy, journal: Journal, clock: Callable[[], float]) -> None:
        self.journal = journal
        self.clock = clock
        self.signals = [s for s in policy.signals if isinstance(s, AlertSignal) and s.enabled]
        by_name = {s.name: s for s in self.signals}
        self.rule_signals = {r.name: by_name[r.signal] for r in policy.rules if r.signal in by_name}
        self._firing = FiringView()
        for alert in journal.firing_alerts():
            self._firing.hold(alert)
        self.known_series: dict[str, set[str]] = {}
        self._queue: list[tuple[AlertDelivery, asyncio.Future[AlertReceipt]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def receive(
        self, alerts: list[Alert], *, group_key: str, receiver: str, truncated: int
    ) -> AlertReceipt:
        """Journal the delivery, then answer: the caller's 200 means it is on disk.

        Deliveries that arrive while a write is under way wait and are written
        together in the next transaction (group commit: one fsync for all of them),
        in arrival order; the firing view changes in the order the journal did.
        """
        waiting: asyncio.Future[AlertReceipt] = asyncio.get_running_loop().create_future()
        self._queue.append((AlertDelivery(tuple(alerts), group_key, receiver), waiting))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="alert-journal")
        receipt = await waiting
        log.info(
            "alerts_received",
            group=group_key,
            accepted=receipt.accepted,
            duplicates=receipt.duplicates,
            truncated=truncated,
            firing=len(self._firing),
        )
        return receipt

    async def _write(self) -> None:
        """Write what has queued, in batches, until nothing waits.

        On the event loop, like every other journal write of the daemon: a worker
        thread was measured slower (each SQLite statement hands the GIL back and
        forth with the busy loop), and a commit here takes about a millisecond.
        Yielding before each batch lets every request already read join it.
        """
        while True:
            await asyncio.sleep(0)
            if not self._queue:
                return
            batch, self._queue = self._queue, []
            deliveries = [d for d, _ in batch]
            touched = {a.fingerprint for d in deliveries for a in d.alerts}
            firing: FiringStarts = {
                f: set(starts) for f in touched if (starts := self._firing.starts(f))
            }
            try:
                receipts = self.journal.record_alerts(deliveries, at=self.clock(), firing=firing)
            except Exception as error:  # every waiting caller answers 5xx; Alertmanager retries
                for _, waiting in batch:
                    if not waiting.done():
                        waiting.set_exception(error)
                continue
            for (_, waiting), receipt in zip(batch, receipts, strict=True):
                for key in receipt.ended:
                    self._firing.release(key)
                for alert in receipt.started:
                    self._firing.hold(alert)
                if not waiting.done():
                    waiting.set_result(receipt)

    @property
    def active(self) -> list[Alert]:
        """The firing alerts no resolved incident has settled, as the journal holds them."""
        return list(self._firing.alerts())

    def observations(self, now: float) -> list[Observation]:
        return alert_observations(self.signals, self.active, self.known_series, now)

    def settle(self, finding_ids: Iterable[str], now: float) -> None:
        """The firings behind findings of a just-resolved incident are handled: settle them."""
        keys: list[tuple[str, float]] = []
        active: list[Alert] | None = None  # unpacked from the view once, and only if needed
        for identity in finding_ids:
            rule, series = rule_key(identity)
            signal = self.rule_signals.get(rule)
            if signal is None:
                continue
            if active is None:
                active = self.active
            keys += [
                (a.fingerprint, a.starts_at)
                for a in active
                if a.firing and matches(signal, a) and series_of(signal, a) == series
            ]
        if keys:
            self.journal.settle_alerts(keys, at=now, by="a resolved incident")
            for key in keys:
                self._firing.release(key)
            log.info("alerts_settled", alerts=len(keys))
