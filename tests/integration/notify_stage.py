"""The four fake vendors and an outbox wired to them, for the notifier tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from tests.fakes.vendors import FakeOpsgenie, FakePagerDuty, FakeSlack, FakeWebhook
from watchdog.metrics import Metrics
from watchdog.model import AuthMode, Authorization, Check, Finding, Plan, Risk, Severity, Step
from watchdog.notify.channels import Opsgenie, PagerDuty, Slack, Webhook
from watchdog.notify.outbox import Outbox
from watchdog.notify.retry import RetryPolicy
from watchdog.policy.schema import NotifySpec, Responder
from watchdog.store.journal import Journal

ROUTING_KEY = "R0ut1ngK3yS3cr3t0123456789abcdef"
GENIE_KEY = "g3n1e-k3y-5ecr3t-0000-1111"
WEBHOOK_TOKEN = "w3bh00k-b3ar3r-t0k3n-s3cr3t"
SLACK_SECRET = "Xs3cr3tW3bh00kP4th"


@dataclass
class Vendors:
    pagerduty: FakePagerDuty
    opsgenie: FakeOpsgenie
    slack: FakeSlack
    webhook: FakeWebhook

    def environment(self) -> dict[str, str]:
        """WATCHDOG_* settings that point a daemon's channels at these fakes."""
        return {
            "WATCHDOG_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "WATCHDOG_PAGERDUTY_URL": self.pagerduty.url,
            "WATCHDOG_OPSGENIE_API_KEY": GENIE_KEY,
            "WATCHDOG_OPSGENIE_URL": self.opsgenie.url,
            "WATCHDOG_SLACK_WEBHOOK_URL": self.slack.webhook_url,
            "WATCHDOG_WEBHOOK_URL": self.webhook.hook_url,
            "WATCHDOG_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        }

    def secrets(self) -> list[str]:
        return [ROUTING_KEY, GENIE_KEY, WEBHOOK_TOKEN, SLACK_SECRET, self.webhook.hook_url]


@contextmanager
def vendors() -> Iterator[Vendors]:
    with ExitStack() as stack:
        yield Vendors(
            stack.enter_context(FakePagerDuty(ROUTING_KEY)),
            stack.enter_context(FakeOpsgenie(GENIE_KEY)),
            stack.enter_context(FakeSlack(f"/services/T0WATCH/B0DOG/{SLACK_SECRET}")),
            stack.enter_context(FakeWebhook(WEBHOOK_TOKEN)),
        )


def outbox_for(
    fakes: Vendors,
    journal: Journal,
    client: httpx.AsyncClient,
    *,
    metrics: Metrics | None = None,
    clock: object = None,
    retry: RetryPolicy | None = None,
    spec: NotifySpec | None = None,
    genie_key: str = GENIE_KEY,
    dry_run: bool = False,
    holder: str | None = None,
) -> Outbox:
    """An outbox on the four fakes; `genie_key` other than the fake's makes Opsgenie answer 401."""
    import time

    return Outbox(
        spec=spec
        or NotifySpec(opsgenie_responders=[Responder(type="team", name="songnodes-oncall")]),
        stack="songnodes",
        journal=journal,
        channels={
            "pagerduty": PagerDuty(SecretStr(ROUTING_KEY), fakes.pagerduty.url),
            "opsgenie": Opsgenie(
                SecretStr(genie_key),
                fakes.opsgenie.url,
                (Responder(type="team", name="songnodes-oncall"),),
            ),
            "slack": Slack(SecretStr(fakes.slack.webhook_url)),
            "webhook": Webhook(SecretStr(fakes.webhook.hook_url), SecretStr(WEBHOOK_TOKEN)),
        },
        metrics=metrics or Metrics(),
        client=client,
        clock=clock or time.time,  # type: ignore[arg-type]
        public_url="http://127.0.0.1:9095",
        retry=retry
        or RetryPolicy(base_seconds=0.05, cap_seconds=0.2, timeout_seconds=5, max_attempts=50),
        poll_seconds=0.05,
        dry_run=dry_run,
        holder=holder,
    )


FINDING = Finding(
    rule="dlq-overflow",
    signal="dlq_depth",
    series="",
    severity=Severity.P1,
    scenario="dlq_overflow",
    group="dlq",
    subject="",
    since=1_000.0,
    reason="P1 (runbook: P1: DLQ overflow (> 5000 messages)): DLQ depth 7200 > 5000 for 10 s",
    evidence=("rabbitmq queue enrichment.dlq: 7200 messages", "growing 300/min"),
)

PLAN = Plan(
    scenario="dlq_overflow",
    title="Restart the enrichment workers that dead-letter",
    steps=(Step("restart the enrichment workers", "service.restart", Risk.RISKY),),
    checklist=(Check("DLQ depth below 100", "dlq_depth", "<", 100),),
    verify_for_seconds=20,
    verify_timeout_seconds=600,
    authorization=Authorization(
        AuthMode.APPROVAL, "runbook: P1 needs engineering lead approval", "lead", 1
    ),
    reason="DLQ depth 7200 > 5000",
    impact=("messages already dead-lettered stay for dlq-manager to replay", "data loss: none"),
)


def open_p1(journal: Journal, at: float = 1_000.0, *, key: str = "dlq") -> int:
    """A P1 DLQ overflow whose plan waits for a lead, as the daemon would journal it."""
    incident = journal.open_incident(
        key=key,
        severity=Severity.P1,
        scenario="dlq_overflow",
        subject="",
        state="detected",
        reason=FINDING.reason,
        at=at,
        findings=[FINDING],
    )
    journal.set_state(incident, state="triaged", at=at, reason=FINDING.reason)
    journal.save_plan(incident, PLAN, at=at)
    journal.set_state(incident, state="awaiting_approval", at=at, reason="needs a lead")
    return incident


def paged_p1(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient, **options: Any
) -> tuple[Outbox, int]:
    """A P1 waiting for a lead, and its trigger journaled by an outbox on the fakes."""
    outbox = outbox_for(fakes, journal, client, **options)
    incident = open_p1(journal)
    outbox.incident_moved(incident, "triaged", "awaiting_approval", "needs a lead")
    return outbox, incident


async def drain(outbox: Outbox, journal: Journal, seconds: float = 10.0) -> None:
    """Run the worker until nothing is pending (or fail saying what still is)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while journal.pending_deliveries():
        if loop.time() > deadline:
            raise AssertionError(f"still pending after {seconds} s: {journal.pending_deliveries()}")
        await outbox.deliver_due()
        await asyncio.sleep(0.02)
