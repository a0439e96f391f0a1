"""The outbox: pages journaled when an incident moves, delivered by a worker that retries.

`Outbox.incident_moved` runs inside the decision tick: it decides (routing),
composes (page), and journals one 'pending' row per channel before anything is
sent. `Outbox.run` is the daemon's asyncio task that sends due rows, marks a row
sent only after the vendor accepted it, and keeps the retry state in the row, so
pending pages survive a restart and a crash between sending and marking costs at
most one resend, which the vendor folds by its dedup key or alias.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import structlog

from watchdog.metrics import CHANNELS, Metrics
from watchdog.model import Severity
from watchdog.notify.channels import Channel
from watchdog.notify.page import compose_page
from watchdog.notify.retry import Verdict, backoff, classify, redact
from watchdog.notify.routing import PageDecision, decide_escalation_page, decide_pages
from watchdog.notify.vendors import dedup_key
from watchdog.policy.schema import NotifySpec
from watchdog.store.journal import Journal
from watchdog.store.records import DeliveryRecord, IncidentRecord, PageRows

log = structlog.get_logger("watchdog.notify")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: first wait, longest wait, per-attempt timeout, attempts before giving up.

    The values come from the settings (WATCHDOG_NOTIFY_*), which hold the defaults.
    """

    base_seconds: float
    cap_seconds: float
    timeout_seconds: float
    max_attempts: int


class Outbox:
    """Journals pages for incident moves, and sends them with retries until delivered."""

    def __init__(
        self,
        *,
        spec: NotifySpec,
        stack: str,
        journal: Journal,
        channels: Mapping[str, Channel],
        metrics: Metrics,
        client: httpx.AsyncClient,
        clock: Callable[[], float],
        public_url: str,
        retry: RetryPolicy,
        poll_seconds: float = 0.5,
    ) -> None:
        self.spec = spec
        self.stack = stack
        self.journal = journal
        self.channels = dict(channels)
        self.metrics = metrics
        self.client = client
        self.clock = clock
        self.public_url = public_url
        self.retry = retry
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        routed = {channel for route in spec.routes.values() for channel in route}
        for missing in sorted(routed - set(self.channels)):
            log.info("channel_off", channel=missing, reason="routed by the policy, no credential")

    # ---- the tick side: decide, compose, journal ----------------------------

    def incident_moved(self, incident_id: int, from_state: str, to_state: str, reason: str) -> None:
        """Journal the pages this move calls for; the worker sends them."""
        self._queue(
            incident_id,
            lambda incident, triggered: decide_pages(
                self.spec,
                severity=incident.severity,
                from_state=from_state,
                to_state=to_state,
                move_reason=reason,
                triggered=triggered,
            ),
        )

    def incident_escalated(self, incident_id: int, from_severity: Severity) -> None:
        """Journal the page a rise in severity calls for (channels not yet paged)."""
        self._queue(
            incident_id,
            lambda incident, triggered: decide_escalation_page(
                self.spec,
                from_severity=from_severity,
                to_severity=incident.severity,
                triggered=triggered,
            ),
        )

    def pages_for_move(
        self, incident_id: int, from_state: str, to_state: str, reason: str
    ) -> PageRows | None:
        """The page a move calls for, composed but not written (the move writes it)."""
        return self._compose(
            incident_id,
            lambda incident, triggered: decide_pages(
                self.spec,
                severity=incident.severity,
                from_state=from_state,
                to_state=to_state,
                move_reason=reason,
                triggered=triggered,
            ),
        )

    def wake(self) -> None:
        """Send what was just journaled without waiting for the next poll."""
        self._count_pending()
        self._wake.set()

    def _queue(
        self,
        incident_id: int,
        decide: Callable[[IncidentRecord, set[str]], PageDecision | None],
    ) -> None:
        rows = self._compose(incident_id, decide)
        if rows is None:
            return
        deliveries = self.journal.enqueue_page(
            incident_id,
            event=rows.event,
            dedup_key=rows.dedup_key,
            bodies=rows.bodies,
            reason=rows.reason,
            at=self.clock(),
        )
        log.info(
            "page_queued",
            incident=incident_id,
            channels=list(rows.bodies),
            page_event=rows.event,
            deliveries=deliveries,
            reason=rows.reason,
        )
        self.wake()

    def _compose(
        self,
        incident_id: int,
        decide: Callable[[IncidentRecord, set[str]], PageDecision | None],
    ) -> PageRows | None:
        if not self.channels:  # no credential set: this daemon pages nobody
            return None
        journal = self.journal
        incident = journal.incident(incident_id)
        triggered = {
            d.channel
            for d in journal.deliveries(incident_id)
            if d.event == "trigger" and d.status != "rejected"
        }
        decision = decide(incident, triggered)
        if decision is None:
            return None
        channels = [self.channels[c] for c in decision.channels if c in self.channels]
        if not channels:
            return None
        page = compose_page(
            event=decision.event,
            why_now=decision.reason,
            stack=self.stack,
            incident=incident,
            findings=journal.findings(incident_id),
            plan=journal.plan(incident_id),
            steps=journal.steps(incident_id),
            approvals=journal.approvals(incident_id),
            timeline=journal.timeline(incident_id),
            public_url=self.public_url,
            at=self.clock(),
        )
        bodies = {c.name: body for c in channels if (body := c.body(page)) is not None}
        if not bodies:
            return None
        return PageRows(decision.event, dedup_key(page.key), bodies, decision.reason)

    # ---- the worker side: send, classify, record ----------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Send due pages until `stop`; a send in flight finishes first."""
        self._count_pending()
        while not stop.is_set():
            self._wake.clear()  # before the pass: a page queued during it wakes the next one
            try:
                await self.deliver_due()
            except Exception:  # the journal hiccupped: the rows stay pending, try again
                log.exception("outbox_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_or(stop), self.poll_seconds)

    async def _wake_or(self, stop: asyncio.Event) -> None:
        waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    async def deliver_due(self) -> int:
        """One pass: every due row (the oldest pending one per incident and channel)."""
        due = self.journal.due_deliveries(self.clock())
        if due:
            await asyncio.gather(*(self._deliver(d) for d in due))
            self._count_pending()
        return len(due)

    async def _deliver(self, delivery: DeliveryRecord) -> None:
        channel = self.channels.get(delivery.channel)
        if channel is None:
            self._reject(delivery, f"no {delivery.channel} credential in this daemon's settings")
            return
        verdict = await self._send(channel, delivery)
        reason = redact(verdict.reason, channel.secrets())
        now = self.clock()
        attempts = delivery.attempts + 1
        if verdict.outcome == "sent":
            self.journal.delivery_sent(delivery.id, at=now, summary=f"{reason} on try {attempts}")
            self._record("sent", delivery, attempts=attempts)
        elif verdict.outcome == "retry" and attempts < self.retry.max_attempts:
            wait = verdict.delay
            if wait is None:
                wait = backoff(attempts, base=self.retry.base_seconds, cap=self.retry.cap_seconds)
            self.journal.delivery_retry(delivery.id, at=now, next_at=now + wait, error=reason)
            self._record(
                "retried", delivery, attempts=attempts, retry_in_seconds=wait, error=reason
            )
        else:
            gave_up = "" if verdict.outcome == "rejected" else f"gave up after {attempts} tries: "
            self._reject(delivery, gave_up + reason)

    async def _send(self, channel: Channel, delivery: DeliveryRecord) -> Verdict:
        try:
            request = channel.request(delivery)
            response = await self.client.post(
                request.url,
                json=request.json,
                headers=request.headers,
                timeout=self.retry.timeout_seconds,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            return Verdict("rejected", f"the {channel.name} URL is not usable: {error}")
        except httpx.HTTPError as error:
            return Verdict("retry", f"network error: {type(error).__name__}: {error}")
        return classify(
            response.status_code,
            response.text,
            retry_after=response.headers.get("Retry-After"),
            now=self.clock(),
        )

    def _reject(self, delivery: DeliveryRecord, reason: str) -> None:
        self.journal.delivery_rejected(delivery.id, at=self.clock(), error=reason)
        self._record("rejected", delivery, error=reason)

    def _record(self, outcome: str, delivery: DeliveryRecord, **fields: object) -> None:
        """Count an attempt's outcome and log one line for it (an error when given up)."""
        self.metrics.pages.labels(delivery.channel, outcome).inc()
        level = {"sent": log.info, "retried": log.warning}.get(outcome, log.error)
        level(
            f"page_{outcome}",
            incident=delivery.incident_id,
            channel=delivery.channel,
            page_event=delivery.event,
            **fields,
        )

    def _count_pending(self) -> None:
        pending = self.journal.pending_deliveries()
        for channel in CHANNELS:
            self.metrics.outbox_pending.labels(channel).set(pending.get(channel, 0))
