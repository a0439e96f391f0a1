"""Alertmanager's alerts, from the webhook to the decision tick.

The receiver hands a validated delivery here; it is journaled (deduplicated,
durably) before the webhook is answered, and the daemon's tick then reads the
alerts still firing as observations of the policy's `alert` signals, exactly
like a probe's. When an incident that such an alert helped to open is resolved,
the firings behind it are settled in the journal: the daemon has handled them,
and an alert that Alertmanager keeps repeating (or resolves late) must not open
the same incident again. Only a new firing of the alert counts anew.

Alert labels are the sender's to choose, and each distinct value of a signal's
`by` label is a series (a finding, an incident): the intake counts the series
each signal holds firing and refuses, before journaling, a delivery that would
take one over the receiver's cap (`assess_series`; the receiver answers 429).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from watchdog.engine.firing import FiringView
from watchdog.model import Alert, Observation
from watchdog.policy.alerts import (
    TooManySeries,
    alert_observations,
    assess_series,
    matches,
    matches_labels,
    series_of,
)
from watchdog.policy.schema import AlertSignal, Policy
from watchdog.policy.triage import rule_key
from watchdog.store.alerts import AlertDelivery, AlertReceipt, FiringStarts
from watchdog.store.journal import Journal

log = structlog.get_logger("watchdog.alerts")

#: How often a sidecar on a shared journal reads the firing alerts anew, at most.
RELOAD_EVERY_SECONDS = 1.0


class AlertIntake:
    def __init__(self, policy: Policy, journal: Journal, clock: Callable[[], float]) -> None:
        self.journal = journal
        self.clock = clock
        self.signals = [s for s in policy.signals if isinstance(s, AlertSignal) and s.enabled]
        by_name = {s.name: s for s in self.signals}
        self.rule_signals = {r.name: by_name[r.signal] for r in policy.rules if r.signal in by_name}
        self._by_signals = [s for s in self.signals if s.by]
        #: Signal name → series → firings held: the distinct series each signal holds.
        self.held_series: dict[str, dict[str, int]] = {s.name: {} for s in self._by_signals}
        self._firing = FiringView()
        for alert in journal.firing_alerts():
            self._hold(alert)
        self.known_series: dict[str, set[str]] = {}
        self._queue: list[tuple[AlertDelivery, int | None, asyncio.Future[AlertReceipt]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._reloaded_at = float("-inf")

    async def receive(
        self,
        alerts: list[Alert],
        *,
        group_key: str,
        receiver: str,
        truncated: int,
        max_series: int | None = None,
    ) -> AlertReceipt:
        """Journal the delivery, then answer: the caller's 200 means it is on disk.

        With `max_series`, a delivery that would make a signal hold more distinct
        series firing than that is not journaled: `TooManySeries` is raised instead.

        Deliveries that arrive while a write is under way wait and are written
        together in the next transaction (group commit: one fsync for all of them),
        in arrival order; the firing view changes in the order the journal did.
        """
        waiting: asyncio.Future[AlertReceipt] = asyncio.get_running_loop().create_future()
        delivery = AlertDelivery(tuple(alerts), group_key, receiver)
        self._queue.append((delivery, max_series, waiting))
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
            batch = self._within_caps(self._queue)
            self._queue = []
            if not batch:
                continue
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
                    self._release(key)
                for alert in receipt.started:
                    self._hold(alert)
                if not waiting.done():
                    waiting.set_result(receipt)

    def _within_caps(
        self, queued: list[tuple[AlertDelivery, int | None, asyncio.Future[AlertReceipt]]]
    ) -> list[tuple[AlertDelivery, asyncio.Future[AlertReceipt]]]:
        """The queued deliveries that fit the series caps, in order; the others are
        answered with `TooManySeries` and never journaled. Earlier deliveries of the
        same write count against later ones."""
        kept: list[tuple[AlertDelivery, asyncio.Future[AlertReceipt]]] = []
        pending: dict[str, set[str]] = {}
        for delivery, cap, waiting in queued:
            if cap is not None and self._by_signals:
                verdict = assess_series(
                    self._by_signals, delivery.alerts, self.held_series, cap, pending
                )
                if not verdict.allowed:
                    log.warning("alerts_refused", group=delivery.group_key, reason=verdict.reason)
                    if not waiting.done():
                        waiting.set_exception(TooManySeries(verdict))
                    continue
                for name, series in verdict.added:
                    pending.setdefault(name, set()).add(series)
            kept.append((delivery, waiting))
        return kept

    def reload(self, now: float | None = None) -> None:
        """Hold the journal's firing alerts anew: those another sidecar on the same journal
        took in, and without those it settled. A daemon asks every tick (`now`) and reads at
        most once a `RELOAD_EVERY_SECONDS`: it is every firing row, and a tick can be 50 ms."""
        if self._queue:  # a write of ours is under way: its firings land next tick
            return
        if now is not None:
            if now - self._reloaded_at < RELOAD_EVERY_SECONDS:
                return
            self._reloaded_at = now
        try:
            firing = self.journal.firing_alerts()
        except Exception as error:  # the journal is away: the firings held still count
            log.warning("alerts_not_reloaded", error=str(error))
            return
        self._firing = FiringView()
        self.held_series = {s.name: {} for s in self._by_signals}
        for alert in firing:
            self._hold(alert)

    def _hold(self, alert: Alert) -> None:
        if self._firing.hold(alert):
            self._count(alert, 1)

    def _release(self, key: tuple[str, float]) -> None:
        alert = self._firing.release(key)
        if alert is not None:
            self._count(alert, -1)

    def _count(self, alert: Alert, change: int) -> None:
        """Keep `held_series` in step with the firings held (a series with none is gone)."""
        if not self._by_signals or not alert.firing:
            return
        labels = dict(alert.labels)
        for signal in self._by_signals:
            if not matches_labels(signal, labels):
                continue
            counts = self.held_series[signal.name]
            series = labels[str(signal.by)]
            left = counts.get(series, 0) + change
            if left > 0:
                counts[series] = left
            else:
                counts.pop(series, None)

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
                self._release(key)
            log.info("alerts_settled", alerts=len(keys))
