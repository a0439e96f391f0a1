"""The outbox against strict local fakes of PagerDuty, Opsgenie, Slack and a webhook.

Each fake checks every payload against VENDOR-FACTS.md and refuses what its
vendor would refuse, so "accepted" here means the vendor's rules were met.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from tests.integration.notify_stage import (
    Vendors,
    drain,
    open_p1,
    outbox_for,
    paged_p1,
)
from watchdog.metrics import Metrics
from watchdog.model import Severity
from watchdog.notify.retry import RetryPolicy
from watchdog.store.journal import Journal


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as opened:
        yield opened


def move_to_resolved(journal: Journal, incident: int) -> None:
    journal.set_state(incident, state="resolved", at=2_000.0, reason="checklist held", closed=True)


@pytest.mark.asyncio
async def test_every_vendor_accepts_the_trigger_and_the_resolve(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    outbox, incident = paged_p1(fakes, journal, client)
    await drain(outbox, journal)

    (trigger,) = fakes.pagerduty.events("trigger")
    assert trigger["dedup_key"] == f"songnodes/{incident}"
    payload = trigger["payload"]
    assert payload["severity"] == "error"
    assert payload["summary"].startswith("[P1] songnodes: dlq_overflow (awaiting approval)")
    details = payload["custom_details"]
    assert "DLQ depth 7200 > 5000" in details["seen"][0]
    assert "rabbitmq queue enrichment.dlq: 7200 messages" in details["seen"][0]
    assert details["plan"]["title"] == "Restart the enrichment workers that dead-letter"
    assert "approval by one person with role lead" in details["awaiting"]
    assert details["impact"] == [
        "messages already dead-lettered stay for dlq-manager to replay",
        "data loss: none",
    ]
    assert details["link"] == f"http://127.0.0.1:9095/ui/incidents/{incident}"
    assert details["approve"] == f"watchdog approve {incident} --as NAME"
    assert trigger["links"] == [
        {"href": details["link"], "text": "incident page: approve or reject the plan"}
    ]

    (alert,) = fakes.opsgenie.creates()
    assert alert["alias"] == f"songnodes/{incident}" and alert["priority"] == "P2"
    assert alert["responders"] == [{"type": "team", "name": "songnodes-oncall"}]
    assert f"watchdog reject {incident} --as NAME" in alert["description"]
    (message,) = fakes.slack.messages()
    assert message["text"] and message["blocks"][0]["type"] == "header"
    assert any("How to approve" in b["text"]["text"] for b in message["blocks"][1:])
    (hook,) = fakes.webhook.events()
    assert hook["event"] == "trigger" and hook["incident"]["severity"] == "P1"

    move_to_resolved(journal, incident)
    outbox.incident_moved(incident, "verifying", "resolved", "checklist held")
    await drain(outbox, journal)
    assert fakes.pagerduty.events("resolve") == [
        {
            "event_action": "resolve",
            "dedup_key": f"songnodes/{incident}",
            "routing_key": fakes_routing_key(),
        }
    ]
    assert fakes.opsgenie.closes() == [f"songnodes/{incident}"]
    assert fakes.opsgenie.open_aliases == set()
    assert [m["blocks"][0]["text"]["text"] for m in fakes.slack.messages()][-1].endswith(
        "(resolved)"
    )
    assert [e["event"] for e in fakes.webhook.events()] == ["trigger", "resolve"]
    sent = [d for d in journal.deliveries(incident) if d.status == "sent"]
    assert len(sent) == 8
    kinds = [e.kind for e in journal.timeline(incident)]
    assert kinds.count("page_sent") == 8


def fakes_routing_key() -> str:
    from tests.integration.notify_stage import ROUTING_KEY

    return ROUTING_KEY


@pytest.mark.asyncio
async def test_a_receiver_failing_three_times_still_gets_the_page_and_order_is_kept(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    metrics = Metrics()
    fakes.pagerduty.fail_next(2, status=500)
    fakes.pagerduty.fail_next(1, status=429, retry_after="0")
    outbox, incident = paged_p1(fakes, journal, client, metrics=metrics)
    await outbox.deliver_due()  # the first try fails; the resolve is queued behind it
    move_to_resolved(journal, incident)
    outbox.incident_moved(incident, "verifying", "resolved", "checklist held")
    await drain(outbox, journal)

    statuses = [r.status for r in fakes.pagerduty.received]
    assert statuses == [500, 500, 429, 202, 202]
    assert [e["event_action"] for e in fakes.pagerduty.events()] == ["trigger", "resolve"]
    trigger = next(d for d in journal.deliveries(incident) if d.channel == "pagerduty")
    assert (trigger.status, trigger.attempts) == ("sent", 4)
    assert metrics.pages.labels("pagerduty", "retried")._value.get() == 3
    assert metrics.pages.labels("pagerduty", "sent")._value.get() == 2
    assert metrics.outbox_pending.labels("pagerduty")._value.get() == 0


@pytest.mark.asyncio
async def test_retry_after_is_honoured(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    now = [5_000.0]
    fakes.slack.fail_next(1, status=429, retry_after="7")
    outbox, incident = paged_p1(fakes, journal, client, clock=lambda: now[0])
    await outbox.deliver_due()
    slack = next(d for d in journal.deliveries(incident) if d.channel == "slack")
    assert (slack.status, slack.attempts, slack.next_at) == ("pending", 1, 5_007.0)
    assert "HTTP 429" in slack.last_error
    now[0] = 5_006.9
    assert await outbox.deliver_due() == 0  # not due before the vendor's Retry-After
    now[0] = 5_007.0
    assert await outbox.deliver_due() == 1
    assert len(fakes.slack.messages()) == 1


@pytest.mark.asyncio
async def test_a_400_is_not_retried_and_is_surfaced(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    metrics = Metrics()
    fakes.pagerduty.reject_next(1)
    with capture_logs() as logs:
        outbox, incident = paged_p1(fakes, journal, client, metrics=metrics)
        await drain(outbox, journal)
    assert [r.status for r in fakes.pagerduty.received] == [400]
    row = next(d for d in journal.deliveries(incident) if d.channel == "pagerduty")
    assert (row.status, row.attempts) == ("rejected", 1)
    assert "HTTP 400" in row.last_error and "invalid event" in row.last_error
    (event,) = [e for e in journal.timeline(incident) if e.kind == "page_rejected"]
    assert event.summary.startswith("pagerduty trigger not delivered: HTTP 400")
    (line,) = [entry for entry in logs if entry["event"] == "page_rejected"]
    assert line["channel"] == "pagerduty" and "HTTP 400" in line["error"]
    assert metrics.pages.labels("pagerduty", "rejected")._value.get() == 1
    # The other channels are not held up by the refusal.
    assert len(fakes.slack.messages()) == len(fakes.webhook.events()) == 1


@pytest.mark.asyncio
async def test_no_secret_in_the_journal_file_or_the_logs(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fakes.opsgenie.fail_next(1, status=503)
    fakes.webhook.reject_next(1)
    with capture_logs() as logs:
        outbox, incident = paged_p1(fakes, journal, client)
        await drain(outbox, journal)
        move_to_resolved(journal, incident)
        outbox.incident_moved(incident, "verifying", "resolved", "checklist held")
        await drain(outbox, journal)
    # Every channel did receive its secret, so the check below is not vacuous.
    assert fakes.pagerduty.accepted[0].json()["routing_key"] in fakes.secrets()
    assert fakes.opsgenie.accepted[0].headers["authorization"].endswith(fakes.secrets()[1])
    journal.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("journal.db*"))
    text = repr(logs)
    assert len(logs) >= 8
    for secret in fakes.secrets():
        assert secret.encode() not in stored, f"{secret!r} is in the journal file"
        assert secret not in text, f"{secret!r} is in a log line"


@pytest.mark.asyncio
async def test_an_approval_acknowledges_the_page_where_the_vendor_has_that(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    outbox, incident = paged_p1(fakes, journal, client)
    journal.record_approval(incident, at=1_500.0, person="alice", role="lead", decision="approve")
    journal.set_state(incident, state="approved", at=1_500.0, reason="approved by alice (lead)")
    outbox.incident_moved(incident, "awaiting_approval", "approved", "approved by alice (lead)")
    await drain(outbox, journal)
    assert [e["event_action"] for e in fakes.pagerduty.events()] == ["trigger", "acknowledge"]
    assert fakes.pagerduty.events("acknowledge")[0]["dedup_key"] == f"songnodes/{incident}"
    assert len(fakes.opsgenie.accepted) == 1  # Opsgenie acknowledges per user: not sent
    (_, acked) = fakes.webhook.events()
    assert acked["event"] == "acknowledge"
    assert acked["incident"]["approvals"] == ["alice (lead) approve"]
    assert fakes.slack.messages()[-1]["blocks"][0]["text"]["text"].endswith("(acknowledged)")


@pytest.mark.asyncio
async def test_a_rise_in_severity_pages_the_channels_the_new_severity_adds(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    outbox = outbox_for(fakes, journal, client)
    incident = open_p1(journal)
    journal.set_severity(
        incident, severity=Severity.P2, scenario="dlq_overflow", at=1.0, reason="test setup"
    )
    outbox.incident_moved(incident, "triaged", "awaiting_approval", "needs the team")
    await drain(outbox, journal)
    assert (len(fakes.slack.messages()), len(fakes.pagerduty.accepted)) == (1, 0)
    journal.set_severity(
        incident, severity=Severity.P1, scenario="dlq_overflow", at=2.0, reason="DLQ > 5000"
    )
    outbox.incident_escalated(incident, Severity.P2)
    await drain(outbox, journal)
    (trigger,) = fakes.pagerduty.events("trigger")
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"].endswith("escalated from P2 to P1")
    assert (
        "P2 dlq_overflow → P1 dlq_overflow: DLQ > 5000"
        in (trigger["payload"]["custom_details"]["severity_why"])
    )
    assert len(fakes.opsgenie.creates()) == 1
    assert len(fakes.slack.messages()) == 1  # already paged at P2: not paged twice


@pytest.mark.asyncio
async def test_a_page_that_never_gets_through_is_given_up_loudly(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    fakes.opsgenie.fail_next(5, status=502)
    retry = RetryPolicy(base_seconds=0.01, cap_seconds=0.01, timeout_seconds=5, max_attempts=3)
    outbox, incident = paged_p1(fakes, journal, client, retry=retry)
    await drain(outbox, journal)
    row = next(d for d in journal.deliveries(incident) if d.channel == "opsgenie")
    assert (row.status, row.attempts) == ("rejected", 3)
    assert row.last_error.startswith("gave up after 3 tries: HTTP 502")
    assert [r.status for r in fakes.opsgenie.received] == [502, 502, 502]
    # Every routed channel was already on the page: nothing to fall back to, so it is lost.
    (lost,) = [e for e in journal.timeline(incident) if e.kind == "page_lost"]
    assert lost.summary.startswith("opsgenie trigger lost: gave up after 3 tries: HTTP 502")
