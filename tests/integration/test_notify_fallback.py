"""Pages that cannot be lost or misrouted, against the strict local fakes.

A dedup key belongs to one incident; a vendor's Retry-After is capped; a channel
that refuses or gives up hands the page to the other routed channels, and a page
with no channel left is lost loudly; a dry-run outbox journals and sends nothing.
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
from watchdog.commands.runner import build_outbox
from watchdog.metrics import Metrics
from watchdog.model import Severity
from watchdog.notify.outbox import Outbox
from watchdog.notify.retry import RetryPolicy
from watchdog.policy.schema import NotifySpec
from watchdog.policyfile import load_policy
from watchdog.settings import Settings
from watchdog.store.journal import Journal

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as opened:
        yield opened


def resolve(outbox: Outbox, journal: Journal, incident: int, at: float = 2_000.0) -> None:
    journal.set_state(incident, state="resolved", at=at, reason="checklist held", closed=True)
    outbox.incident_moved(incident, "verifying", "resolved", "checklist held")


# ---- one dedup key per incident ---------------------------------------------------


@pytest.mark.asyncio
async def test_a_late_resolve_of_one_incident_leaves_the_next_incident_with_its_key_open(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    now = [1_000.0]
    outbox = outbox_for(fakes, journal, client, clock=lambda: now[0])
    first = open_p1(journal)
    outbox.incident_moved(first, "triaged", "awaiting_approval", "needs a lead")
    await outbox.deliver_due()
    # Incident 1 resolves while PagerDuty and Opsgenie have a short outage.
    fakes.pagerduty.fail_next(1, status=503)
    fakes.opsgenie.fail_next(1, status=503)
    resolve(outbox, journal, first)
    await outbox.deliver_due()
    # The same fault comes back at once: incident 2, with the same incident key, is paged
    # while incident 1's resolve still waits for its retry.
    second = open_p1(journal, at=1_001.0)
    assert journal.incident(second).key == journal.incident(first).key
    outbox.incident_moved(second, "triaged", "awaiting_approval", "needs a lead")
    await outbox.deliver_due()
    now[0] += 60
    await drain(outbox, journal)  # incident 1's late resolve and close go out now

    assert [e["event_action"] for e in fakes.pagerduty.events()] == [
        "trigger",
        "trigger",
        "resolve",
    ]
    assert fakes.pagerduty.open_keys == {f"songnodes/{second}"}
    assert fakes.opsgenie.open_aliases == {f"songnodes/{second}"}
    assert fakes.opsgenie.closes() == [f"songnodes/{first}"]
    assert {e["dedup_key"] for e in fakes.webhook.events()} == {
        f"songnodes/{first}",
        f"songnodes/{second}",
    }
    assert {d.dedup_key for d in journal.deliveries(second)} == {f"songnodes/{second}"}


# ---- Retry-After capped ---------------------------------------------------------


@pytest.mark.asyncio
async def test_a_retry_after_longer_than_the_cap_waits_the_cap_and_says_so(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    now = [5_000.0]
    fakes.slack.fail_next(1, status=429, retry_after="86400")
    retry = RetryPolicy(
        base_seconds=0.05,
        cap_seconds=0.2,
        timeout_seconds=5,
        max_attempts=50,
        retry_after_max_seconds=300,
    )
    with capture_logs() as logs:
        outbox, incident = paged_p1(fakes, journal, client, clock=lambda: now[0], retry=retry)
        await outbox.deliver_due()
    slack = next(d for d in journal.deliveries(incident) if d.channel == "slack")
    assert (slack.status, slack.attempts, slack.next_at) == ("pending", 1, 5_300.0)
    assert "Retry-After 86400 s capped at 300 s" in slack.last_error
    (line,) = [entry for entry in logs if entry["event"] == "page_retried"]
    assert line["retry_in_seconds"] == 300.0 and "capped at 300 s" in line["error"]
    now[0] = 5_300.0
    assert await outbox.deliver_due() == 1
    assert len(fakes.slack.messages()) == 1


def test_the_cap_is_a_setting_that_reaches_the_outbox(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = load_policy(str(POLICIES / "songnodes.yaml"))
    assert Settings().notify_retry_after_max == 300.0
    monkeypatch.setenv("WATCHDOG_NOTIFY_RETRY_AFTER_MAX", "45")
    outbox = build_outbox(
        policy, Settings(), journal, httpx.AsyncClient(), Metrics(), dry_run=False
    )
    assert outbox.retry.retry_after_max_seconds == 45.0
    monkeypatch.setenv("WATCHDOG_NOTIFY_RETRY_AFTER_MAX", "0")
    with pytest.raises(ValueError, match="notify_retry_after_max"):
        Settings()


# ---- fallback, and a page with nowhere left to go ------------------------------------


def escalated_from_p2(outbox: Outbox, journal: Journal) -> int:
    """A P2 paged to its channels (Slack, the webhook), then escalated to P1."""
    incident = open_p1(journal)
    journal.set_severity(
        incident, severity=Severity.P2, scenario="dlq_overflow", at=1.0, reason="test setup"
    )
    outbox.incident_moved(incident, "triaged", "awaiting_approval", "needs the team")
    return incident


@pytest.mark.asyncio
async def test_a_channel_that_refuses_its_key_hands_the_page_to_the_other_routed_channels(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    metrics = Metrics()
    outbox = outbox_for(fakes, journal, client, metrics=metrics, genie_key="revoked-genie-key")
    incident = escalated_from_p2(outbox, journal)
    await drain(outbox, journal)
    journal.set_severity(
        incident, severity=Severity.P1, scenario="dlq_overflow", at=2.0, reason="DLQ > 5000"
    )
    outbox.incident_escalated(incident, Severity.P2)  # to PagerDuty and Opsgenie
    await drain(outbox, journal)

    assert [r.status for r in fakes.opsgenie.received] == [401]
    assert len(fakes.pagerduty.events("trigger")) == 1
    # Slack and the webhook were not part of the escalation's page: they get it now.
    assert len(fakes.slack.messages()) == len(fakes.webhook.events()) == 2
    said = fakes.slack.messages()[1]["text"]
    assert "fallback: opsgenie refused: HTTP 401" in said
    assert fakes.webhook.events()[1]["incident"]["severity"] == "P1"
    pages = [e.summary for e in journal.timeline(incident) if e.kind == "page"]
    assert pages[-1].startswith("trigger to slack, webhook: fallback: opsgenie refused: HTTP 401")
    assert [(d.channel, d.status) for d in journal.deliveries(incident)][-2:] == [
        ("slack", "sent"),
        ("webhook", "sent"),
    ]
    assert metrics.page_fallbacks.labels("opsgenie")._value.get() == 1
    assert metrics.pages_lost.labels("opsgenie")._value.get() == 0
    # The fallback channels were triggered, so the incident's end reaches them too.
    resolve(outbox, journal, incident)
    await drain(outbox, journal)
    assert [e["event"] for e in fakes.webhook.events()] == ["trigger", "trigger", "resolve"]


@pytest.mark.asyncio
async def test_a_channel_that_gives_up_hands_the_page_on(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    metrics = Metrics()
    retry = RetryPolicy(base_seconds=0.01, cap_seconds=0.01, timeout_seconds=5, max_attempts=3)
    outbox = outbox_for(fakes, journal, client, metrics=metrics, retry=retry)
    incident = escalated_from_p2(outbox, journal)
    await drain(outbox, journal)
    fakes.pagerduty.fail_next(3, status=502)
    journal.set_severity(
        incident, severity=Severity.P1, scenario="dlq_overflow", at=2.0, reason="DLQ > 5000"
    )
    outbox.incident_escalated(incident, Severity.P2)
    await drain(outbox, journal)

    assert [r.status for r in fakes.pagerduty.received] == [502, 502, 502]
    assert "fallback: pagerduty gave up: 3 tries, the last: HTTP 502" in (
        fakes.slack.messages()[1]["text"]
    )
    assert metrics.page_fallbacks.labels("pagerduty")._value.get() == 1


@pytest.mark.asyncio
async def test_a_page_with_no_channel_left_is_lost_loudly_never_silently(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    metrics = Metrics()
    spec = NotifySpec(routes={Severity.P1: ["opsgenie"]})
    outbox = outbox_for(
        fakes, journal, client, metrics=metrics, spec=spec, genie_key="revoked-genie-key"
    )
    incident = open_p1(journal)
    with capture_logs() as logs:
        outbox.incident_moved(incident, "triaged", "awaiting_approval", "needs a lead")
        await drain(outbox, journal)

    assert [r.status for r in fakes.opsgenie.received] == [401]
    (lost,) = [e for e in journal.timeline(incident) if e.kind == "page_lost"]
    assert lost.summary.startswith("opsgenie trigger lost: HTTP 401")
    assert "no other channel routed for P1 is left" in lost.summary
    assert lost.data["channel"] == "opsgenie" and lost.data["event"] == "trigger"
    (line,) = [entry for entry in logs if entry["event"] == "page_lost"]
    assert line["log_level"] == "error" and line["channel"] == "opsgenie"
    assert metrics.pages_lost.labels("opsgenie")._value.get() == 1
    assert metrics.page_fallbacks.labels("opsgenie")._value.get() == 0
    assert fakes.slack.received == fakes.webhook.received == fakes.pagerduty.received == []


@pytest.mark.asyncio
async def test_a_lost_page_names_the_channels_that_did_get_it(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    metrics = Metrics()
    fakes.pagerduty.reject_next(1)
    outbox, incident = paged_p1(fakes, journal, client, metrics=metrics)
    await drain(outbox, journal)
    (lost,) = [e for e in journal.timeline(incident) if e.kind == "page_lost"]
    assert lost.summary.startswith("pagerduty trigger lost: HTTP 400")
    assert lost.summary.endswith("the page did reach or may still reach: opsgenie, slack, webhook")
    assert metrics.pages_lost.labels("pagerduty")._value.get() == 1


# ---- dry run -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_dry_run_outbox_journals_its_own_pages_and_sends_only_real_ones(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    # A page an earlier, real daemon left pending was decided for real: it goes out.
    real = outbox_for(fakes, journal, client)
    earlier = open_p1(journal, key="earlier")
    real.incident_moved(earlier, "triaged", "awaiting_approval", "needs a lead")

    outbox, incident = paged_p1(fakes, journal, client, dry_run=True)
    resolve(outbox, journal, incident)
    assert await outbox.deliver_due() == 4  # the earlier page, on its four channels

    rows = journal.deliveries(incident)
    assert [(d.event, d.status) for d in rows] == [("trigger", "dry_run")] * 4 + [
        ("resolve", "dry_run")
    ] * 4
    assert all(d.id not in {due.id for due in journal.due_deliveries(1e12)} for d in rows)
    assert journal.pending_deliveries() == {}
    assert {d.status for d in journal.deliveries(earlier)} == {"sent"}
    shown = [e.summary for e in journal.timeline(incident) if e.kind == "page_dry_run"]
    assert shown == [
        "would page pagerduty, opsgenie, slack, webhook: trigger: "
        "the plan waits for approval: needs a lead",
        "would page opsgenie, pagerduty, slack, webhook: resolve: "
        "incident resolved: checklist held",
    ]
    assert not [e for e in journal.timeline(incident) if e.kind == "page"]
    for fake in (fakes.pagerduty, fakes.opsgenie, fakes.slack, fakes.webhook):
        assert len(fake.received) == 1, fake.name  # the earlier page, never the dry run's
    await drain(real, journal)  # and a real outbox has nothing left to send
    assert len(fakes.pagerduty.received) == 1


# ---- composed for the move's own transaction --------------------------------------


@pytest.mark.asyncio
async def test_a_page_composed_before_its_move_is_written_shows_the_move_and_writes_nothing(
    fakes: Vendors, journal: Journal, client: httpx.AsyncClient
) -> None:
    outbox = outbox_for(fakes, journal, client)
    incident = open_p1(journal)  # awaiting approval, nothing paged yet
    before = len(journal.timeline(incident))
    moved = outbox.pages_for_move(incident, "awaiting_approval", "escalated", "approval expired")
    assert moved is not None and (moved.event, moved.status) == ("trigger", "pending")
    assert moved.dedup_key == f"songnodes/{incident}"
    assert moved.reason == "escalated to a human: approval expired"
    summary = moved.bodies["pagerduty"]["payload"]["summary"]
    assert summary.startswith("[P1] songnodes: dlq_overflow (escalated)")
    risen = outbox.pages_for_escalation(incident, Severity.P1, to_severity=Severity.P0)
    assert risen is not None
    assert risen.bodies["pagerduty"]["payload"]["severity"] == "critical"
    assert outbox.pages_for_escalation(incident, Severity.P1) is None  # P1 is not a rise
    assert journal.deliveries(incident) == [] and len(journal.timeline(incident)) == before

    journal.enqueue_page(incident, moved, at=1_500.0)
    outbox.wake()
    await drain(outbox, journal)
    (trigger,) = fakes.pagerduty.events("trigger")
    assert trigger["payload"]["summary"] == summary
