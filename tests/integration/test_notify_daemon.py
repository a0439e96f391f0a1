"""A real daemon pages through the fakes: the page is resolved with its incident, and a
page that fails survives a SIGKILL and is delivered exactly once by the next daemon.

The songnodes policy is copied with P2 paged on open and routed to every channel,
so the sandbox's quickest fault (dlq-manager killed, a P2) makes a page.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_stage import Stage, songnodes_variant, staged_daemon
from tests.integration.notify_stage import Vendors
from watchdog.demo import wait_for

pytestmark = pytest.mark.slow



def page_p2_everywhere(data: dict[str, Any]) -> None:
    data["notify"]["on_open"] = ["P0", "P1", "P2"]
    data["notify"]["routes"]["P2"] = ["pagerduty", "opsgenie", "slack", "webhook"]


@pytest.fixture
def stage(tmp_path: Path, fakes: Vendors, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    for name, value in fakes.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WATCHDOG_NOTIFY_BACKOFF", "1")
    monkeypatch.setenv("WATCHDOG_PUBLIC_URL", "http://127.0.0.1:9095")
    with staged_daemon(tmp_path, songnodes_variant(tmp_path, page_p2_everywhere)) as stage:
        yield stage


def test_an_incident_that_resolves_resolves_its_page(stage: Stage, fakes: Vendors) -> None:
    resolved = stage.inject_and_follow("crash", service="dlq-manager")
    assert resolved["state"] == "resolved"
    key = f"songnodes/{resolved['id']}"  # the incident's own key, not its fault key
    wait_for(lambda: len(fakes.pagerduty.events()) >= 2, 20, "the resolve at PagerDuty")
    assert [(e["event_action"], e["dedup_key"]) for e in fakes.pagerduty.events()] == [
        ("trigger", key),
        ("resolve", key),
    ]
    trigger = fakes.pagerduty.events("trigger")[0]["payload"]
    assert trigger["severity"] == "warning"
    assert trigger["custom_details"]["link"].endswith(f"/ui/incidents/{resolved['id']}")
    wait_for(lambda: fakes.opsgenie.closes() == [key], 20, "the Opsgenie close")
    assert [a["alias"] for a in fakes.opsgenie.creates()] == [key]
    wait_for(lambda: len(fakes.webhook.events()) == 2, 20, "the webhook's resolve")
    assert [e["event"] for e in fakes.webhook.events()] == ["trigger", "resolve"]
    assert len(fakes.slack.messages()) == 2
    assert stage.metric("watchdog_pages_total", channel="pagerduty", outcome="sent") == 2
    assert stage.metric("watchdog_pages_total", channel="slack", outcome="rejected") == 0
    assert stage.metric("watchdog_outbox_pending", channel="pagerduty") == 0
    stage.daemon.stop()
    stored = b"".join(p.read_bytes() for p in stage.folder.glob("journal.db*"))
    logged = (stage.folder / "daemon.log").read_bytes()
    assert b"page_sent" in logged
    for secret in fakes.secrets():
        assert secret.encode() not in stored, f"{secret!r} is in the journal file"
        assert secret.encode() not in logged, f"{secret!r} is in the daemon's log"


def pagerduty_tries(stage: Stage) -> int:
    """Failed tries journaled on the pending PagerDuty trigger (0 while there is none)."""
    journal = stage.journal()
    try:
        rows = [
            d
            for incident in journal.list_incidents()
            for d in journal.deliveries(incident.id)
            if d.channel == "pagerduty" and d.status == "pending" and d.event == "trigger"
        ]
    finally:
        journal.close()
    return rows[0].attempts if rows else 0


def test_a_failing_page_survives_sigkill_and_is_delivered_exactly_once(
    stage: Stage, fakes: Vendors
) -> None:
    fakes.pagerduty.fail_next(3, status=500)
    fakes.slack.reject_next(1)
    known = stage.inject("crash", service="dlq-manager")
    wait_for(lambda: pagerduty_tries(stage) >= 1, 30, "a failed try journaled, the next one due")
    assert stage.daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    tries = pagerduty_tries(stage)
    assert 1 <= tries < 3  # killed while waiting to retry: the page is not delivered yet
    assert [r.status for r in fakes.pagerduty.received] == [500] * tries

    stage.daemon.start()
    incident = stage.follow(known, ("resolved",))
    wait_for(lambda: len(fakes.pagerduty.events()) >= 2, 30, "trigger and resolve delivered")
    assert [r.status for r in fakes.pagerduty.received] == [500, 500, 500, 202, 202]
    assert [e["event_action"] for e in fakes.pagerduty.events()] == ["trigger", "resolve"]

    def pagerduty_rows() -> list[tuple[str, str, int]]:
        journal = stage.journal()
        try:
            return [(d.event, d.status, d.attempts)
                    for d in journal.deliveries(incident["id"]) if d.channel == "pagerduty"]
        finally:
            journal.close()

    # The vendor has the resolve a moment before the daemon journals it as sent (seen
    # pending once in a loaded suite run).
    wait_for(lambda: "pending" not in {row[1] for row in pagerduty_rows()}, 30,
             "both deliveries journaled")
    assert pagerduty_rows() == [
        ("trigger", "sent", 4),
        ("resolve", "sent", 1),
    ]
    # Slack's 400 was not retried, was put on the timeline, and nothing was resolved there.
    assert [r.status for r in fakes.slack.received] == [400]
    rejected = [e for e in incident["timeline"] if e["kind"] == "page_rejected"]
    assert [e["summary"].split(":")[0] for e in rejected] == ["slack trigger not delivered"]


@pytest.fixture
def dry_stage(
    tmp_path: Path, fakes: Vendors, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stage]:
    for name, value in fakes.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WATCHDOG_PUBLIC_URL", "http://127.0.0.1:9095")
    policy = songnodes_variant(tmp_path, page_p2_everywhere)
    with staged_daemon(tmp_path, policy, extra_args=["--dry-run"]) as stage:
        yield stage


def test_a_dry_run_daemon_journals_its_pages_and_sends_none(
    dry_stage: Stage, fakes: Vendors
) -> None:
    stage = dry_stage
    known = stage.inject("crash", service="dlq-manager")
    incident = stage.follow(known, ("verifying", "failed", "escalated"))

    def shown() -> list[str]:
        (seen,) = [i for i in stage.incidents() if i["id"] == incident["id"]]
        return [e["summary"] for e in seen["timeline"] if e["kind"] == "page_dry_run"]

    wait_for(lambda: bool(shown()), 20, "the page the dry run would have sent")
    assert shown()[0].startswith("would page pagerduty, opsgenie, slack, webhook: trigger: P2")
    assert stage.daemon.stop() == 0  # a clean stop: the outbox's last pass is over
    journal = stage.journal()
    try:
        rows = journal.deliveries(incident["id"])
        timeline = journal.timeline(incident["id"])
    finally:
        journal.close()
    assert rows and {d.status for d in rows} == {"dry_run"}
    assert {d.dedup_key for d in rows} == {f"songnodes/{incident['id']}"}
    assert not [e for e in timeline if e.kind in ("page", "page_sent", "page_rejected")]
    for fake in (fakes.pagerduty, fakes.opsgenie, fakes.slack, fakes.webhook):
        assert fake.received == [], f"the dry run sent to {fake.name}"
    logged = (stage.folder / "daemon.log").read_text()
    assert "outbox_dry_run" in logged and "page_dry_run" in logged
