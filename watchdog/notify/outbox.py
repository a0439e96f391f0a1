"""The outbox: pages journaled when an incident moves, delivered by a worker that retries.

`Outbox.pages_for_move` runs inside the decision tick: it decides (routing) and
composes (page) the rows of a page without writing, so the incident move can
commit them in its own transaction (`incident_moved` writes them on their own).
`Outbox.run` is the daemon's asyncio task that sends due rows, marks a row sent
only after the vendor accepted it, and keeps the retry state in the row, so
pending pages survive a restart and a crash between sending and marking costs at
most one resend, which the vendor folds by its dedup key or alias (the
incident's own, `<stack>/<id>`). A row given up hands its page to the routed
channels not yet on it, or is journaled lost, in the same write. In dry-run,
the pages this daemon decides are journaled as 'dry_run' and never sent; rows
decided for real (by an earlier daemon, or about steps that really ran) are still
delivered: a dry run must never silence a page about real damage.

Each pass claims the rows it sends (`Journal.claim_deliveries`) under the outbox's
`holder` name, so daemons sharing a journal never send one page twice; claims and their
lease are explained in `watchdog.notify.attempt`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import httpx
import structlog

from watchdog.metrics import CHANNELS, Metrics
from watchdog.model import Plan, Severity
from watchdog.notify.attempt import claim_lease, default_holder, exited_here, send_once
from watchdog.notify.channels import Channel
from watchdog.notify.fallback import PageOnTimeline, lost_summary, page_of
from watchdog.notify.page import compose_page
from watchdog.notify.retry import RetryPolicy, backoff, redact
from watchdog.notify.routing import (
    PageDecision,
    decide_escalation_page,
    decide_fallback,
    decide_pages,
)
from watchdog.policy.schema import NotifySpec
from watchdog.store.journal import Journal
from watchdog.store.records import ClaimLost, DeliveryRecord, IncidentRecord, PageRows

log = structlog.get_logger("watchdog.notify")
LIVE = ("pending", "sent")
"""Row statuses of a page that has reached, or may still reach, its channel."""


class Outbox:
    """Journals pages for incident moves, and sends them with retries until delivered.

    `holder` names it on the rows it claims (default `host#pid`, unique per process); a
    claim lasts `retry.timeout_seconds` + `CLAIM_MARGIN_S` (10 s): `attempt.claim_lease`.
    """

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
        dry_run: bool = False,
        approval_expires: float | None = None,
        holder: str | None = None,
    ) -> None:
        self.spec = spec
        self.holder = holder or default_holder()
        self.approval_expires = approval_expires  # the page's "approve by" time
        self.stack = stack
        self.journal = journal
        self.channels = dict(channels)
        self.metrics = metrics
        self.client = client
        self.clock = clock
        self.public_url = public_url
        self.retry = retry
        self.poll_seconds = poll_seconds
        self.dry_run = dry_run
        self._wake = asyncio.Event()
        routed = {channel for route in spec.routes.values() for channel in route}
        for missing in sorted(routed - set(self.channels)):
            log.info("channel_off", channel=missing, reason="routed by the policy, no credential")

    # ---- the tick side: decide, compose, journal ----------------------------

    def incident_moved(self, incident_id: int, from_state: str, to_state: str, reason: str) -> None:
        """Journal the pages this move calls for; the worker sends them."""
        self._enqueue(incident_id, self.pages_for_move(incident_id, from_state, to_state, reason))

    def incident_escalated(self, incident_id: int, from_severity: Severity) -> None:
        """Journal the page a rise in severity calls for (channels not yet paged)."""
        self._enqueue(incident_id, self.pages_for_escalation(incident_id, from_severity))

    def pages_for_move(
        self, incident_id: int, from_state: str, to_state: str, reason: str,
        plan: Plan | None = None,
    ) -> PageRows | None:
        """The page this move calls for, composed from the journal; writes nothing.

        For the move's own transaction: compose before or after the state is written
        (the page shows the incident in `to_state` and the `plan` committed with the
        move, or else the journaled one), write the result with
        `watchdog.store.sqlite.insert_page_rows` in that transaction, then `wake()`.
        """
        return self._compose(
            incident_id,
            lambda incident: replace(incident, state=to_state),
            lambda incident, triggered: decide_pages(
                self.spec,
                severity=incident.severity, scenario=incident.scenario,
                from_state=from_state, to_state=to_state,
                move_reason=reason,
                triggered=triggered,
            ),
            plan,
        )

    def pages_for_escalation(
        self, incident_id: int, from_severity: Severity, *, to_severity: Severity | None = None
    ) -> PageRows | None:
        """The page a rise in severity from `from_severity` calls for; writes nothing.

        The new severity is the journaled one, or `to_severity` when the caller composes
        the page before writing the severity (in the same transaction).
        """
        return self._compose(
            incident_id,
            lambda incident: replace(incident, severity=to_severity or incident.severity),
            lambda incident, triggered: decide_escalation_page(
                self.spec,
                from_severity=from_severity,
                to_severity=incident.severity, scenario=incident.scenario,
                triggered=triggered,
            ),
        )

    def wake(self) -> None:
        """Start a delivery pass now, not at the next poll (after pages were written)."""
        self._wake.set()

    def _compose(
        self,
        incident_id: int,
        moved: Callable[[IncidentRecord], IncidentRecord],
        decide: Callable[[IncidentRecord, set[str]], PageDecision | None],
        plan: Plan | None = None,
    ) -> PageRows | None:
        """Decide and compose the page about the incident as `moved` leaves it."""
        if not self.channels:  # no credential set: this daemon pages nobody
            return None
        incident = moved(self.journal.incident(incident_id))
        deliveries = self.journal.deliveries(incident_id)
        # A dry run's "would page" counts as paged within the dry run, never for real.
        paged = ("pending", "sent", "dry_run") if self.dry_run else ("pending", "sent")
        triggered = {d.channel for d in deliveries if d.event == "trigger" and d.status in paged}
        decision = decide(incident, triggered)
        if decision is None:
            return None
        return self._rows(incident, deliveries, decision, decision.reason, plan)

    def _rows(
        self,
        incident: IncidentRecord,
        deliveries: Sequence[DeliveryRecord],
        decision: PageDecision,
        why_now: str,
        plan: Plan | None = None,
    ) -> PageRows | None:
        """The bodies of the page `decision` calls for, on the channels this daemon has."""
        channels = [self.channels[c] for c in decision.channels if c in self.channels]
        if not channels:
            return None
        journal = self.journal
        page = compose_page(
            event=decision.event,
            why_now=why_now,
            stack=self.stack,
            incident=incident,
            findings=journal.findings(incident.id),
            plan=plan if plan is not None else journal.plan(incident.id),
            steps=journal.steps(incident.id),
            approvals=journal.approvals(incident.id),
            timeline=journal.timeline(incident.id),
            public_url=self.public_url,
            at=self.clock(),
            # Every page of one incident folds under the key it was first paged with.
            dedup_key=deliveries[0].dedup_key if deliveries else None,
            approval_expires=self.approval_expires,
            contacts=decision.contacts, responders=decision.responders,
        )
        bodies = {c.name: body for c in channels if (body := c.body(page)) is not None}
        if not bodies:
            return None
        status = "dry_run" if self.dry_run else "pending"
        return PageRows(decision.event, page.dedup_key, bodies, why_now, status)

    def _enqueue(self, incident_id: int, rows: PageRows | None) -> None:
        if rows is None:
            return
        written = self.journal.enqueue_page(incident_id, rows, at=self.clock())
        self.queued(incident_id, rows, written)

    def queued(self, incident_id: int, rows: PageRows, deliveries: list[int] | None = None) -> None:
        """Log a page just journaled (alone, or with its incident's move) and send it now."""
        log.info(
            "page_dry_run" if rows.status == "dry_run" else "page_queued",
            incident=incident_id,
            channels=list(rows.bodies),
            page_event=rows.event,
            deliveries=deliveries,
            reason=rows.reason,
        )
        self._count_pending()
        self.wake()

    # ---- the worker side: send, classify, record ----------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Send due pages until `stop`; a send in flight finishes first. Rows claimed by a
        process of this host that exited (a crash, then this restart) are taken at once."""
        self._count_pending()
        with contextlib.suppress(Exception):  # else their leases are waited out
            if freed := self.journal.release_claims(lambda h: exited_here(h, self.holder)):
                log.info("outbox_claims_released", holders=freed)
        if self.dry_run:
            log.info(
                "outbox_dry_run",
                pending=self.journal.pending_deliveries(),
                reason="--dry-run: this daemon's pages are journaled as dry_run; only pages "
                "about what really ran are sent",
            )
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
        """One pass: every due row (the oldest pending one per incident and channel) that
        this outbox could claim, no other daemon on the journal holding it.

        'dry_run' rows are never due; a pending row was decided for real and goes out.
        """
        lease = claim_lease(self.retry)  # the send timeout + CLAIM_MARGIN_S: see notify.attempt
        due = self.journal.claim_deliveries(self.holder, self.clock(), lease=lease)
        if due:  # every send of the pass ends before the pass does, even when one fails
            for failed in await asyncio.gather(*map(self._deliver, due), return_exceptions=True):
                if isinstance(failed, BaseException):
                    raise failed
            self._count_pending()
        return len(due)

    async def _deliver(self, delivery: DeliveryRecord) -> None:
        try:
            await self._attempt(delivery)
        except ClaimLost as lost:  # our lease ran out and another daemon took the row
            log.warning("page_claim_lost", incident=delivery.incident_id, reason=str(lost))

    async def _attempt(self, delivery: DeliveryRecord) -> None:
        channel = self.channels.get(delivery.channel)
        if channel is None:
            missing = f"no {delivery.channel} credential in this daemon's settings"
            self._give_up(delivery, missing, why=f"refused: {missing}")
            return
        verdict = await send_once(self.client, channel, delivery, self.retry, self.clock)
        reason = redact(verdict.reason, channel.secrets())
        now = self.clock()
        attempts = delivery.attempts + 1
        if verdict.outcome == "sent":
            self.journal.delivery_sent(
                delivery.id, at=now, summary=f"{reason} on try {attempts}", holder=self.holder
            )
            self._record("sent", delivery, attempts=attempts)
        elif verdict.outcome == "retry" and attempts < self.retry.max_attempts:
            wait = verdict.delay
            if wait is None:
                wait = backoff(attempts, base=self.retry.base_seconds, cap=self.retry.cap_seconds)
            self.journal.delivery_retry(
                delivery.id, at=now, next_at=now + wait, error=reason, holder=self.holder
            )
            self._record(
                "retried", delivery, attempts=attempts, retry_in_seconds=wait, error=reason
            )
        elif verdict.outcome == "rejected":
            self._give_up(delivery, reason, why=f"refused: {reason}")
        else:
            self._give_up(
                delivery,
                f"gave up after {attempts} tries: {reason}",
                why=f"gave up: {attempts} tries, the last: {reason}",
            )

    def _give_up(self, delivery: DeliveryRecord, error: str, *, why: str) -> None:
        """Give a row up and, in the same write, hand its page to the routed channels not
        yet on it, or journal it lost: a page is never dropped silently."""
        fallback: PageRows | None = None
        page: PageOnTimeline | None = None
        lost = ""
        try:
            incident = self.journal.incident(delivery.incident_id)
            deliveries = self.journal.deliveries(delivery.incident_id)
            page = page_of(self.journal.timeline(delivery.incident_id), delivery.id)
            decision = decide_fallback(
                self.spec,
                severity=incident.severity,
                event=delivery.event,
                failed=delivery.channel,
                why=why,
                on_page=page.channels if page is not None else (delivery.channel,),
                available=self.channels,
                incident_open=incident.is_open,
            )
            if decision is not None:
                said = f" (the page: {page.reason})" if page is not None else ""
                fallback = self._rows(incident, deliveries, decision, decision.reason + said)
            if fallback is None:
                on_page = set(page.delivery_ids) if page is not None else set()
                lost = lost_summary(
                    channel=delivery.channel,
                    event=delivery.event,
                    error=error,
                    severity=incident.severity,
                    incident_open=incident.is_open,
                    reached={
                        d.channel
                        for d in deliveries
                        if d.id in on_page and d.id != delivery.id and d.status in LIVE
                    },
                )
        except Exception as failure:  # the page must still be given up, and said lost
            log.exception("page_fallback_failed", incident=delivery.incident_id)
            fallback = None
            lost = f"{delivery.channel} {delivery.event} lost: {error}; no fallback: {failure}"
        ids = self.journal.delivery_rejected(
            delivery.id,
            at=self.clock(),
            error=error,
            fallback=fallback,
            fallback_of=page.event_id if page is not None and fallback is not None else None,
            lost=lost,
            holder=self.holder,
        )
        self._record("rejected", delivery, error=error)
        if fallback is not None:
            self.metrics.page_fallbacks.labels(delivery.channel).inc()
            log.warning(
                "page_fallback",
                incident=delivery.incident_id,
                channel=delivery.channel,
                to=list(fallback.bodies),
                deliveries=ids,
                reason=fallback.reason,
            )
            self.wake()
        else:
            self.metrics.pages_lost.labels(delivery.channel).inc()
            log.error(
                "page_lost",
                incident=delivery.incident_id,
                channel=delivery.channel,
                page_event=delivery.event,
                lost=lost,
            )

    def _record(self, outcome: str, delivery: DeliveryRecord, **fields: object) -> None:
        """Count an attempt's outcome and log one line for it (an error when given up)."""
        self.metrics.pages.labels(delivery.channel, outcome).inc()
        level = {"sent": log.info, "retried": log.warning}.get(outcome, log.error)
        level(f"page_{outcome}", incident=delivery.incident_id, channel=delivery.channel,
              page_event=delivery.event, **fields)

    def _count_pending(self) -> None:
        pending = self.journal.pending_deliveries()
        for channel in CHANNELS:
            self.metrics.outbox_pending.labels(channel).set(pending.get(channel, 0))
